"""The session store: ``<home>/sessions.db`` (SQLite, WAL) indexes runs; ``<home>/runs/<id>/``
holds spec.json, result.json, artifacts and logs.

Every record write is one transaction; every file write is atomic (temp + rename). The index
holds what lists and filters need; the run folder holds the whole record (record.json), so a
lost index can be rebuilt from the folders.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sessions.atomic import write_json_atomic
from workloads.errors import WorkbenchError

STATUSES = ("pending", "running", "ok", "failed", "cancelled", "timeout")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    finished_at REAL,
    kind TEXT NOT NULL DEFAULT 'run',
    workload TEXT, preset TEXT, layers TEXT, profiler TEXT,
    status TEXT NOT NULL,
    label TEXT,
    device TEXT,
    headline REAL,
    headline_unit TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at);
"""


def default_home() -> Path:
    """``$AIPERF_HOME`` or the platform's user data dir (platformdirs)."""
    env = os.environ.get("AIPERF_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("aiperf-workbench", appauthor=False))


@dataclass
class RunRecord:
    """One run (or one analyzed artifact, kind="analysis"), as stored."""

    id: str
    created_at: float
    status: str = "pending"
    kind: str = "run"  # run | analysis
    spec: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    telemetry: dict[str, Any] = field(default_factory=dict)  # NVML summary
    artifacts: dict[str, str] = field(default_factory=dict)  # role -> path relative to run dir
    error: str | None = None
    finished_at: float | None = None
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # workload-specific (router health, ...)

    @property
    def workload(self) -> str:
        return str(self.spec.get("workload", ""))

    def headline(self) -> tuple[float | None, str]:
        """The figure a list shows: tokens/s if the run has it, else median latency."""
        tps = self.metrics.get("tokens_per_s")
        if isinstance(tps, (int, float)):
            return float(tps), "tok/s"
        lat = (self.metrics.get("latency_ms") or {}).get("median")
        if isinstance(lat, (int, float)):
            return float(lat), "ms"
        return None, ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


class SessionStore:
    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home).expanduser() if home else default_home()
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkbenchError(
                f"cannot create the session home {self.home}: {exc.strerror}",
                "pass --home DIR or set AIPERF_HOME to a writable folder",
            ) from None
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def db_path(self) -> Path:
        return self.home / "sessions.db"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with db:  # one transaction
                yield db
        finally:
            db.close()

    # ---- records -------------------------------------------------------------------------
    def new_run(self, spec: dict[str, Any], kind: str = "run", label: str = "") -> RunRecord:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{uuid.uuid4().hex[:6]}"
        record = RunRecord(id=run_id, created_at=time.time(), kind=kind, spec=dict(spec),
                           label=label or str(spec.get("label") or ""))
        self.run_dir(run_id).mkdir(parents=True, exist_ok=False)
        write_json_atomic(self.run_dir(run_id) / "spec.json", spec)
        self.save(record)
        return record

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def save(self, record: RunRecord) -> None:
        """Write record.json atomically, then upsert the index row in one transaction."""
        write_json_atomic(self.run_dir(record.id) / "record.json", record.to_dict())
        value, unit = record.headline()
        spec = record.spec
        row = (
            record.id, record.created_at, record.finished_at, record.kind,
            spec.get("workload"), spec.get("preset"), ",".join(spec.get("layers") or []),
            spec.get("profiler"), record.status, record.label,
            record.env.get("device_name"), value, unit, record.error,
        )
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs (id, created_at, finished_at, kind, workload, preset,"
                " layers, profiler, status, label, device, headline, headline_unit, error)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )

    def get(self, run_id: str) -> RunRecord:
        path = self.run_dir(run_id) / "record.json"
        if not run_id or "/" in run_id or not path.is_file():
            matches = self._prefix_matches(run_id)
            if len(matches) == 1:
                path = self.run_dir(matches[0]) / "record.json"
            else:
                hint = ("several runs match; give more of the id" if matches
                        else "see `aiperf-workbench sessions list`")
                raise WorkbenchError(f"no session {run_id!r} in {self.home}", hint)
        try:
            return RunRecord.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise WorkbenchError(f"session record {path} is unreadable: {exc}") from None

    def _prefix_matches(self, prefix: str) -> list[str]:
        if not prefix:
            return []
        with self._connect() as db:
            rows = db.execute("SELECT id FROM runs WHERE id LIKE ? OR id LIKE ?",
                              (prefix.replace("%", "") + "%", "%-" + prefix.replace("%", "") + "%")).fetchall()
        return [r[0] for r in rows]

    def list(self, workload: str | None = None, status: str | None = None,
             limit: int | None = None) -> list[dict[str, Any]]:
        """Index rows, newest first (cheap: no run folders are read)."""
        query = "SELECT * FROM runs"
        clauses, args = [], []
        if workload:
            clauses.append("workload = ?")
            args.append(workload)
        if status:
            clauses.append("status = ?")
            args.append(status)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY created_at DESC"
        if limit:
            query += f" LIMIT {int(limit)}"
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(query, args).fetchall()]

    def delete(self, run_id: str) -> None:
        record = self.get(run_id)
        with self._connect() as db:
            db.execute("DELETE FROM runs WHERE id = ?", (record.id,))
        shutil.rmtree(self.run_dir(record.id), ignore_errors=True)

    def artifact_path(self, record: RunRecord, role: str) -> Path | None:
        rel = record.artifacts.get(role)
        return self.run_dir(record.id) / rel if rel else None

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
