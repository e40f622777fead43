"""Runs whose process is gone: found when a store opens, recorded as ``interrupted``.

A run is ``pending``/``running`` only while the process that started it (its *owner*: pid,
start time, host) lives. When that process was killed (kill -9, a closed terminal, a crash)
nothing recorded the end, so the first store opened afterwards does: the row and record.json
become ``interrupted`` with the run's log. A pid the system has since given to another process
is told apart by the start time. Rows without an owner (older versions) or owned by another
host are swept once their spec's timeout (plus a margin) has passed: the supervisor would
have stopped them by then.

The same pass finishes what a kill cut short while a session was being created: a staging
folder (``runs/.partial-*``) of a dead owner is removed; a complete run folder without an
index row is indexed again.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessions.records import ACTIVE, RunRecord, RunStatus
from workloads.watchdog import process_alive, process_start_time

if TYPE_CHECKING:
    from sessions.store import SessionStore

STAGING_PREFIX = ".partial-"
TIMEOUT_MARGIN_S = 600.0  # past its own timeout by this much, no supervisor still runs it


def current_owner() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "start": process_start_time(pid), "host": socket.gethostname()}


def owner_gone(owner: dict[str, Any] | None, created_at: float | None,
               timeout_s: Any = None, now: float | None = None) -> bool:
    """Whether nobody can still be running a session with this owner."""
    now = time.time() if now is None else now
    owner = owner or {}
    pid = owner.get("pid")
    if isinstance(pid, int) and owner.get("host") == socket.gethostname():
        return not process_alive(pid, owner.get("start") or None)
    limit = float(timeout_s) if isinstance(timeout_s, (int, float)) and timeout_s > 0 else 86400.0
    return created_at is not None and now > created_at + limit + TIMEOUT_MARGIN_S


def interrupted_error(owner: dict[str, Any] | None) -> str:
    pid = (owner or {}).get("pid")
    who = f"the workbench process (pid {pid})" if pid else "the workbench process"
    return (f"interrupted: {who} that ran it ended before the run finished "
            "(killed, or its terminal closed); see run.log")


def mark_interrupted(store: SessionStore, record: RunRecord) -> RunRecord:
    run_dir = store.run_dir(record.id)
    record.status = RunStatus.INTERRUPTED
    record.error = interrupted_error(record.owner)
    log = run_dir / "run.log"
    if log.is_file():
        record.artifacts["log"] = "run.log"
        record.finished_at = record.finished_at or log.stat().st_mtime
    store.save(record)
    return record


def sweep(store: SessionStore) -> list[str]:
    """Record every run whose owner is gone as interrupted; index orphan folders. Returns the
    ids it changed. Never raises for storage trouble: a read-only or full home is left as is
    (``list``/``get`` still show such runs as interrupted, see ``effective_status``)."""
    changed: list[str] = []
    with store.index.connect() as db:
        rows = db.execute("SELECT id, created_at, owner_pid, owner_start, owner_host FROM runs "
                          "WHERE status IN (?, ?)", tuple(s.value for s in ACTIVE)).fetchall()
        indexed = {r[0] for r in db.execute("SELECT id FROM runs")}
    for run_id, created_at, pid, start, host in rows:
        owner = {"pid": pid, "start": start, "host": host} if pid is not None else None
        record = _read_record(store.run_dir(run_id))
        timeout_s = record.spec.timeout_s if record and record.spec else None
        if not owner_gone(owner, created_at, timeout_s):
            continue
        if record is None:
            record = RunRecord(id=run_id, created_at=created_at or time.time())
        record.owner = record.owner or owner or {}
        if record.status.active:
            mark_interrupted(store, record)
        else:  # the folder says it finished; only the index missed it
            store.save(record)
        changed.append(run_id)
    changed += _sweep_folders(store, indexed)
    return changed


def _sweep_folders(store: SessionStore, indexed: set[str]) -> list[str]:
    changed: list[str] = []
    try:
        entries = list(os.scandir(store.runs_dir))
    except OSError:
        return changed
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        folder = Path(entry.path)
        record = _read_record(folder)
        if entry.name.startswith(STAGING_PREFIX):
            owner = record.owner if record else None
            if owner_gone(owner, record.created_at if record else entry.stat().st_mtime):
                shutil.rmtree(folder, ignore_errors=True)
            continue
        if entry.name in indexed or record is None or record.id != entry.name:
            continue
        if record.status.active:
            if not owner_gone(record.owner, record.created_at,
                              record.spec.timeout_s if record.spec else None):
                continue  # its owner is between the folder's rename and the index row
            mark_interrupted(store, record)
        else:
            store.save(record)
        changed.append(record.id)
    return changed


def effective_status(status: RunStatus, owner: dict[str, Any] | None,
                     created_at: float | None, timeout_s: Any = None) -> RunStatus:
    """What to show for a stored status: an active run whose owner is gone is interrupted,
    even where the sweep could not write that down (a full or read-only home)."""
    if status.active and owner_gone(owner, created_at, timeout_s):
        return RunStatus.INTERRUPTED
    return status


def _read_record(folder: Path) -> RunRecord | None:
    try:
        data = json.loads((folder / "record.json").read_text(encoding="utf-8"))
        return RunRecord.from_dict(data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None
