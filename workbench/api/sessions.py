"""Stored sessions, for both faces: list (filtered, sorted), show, delete, the baseline a
diff defaults to, and an analysis of artifacts from elsewhere saved as a session."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from sessions.records import SORT_KEYS, RunRecord, RunStatus, SessionKind, SessionRow
from sessions.store import SessionStore

__all__ = ["SORT_KEYS", "default_baseline", "delete_session", "get_session", "list_sessions",
           "open_store", "save_analysis"]


def open_store(home: Path | str | None = None) -> SessionStore:
    """The session home (``--home``, else $AIPERF_HOME, else the user data folder)."""
    return SessionStore(home)


def list_sessions(store: SessionStore, workload: str | None = None,
                  status: RunStatus | str | None = None, limit: int | None = None,
                  sort: str = "created_at", descending: bool = True) -> list[SessionRow]:
    """Index rows; ``sort`` is one of ``SORT_KEYS`` (newest first by default)."""
    return store.list(workload=workload, status=status, limit=limit, order_by=sort,
                      descending=descending)


def get_session(store: SessionStore, run_id: str) -> RunRecord:
    """A session by id, a unique prefix or a unique suffix of one."""
    return store.get(run_id)


def delete_session(store: SessionStore, run_id: str) -> str:
    """Delete a session and its folder; returns the full id."""
    record = store.get(run_id)
    store.delete(record.id)
    return record.id


def default_baseline(store: SessionStore, record: RunRecord) -> str | None:
    """What a diff of ``record`` compares with by default: the newest earlier ok run of the
    same workload and preset."""
    spec = record.spec
    if spec is None:
        return None
    for row in store.list(workload=spec.workload, status=RunStatus.OK):
        if row.id != record.id and row.preset == spec.preset and \
                row.created_at <= record.created_at:
            return row.id
    return None


_ROLE_OF_KIND = {"kineto": "trace", "kineto_dir": "trace", "ncu_csv": "ncu_csv",
                 "ncu_rep": "ncu_rep", "nsys_sqlite": "nsys_sqlite"}


def save_analysis(store: SessionStore, paths: list[Path], parsed: Any) -> RunRecord:
    """Store analyzed artifacts as a session (kind "analysis"): the files are copied into the
    run folder, so the session opens again later without the originals. All or nothing: the
    copies go to a staging folder and the session appears only once they are complete."""
    role = _ROLE_OF_KIND.get(parsed.kind, "artifact")
    sources = [Path(p) for p in paths]
    record = store.new_record(None, SessionKind.ANALYSIS)
    record.inputs, record.artifact_format = [str(p) for p in paths], parsed.kind

    def fill(run_dir: Path, record: RunRecord) -> None:
        if len(sources) == 1 and sources[0].is_file():
            shutil.copy2(sources[0], run_dir / sources[0].name)
            record.artifacts[role] = sources[0].name
        elif role == "trace":  # per-rank traces (a folder, or several files): one trace folder
            inputs = run_dir / "inputs"
            for src in sources:
                if src.is_dir():
                    shutil.copytree(src, inputs, dirs_exist_ok=True)
                else:
                    inputs.mkdir(exist_ok=True)
                    shutil.copy2(src, inputs / src.name)
            record.artifacts[role] = "inputs"
        else:  # several ncu / nsys files: keep the first as the session's artifact
            shutil.copy2(sources[0], run_dir / sources[0].name)
            record.artifacts[role] = sources[0].name
        record.status = RunStatus.OK
        record.finished_at = time.time()

    return store.add_complete(record, fill)
