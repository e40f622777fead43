"""`nsys`: Nsight Systems CUDA + NVTX trace of the cudaProfilerApi range the child opens
around the measured steps, exported to SQLite for the parser.

Where nsys can only write a .qdstrm (its QdstrmImporter is missing or fails, as with the nsys
bundled inside Nsight Compute), the run fails with exactly that message.
"""

from __future__ import annotations

from pathlib import Path

from profilers.base import Capability, Wrapped, find_tool, tool_version
from workloads.errors import WorkbenchError
from workloads.spec import RunSpec


class NsysWrapper:
    name = "nsys"

    def check(self) -> Capability:
        path = find_tool("nsys")
        if path is None:
            return Capability(False, "Nsight Systems (nsys) is not installed or not on PATH; "
                              "install it or set AIPERF_NSYS=/path/to/nsys")
        if "nsight-compute" in path:
            return Capability(
                False,
                f"the only nsys found ({path}) is the one bundled inside Nsight Compute, which "
                "writes .qdstrm files it cannot import; install Nsight Systems", path=path)
        return Capability(True, path=path, version=tool_version(path))

    def wrap(self, child_cmd: list[str], run_dir: Path, spec: RunSpec) -> Wrapped:
        cap = self.check()
        if not cap.available and not spec.profiler_options.get("force"):
            raise WorkbenchError(cap.reason)
        cmd = [cap.path or "nsys", "profile", "--trace=cuda,nvtx",
               "--capture-range=cudaProfilerApi", "--capture-range-end=stop",
               "--export=sqlite", "--force-overwrite=true", "-o", str(run_dir / "nsys")]
        return Wrapped(cmd + list(child_cmd))

    def collect(self, run_dir: Path, spec: RunSpec, log_text: str) -> dict[str, str]:
        sqlite = run_dir / "nsys.sqlite"
        rep = run_dir / "nsys.nsys-rep"
        if sqlite.is_file():
            out = {"nsys_sqlite": sqlite.name}
            if rep.is_file():
                out["nsys_rep"] = rep.name
            return out
        qdstrm = sorted(run_dir.glob("*.qdstrm"))
        if qdstrm or "Importer error" in log_text:
            raise WorkbenchError(
                "nsys wrote only a .qdstrm raw stream: its importer (QdstrmImporter) is missing "
                "or failed, so no .nsys-rep or SQLite could be made",
                "install the full Nsight Systems (not the copy inside Nsight Compute), or use "
                "--profiler torch / ncu")
        if rep.is_file():
            raise WorkbenchError("nsys wrote a report but no SQLite export",
                                 f"run: nsys export --type sqlite {rep}")
        raise WorkbenchError("nsys wrote no report", "see the run's log")
