"""`nsys`: Nsight Systems CUDA + NVTX trace of the cudaProfilerApi range the child opens
around the measured steps, exported to SQLite for the parser.

Also: ``export_sqlite`` turns a report someone brings (.nsys-rep / .qdrep) into the SQLite
export the parser reads, with nsys where it is installed.

Where nsys can only write a .qdstrm (its QdstrmImporter is missing or fails, as with the nsys
bundled inside Nsight Compute), the run fails with exactly that message.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
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


# ---------------------------------------------------------------- reading a report

REPORT_SUFFIXES = (".nsys-rep", ".qdrep")
EXPORT_TIMEOUT_S = 900.0


def export_hint(report: Path) -> str:
    return f"nsys export --type sqlite -o {report.with_suffix('.sqlite')} {report}"


def export_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "aiperf-nsys-export"


def export_sqlite(report: Path, cache_dir: Path | None = None) -> Path:
    """The SQLite export of an .nsys-rep / .qdrep report, made with ``nsys export`` once and
    kept in a cache keyed by the report's path, size and modification time.

    Without nsys: a one-line WorkbenchError whose hint is the exact export command."""
    nsys = find_tool("nsys")
    if nsys is None:
        raise WorkbenchError(
            f"{report}: an Nsight Systems report, which only nsys can read, and nsys is not on "
            "PATH (nor AIPERF_NSYS set)",
            f"export it where nsys is installed, then analyze the .sqlite: {export_hint(report)}")
    st = report.stat()
    key = hashlib.sha1(f"{report.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    out_dir = cache_dir or export_cache_dir()
    out = out_dir / f"{report.stem}-{key[:16]}.sqlite"
    if out.is_file() and out.stat().st_size > 0:
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / f"{out.stem}.{os.getpid()}.partial.sqlite"
    cmd = [nsys, "export", "--type", "sqlite", "--force-overwrite", "true",
           "--output", str(partial), str(report)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        partial.unlink(missing_ok=True)
        raise WorkbenchError(f"{report}: nsys export took over {EXPORT_TIMEOUT_S:.0f} s",
                             export_hint(report)) from None
    except OSError as exc:
        raise WorkbenchError(f"{report}: cannot run {nsys} ({exc.strerror})",
                             export_hint(report)) from None
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        lines = [ln for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        why = lines[-1].strip() if lines else "no output"
        raise WorkbenchError(f"{report}: nsys export failed (exit {done.returncode}): {why}",
                             export_hint(report))
    os.replace(partial, out)
    return out
