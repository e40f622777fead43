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
from collections.abc import Iterable
from pathlib import Path
from typing import cast

from profilers.base import Capability, Wrapped, find_tool, tool_version
from profilers.supervisor import child_environment
from workloads.errors import WorkbenchError
from workloads.spec import NCU_SCOPES, RunSpec

# No section by default: sections pull dozens of metrics and each costs replay passes. An eager
# 8B decode step is ~1,200 kernels; with SpeedOfLight + RooflineChart + `--set roofline` every
# kernel took 13 passes (~0.6 s) and the step did not finish in 5 minutes. This list fits in
# about two passes and still gives what the breakdown and roofline need: duration, DRAM
# bytes, FP32 FADD/FMUL/FFMA rates, tensor-core op counts (sm__ops_path_tensor_*, so GEMMs sit
# on the tensor roof), speed-of-light percentages and launch configuration. Add sections with
# --profiler-option sections=SpeedOfLight,... or a set with --profiler-option set=full.
DEFAULT_SECTIONS: tuple[str, ...] = ()
DEFAULT_METRICS = (
    "gpu__time_duration.sum",
    "dram__bytes_read.sum", "dram__bytes_write.sum", "dram__bytes.sum.per_second",
    "smsp__sass_thread_inst_executed_op_fadd_pred_on.sum.per_cycle_elapsed",
    "smsp__sass_thread_inst_executed_op_fmul_pred_on.sum.per_cycle_elapsed",
    "smsp__sass_thread_inst_executed_op_ffma_pred_on.sum.per_cycle_elapsed",
    "smsp__cycles_elapsed.avg.per_second",
    "sm__ops_path_tensor_op_hgmma_src_bf16_dst_fp32.sum",
    "sm__ops_path_tensor_op_hmma_src_bf16_dst_fp32.sum",
    "sm__ops_path_tensor_op_hgmma_src_fp16.sum",
    "sm__ops_path_tensor_op_hgmma_src_tf32_dst_fp32.sum",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed",
    "launch__registers_per_thread", "launch__grid_size", "launch__block_size",
)

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


def _listed(value: object) -> list[str]:
    """A list option given as a list or as one comma-separated string (CLI KEY=VALUE)."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in cast(Iterable[object], value)]


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
        scope = str(opts.get("scope", "auto"))
        if scope not in NCU_SCOPES:
            raise WorkbenchError(f"unknown ncu scope {scope!r}",
                                 "use --profiler-option scope=auto (one decoder block of an "
                                 "eager model) or scope=step (every kernel of the step)")
        # One process: the workload's own. torch.compile's compile workers are child
        # processes; ncu attaching to them (--target-processes all) segfaulted the best bf16
        # stack 35 s in on an H200. Only a torchrun job needs ncu in its children (the ranks).
        targets = "all" if spec.world_size > 1 else "application-only"
        cmd = [cap.path or "ncu", "--clock-control", "none", "--profile-from-start", "off",
               "--target-processes", targets, "--graph-profiling", "node",
               "--cache-control", str(opts.get("cache_control", "all"))]
        if opts.get("set"):
            cmd += ["--set", str(opts["set"])]
        for section in _listed(opts.get("sections", DEFAULT_SECTIONS)):
            cmd += ["--section", section]
        metrics = _listed(opts.get("metrics", DEFAULT_METRICS))
        if metrics:
            cmd += ["--metrics", ",".join(metrics)]
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
        # Compile workers keep their pool: with --target-processes application-only ncu does
        # not profile them. (Compiling serially instead, TORCHINDUCTOR_COMPILE_THREADS=1, made
        # the compiled 8B step's warm-up under ncu outlast 2 minutes on an H200, and gpt-oss's
        # compiled attention too.) Compilation happens in the warm-up, before the range opens.
        env: dict[str, str] = {}
        if str(opts.get("caching_allocator", "on")).lower() in ("off", "0", "false", "no"):
            # Tried on an H100 (8B eager decode): 0.48 s per profiled kernel with PyTorch's
            # caching allocator and without it alike, so it stays on unless asked.
            env["PYTORCH_NO_CUDA_MEMORY_CACHING"] = "1"
        return Wrapped(cmd + list(child_cmd), env)

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
                                  stdout=out, stderr=subprocess.PIPE, timeout=600,
                                  env=child_environment(None))
        if proc.returncode != 0:
            raise WorkbenchError(
                f"ncu --import failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
        return {"ncu_rep": rep.name, "ncu_csv": csv_path.name}
