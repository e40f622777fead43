"""The session store: ``<home>/sessions.db`` (SQLite, WAL) indexes runs; ``<home>/runs/<id>/``
holds spec.json, result.json, artifacts and logs.

Every record write is one transaction; every file write is atomic (temp + rename, one writer:
``workloads.atomic``). The index holds what lists and filters need; the run folder holds the
whole record (record.json), so a lost index can be rebuilt from the folders. A new session's
folder is filled under a staging name and renamed into place before its row is written, so a
kill leaves either no session or a whole one. Each active run names its owner process; when
a store opens, runs whose owner is gone are recorded as ``interrupted`` (``sessions.sweep``).
A full or read-only home is a one-line ``StorageError``; a read-only home can still be listed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sessions import sweep as run_sweep
from sessions.index_db import IndexDB, describe_os_error, home_is_writable
from sessions.records import SORT_KEYS, RunRecord, RunStatus, SessionKind, SessionRow
from workloads.atomic import write_json_atomic
from workloads.errors import StorageError, WorkbenchError
from workloads.spec import RunSpec

# What an id or a prefix of one may look like: anything else cannot name a session (and a
# 256-character name would reach the file system as ENAMETOOLONG).
_ID_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def default_home() -> Path:
    """``$AIPERF_HOME`` or the platform's user data dir (platformdirs)."""
    env = os.environ.get("AIPERF_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("aiperf-workbench", appauthor=False))


def _home_path(home: Path | str | None) -> Path:
    if home is None:
        return default_home()
    if not str(home).strip():
        raise WorkbenchError("the session home is empty (--home \"\" or AIPERF_HOME=\"\")",
                             "pass --home DIR, or leave it out for the default")
    return Path(home).expanduser()


class SessionStore:
    def __init__(self, home: Path | str | None = None, sweep: bool = True) -> None:
        self.home = _home_path(home)
        if (self.home / "sessions.db").is_file() and not home_is_writable(self.home):
            self.index = IndexDB(self.db_path, writable=False)  # read-only: list and show only
            return
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkbenchError(
                f"cannot create the session home {self.home}: {exc.strerror}",
                "pass --home DIR or set AIPERF_HOME to a writable folder",
            ) from None
        self.index = IndexDB(self.db_path, writable=True)
        if sweep and self.index.writable:
            try:
                run_sweep.sweep(self)
            except (StorageError, OSError, sqlite3.Error):
                pass  # a full disk: lists still show such runs as interrupted

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def db_path(self) -> Path:
        return self.home / "sessions.db"

    @property
    def writable(self) -> bool:
        return self.index.writable

    # ---- records -------------------------------------------------------------------------
    def new_run(self, spec: RunSpec | None, kind: SessionKind = SessionKind.RUN,
                label: str = "", prepare: Callable[[RunRecord], None] | None = None
                ) -> RunRecord:
        """A pending session owned by this process (folder, spec.json, record.json, row);
        ``prepare(record)`` fills in more before it is first written."""
        record = self.new_record(spec, kind, label)
        if prepare is not None:
            prepare(record)
        return self._publish(record, lambda folder, rec: None)

    def add_complete(self, record: RunRecord, fill: Callable[[Path, RunRecord], None]
                     ) -> RunRecord:
        """A finished session in one step: ``fill(folder, record)`` copies its files into a
        staging folder and completes the record; only then does the session appear (folder
        renamed into place, then its row). A failure or a kill before that leaves nothing
        (the staging folder of a dead process is removed by the next sweep)."""
        return self._publish(record, fill)

    def new_record(self, spec: RunSpec | None, kind: SessionKind = SessionKind.RUN,
                   label: str = "") -> RunRecord:
        """A record with a new id, owned by this process, not yet stored."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{uuid.uuid4().hex[:6]}"
        return RunRecord(id=run_id, created_at=time.time(), kind=kind, spec=spec,
                         label=label or (spec.label if spec is not None else ""),
                         owner=run_sweep.current_owner())

    def _publish(self, record: RunRecord, fill: Callable[[Path, RunRecord], None]) -> RunRecord:
        if self.index.unwritable is not None:
            raise StorageError(f"cannot add a session to {self.home}: "
                               + self.index.unwritable.message.split(": ", 1)[-1],
                               self.index.unwritable.hint)
        staging = self.runs_dir / f"{run_sweep.STAGING_PREFIX}{record.id}"
        try:
            staging.mkdir(parents=True, exist_ok=False)
            write_json_atomic(staging / "record.json", record.to_dict())  # owner first: sweepable
            write_json_atomic(staging / "spec.json",
                              record.spec.to_dict() if record.spec is not None else {})
            fill(staging, record)
            write_json_atomic(staging / "record.json", record.to_dict())
            os.rename(staging, self.run_dir(record.id))
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError):
                raise describe_os_error(exc, f"cannot create a session in {self.home}") from None
            raise
        self._index_row(record)
        return record

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def save(self, record: RunRecord) -> None:
        """Write record.json atomically, then upsert the index row in one transaction."""
        try:
            write_json_atomic(self.run_dir(record.id) / "record.json", record.to_dict())
        except OSError as exc:
            error = describe_os_error(exc, f"cannot write session {record.id}")
            if not record.status.active:  # the row is smaller: it may still fit
                try:
                    self._index_row(record)
                except StorageError:
                    pass
            raise error from None
        self._index_row(record)

    def _index_row(self, record: RunRecord) -> None:
        value, unit = record.headline()
        spec = record.spec
        owner = record.owner or {}
        row = (
            record.id, record.created_at, record.finished_at, record.kind.value,
            spec.workload if spec else "", spec.preset if spec else None, record.layers_text,
            record.profiler, record.status.value, record.label,
            record.env.get("device_name"), value, unit, record.error,
            owner.get("pid"), owner.get("start"), owner.get("host"),
        )
        with self.index.connect(write=True) as db:
            db.execute(
                "INSERT OR REPLACE INTO runs (id, created_at, finished_at, kind, workload, preset,"
                " layers, profiler, status, label, device, headline, headline_unit, error,"
                " owner_pid, owner_start, owner_host) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )

    def get(self, run_id: str) -> RunRecord:
        if not isinstance(run_id, str) or not _ID_TEXT.fullmatch(run_id):
            raise WorkbenchError(f"no session {_shown(run_id)} in {self.home}",
                                 "a session id is letters, digits, '-', '_' and '.'; "
                                 "see `aiperf-workbench sessions list`")
        path = self.run_dir(run_id) / "record.json"
        if not path.is_file():
            matches = self._prefix_matches(run_id)
            if len(matches) == 1:
                path = self.run_dir(matches[0]) / "record.json"
            else:
                hint = ("several runs match; give more of the id" if matches
                        else "see `aiperf-workbench sessions list`")
                raise WorkbenchError(f"no session {run_id!r} in {self.home}", hint)
        try:
            record = RunRecord.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise WorkbenchError(f"session record {path} is unreadable: {exc}") from None
        if record.status.active:
            self._finish_from_index(record)
        record.status = run_sweep.effective_status(
            record.status, record.owner, record.created_at,
            record.spec.timeout_s if record.spec is not None else None)
        return record

    def _finish_from_index(self, record: RunRecord) -> None:
        """A full disk can take the final record.json but not the (smaller) index row: then
        the row has the last word on how the run ended."""
        try:
            with self.index.connect() as db:
                row = db.execute("SELECT status, error, finished_at FROM runs WHERE id = ?",
                                 (record.id,)).fetchone()
        except StorageError:
            return
        if row is not None and not RunStatus.parse(row[0]).active:
            record.status, record.error, record.finished_at = RunStatus.parse(row[0]), row[1], \
                row[2]

    def _prefix_matches(self, prefix: str) -> list[str]:
        if not prefix:
            return []
        # LIKE treats % and _ as wildcards: `show _` must not pick an arbitrary session
        literal = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self.index.connect() as db:
            rows = db.execute("SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' "
                              "OR id LIKE ? ESCAPE '\\'",
                              (literal + "%", "%-" + literal + "%")).fetchall()
        return [r[0] for r in rows]

    def list(self, workload: str | None = None, status: RunStatus | str | None = None,
             limit: int | None = None, order_by: str = "created_at",
             descending: bool = True) -> list[SessionRow]:
        """Index rows (cheap: no run folders are read), newest first unless ``order_by``
        names another of ``SORT_KEYS``; missing values sort last either way."""
        if order_by not in SORT_KEYS:
            raise WorkbenchError(f"cannot sort sessions by {order_by!r}",
                                 f"choose one of: {', '.join(SORT_KEYS)}")
        query = "SELECT * FROM runs"
        clauses: list[str] = []
        args: list[Any] = []
        if workload:
            clauses.append("workload = ?")
            args.append(workload)
        if status:
            clauses.append("status = ?")
            args.append(RunStatus(status).value)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        direction = "DESC" if descending else "ASC"
        query += f" ORDER BY {order_by} IS NULL, {order_by} {direction}, created_at DESC"
        if limit:
            query += f" LIMIT {int(limit)}"
        with self.index.connect() as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute(query, args).fetchall()]
        return [_row(r) for r in rows]

    def delete(self, run_id: str) -> None:
        record = self.get(run_id)
        with self.index.connect(write=True) as db:
            db.execute("DELETE FROM runs WHERE id = ?", (record.id,))
        shutil.rmtree(self.run_dir(record.id), ignore_errors=True)

    def rebuild_index(self) -> int:
        """Re-create index rows from the run folders (after a lost or corrupt sessions.db)."""
        count = 0
        for path in sorted(self.runs_dir.glob("*/record.json")):
            try:
                self.save(RunRecord.from_dict(json.loads(path.read_text())))
                count += 1
            except (OSError, json.JSONDecodeError):
                continue
        return count


def _row(row: dict[str, Any]) -> SessionRow:
    status = RunStatus.parse(row["status"])
    if status.active:
        owner = ({"pid": row.get("owner_pid"), "start": row.get("owner_start"),
                  "host": row.get("owner_host")} if row.get("owner_pid") is not None else None)
        status = run_sweep.effective_status(status, owner, row["created_at"])
    return SessionRow(
        id=row["id"], created_at=row["created_at"], finished_at=row.get("finished_at"),
        kind=SessionKind(row.get("kind") or "run") if row.get("kind") in
        {k.value for k in SessionKind} else SessionKind.RUN,
        workload=row.get("workload") or "", preset=row.get("preset") or "",
        layers=row.get("layers") or "", profiler=row.get("profiler") or "", status=status,
        label=row.get("label") or "", device=row.get("device"), headline=row.get("headline"),
        headline_unit=row.get("headline_unit") or "", error=row.get("error"))


def _shown(text: object) -> str:
    """A bad id as the error shows it: bounded, one line."""
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "...'"
