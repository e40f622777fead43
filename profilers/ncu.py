"""`ncu`: Nsight Compute around the measured step only.

The child opens a cudaProfilerApi range (torch.cuda.profiler.start/stop) around the profiled
steps, and ncu runs with ``--profile-from-start off``, so model build and warm-up are never
replayed. Clock control is off (measure the card as it runs). The default section set is
``roofline`` + SpeedOfLight: it carries DRAM bytes, the FP32 FADD/FMUL/FFMA counters and the
tensor-pipe ops (sm__ops_path_tensor_*) the roofline needs for GEMMs. NCCL kernels are skipped
by default (ncu serializes them and a multi-rank job hangs).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from profilers.base import Capability, Wrapped, find_tool, tool_version
from workloads.errors import WorkbenchError
from workloads.spec import RunSpec

DEFAULT_SECTIONS = ("SpeedOfLight", "SpeedOfLight_RooflineChart")
DEFAULT_SET = "roofline"

_KNOWN_FAILURES = [
    (re.compile(r"ERR_NVGPUCTRPERM"),
     "ncu may not read the GPU performance counters (ERR_NVGPUCTRPERM)",
     "run as root, or load the driver with NVreg_RestrictProfilingToAdminUsers=0 "
     "(see NVIDIA's ERR_NVGPUCTRPERM page)"),
    (re.compile(r"No kernels were profiled"),
     "ncu profiled no kernels",
     "the measured step launched no CUDA kernels inside the profiling range, or the "
     "--kernel-regex matched none; check the workload runs on CUDA"),
    (re.compile(r"LibraryNotLoaded|Failed to initialize the profiler"),
     "ncu could not initialize its profiler library on this machine",
     "this runtime does not expose the GPU counters (containers/gVisor); use --profiler torch"),
]


class NcuWrapper:
    name = "ncu"

    def check(self) -> Capability:
        path = find_tool("ncu")
        if path is None:
            return Capability(False, "Nsight Compute (ncu) is not installed or not on PATH; "
                              "install it or set AIPERF_NCU=/path/to/ncu")
        return Capability(True, path=path, version=tool_version(path))

    def wrap(self, child_cmd: list[str], run_dir: Path, spec: RunSpec) -> Wrapped:
        cap = self.check()
        if not cap.available:
            raise WorkbenchError(cap.reason)
        opts = spec.profiler_options
        cmd = [cap.path or "ncu", "--clock-control", "none", "--profile-from-start", "off",
               "--target-processes", "all", "--set", str(opts.get("set", DEFAULT_SET))]
        for section in opts.get("sections", DEFAULT_SECTIONS):
            cmd += ["--section", str(section)]
        for metric in opts.get("metrics", []):
            cmd += ["--metrics", str(metric)]
        regex = opts.get("kernel_regex")
        if regex:
            cmd += ["--kernel-name-base", "demangled", "--kernel-name", f"regex:{regex}"]
        elif not opts.get("include_nccl", False):
            cmd += ["--kernel-name-base", "demangled", "--kernel-name", "regex:^(?!.*nccl).*"]
        if opts.get("launch_skip") is not None:
            cmd += ["--launch-skip", str(int(opts["launch_skip"]))]
        if opts.get("launch_count") is not None:
            cmd += ["--launch-count", str(int(opts["launch_count"]))]
        cmd += ["-o", str(run_dir / "ncu"), "-f"]
        return Wrapped(cmd + list(child_cmd))

    def collect(self, run_dir: Path, spec: RunSpec, log_text: str) -> dict[str, str]:
        for pattern, message, hint in _KNOWN_FAILURES:
            if pattern.search(log_text):
                raise WorkbenchError(message, hint)
        rep = run_dir / "ncu.ncu-rep"
        if not rep.is_file():
            raise WorkbenchError("ncu wrote no report (ncu.ncu-rep)", "see the run's log")
        csv_path = run_dir / "ncu.csv"
        path = self.check().path or "ncu"
        with open(csv_path, "wb") as out:
            proc = subprocess.run([path, "--import", str(rep), "--csv", "--page", "raw"],
                                  stdout=out, stderr=subprocess.PIPE, timeout=600)
        if proc.returncode != 0:
            raise WorkbenchError(
                f"ncu --import failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
        return {"ncu_rep": rep.name, "ncu_csv": csv_path.name}
