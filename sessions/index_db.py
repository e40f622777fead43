"""The session index, ``<home>/sessions.db`` (SQLite, WAL): connections and storage failures.

A full disk or a read-only home is the user's to fix, so it surfaces as one ``StorageError``
line (exit 2), never a sqlite3 or OSError traceback. Reading keeps working where it can: a
home on read-only media, or on a disk so full that SQLite cannot create its shared-memory
file, is opened read-only (``mode=ro``, or ``immutable=1`` when no write-ahead log holds
unmerged pages) — ``sessions list`` and ``show`` still answer there.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workloads.errors import StorageError

SCHEMA = """
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
# Added later (ALTER TABLE on open): who runs a pending/running session, for the start-up sweep.
OWNER_COLUMNS = (("owner_pid", "INTEGER"), ("owner_start", "TEXT"), ("owner_host", "TEXT"))
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_FREE_FLOOR = 64 * 1024  # below this SQLite cannot grow its log: call the disk full


def describe_os_error(exc: OSError, what: str) -> StorageError:
    """``exc`` (ENOSPC, EROFS, EACCES, ...) while doing ``what`` as one line with a hint."""
    if exc.errno in _DISK_FULL:
        return StorageError(f"{what}: no space left on the device",
                            "free some space or pass --home DIR on another disk")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(f"{what}: {exc.strerror or 'not writable'}",
                            "pass --home DIR or set AIPERF_HOME to a writable folder")
    reason = exc.strerror or type(exc).__name__
    return StorageError(f"{what}: {reason}", "check the disk holding the session home")


def describe_sqlite_error(exc: sqlite3.Error, db_path: Path, what: str) -> StorageError:
    """A sqlite3 failure in words a user can act on (its own messages say "disk I/O error"
    for a full disk)."""
    home = db_path.parent
    try:
        if shutil.disk_usage(home).free < _FREE_FLOOR:
            return describe_os_error(OSError(errno.ENOSPC, "no space"), what)
    except OSError:
        pass
    if not os.access(home, os.W_OK) or (db_path.exists() and not os.access(db_path, os.W_OK)):
        return describe_os_error(OSError(errno.EROFS, "read-only"), what)
    text = str(exc) or type(exc).__name__
    if "locked" in text or "busy" in text:
        return StorageError(f"{what}: the index {db_path} is {text}",
                            "another aiperf-workbench holds it; try again")
    return StorageError(f"{what}: the index {db_path} failed ({text})",
                        "if it is corrupt, move it away: the index is rebuilt from the run folders")


def home_is_writable(home: Path) -> bool:
    db = home / "sessions.db"
    return os.access(home, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))


class IndexDB:
    """Connections to one sessions.db. ``writable=False``: read-only (no schema, no WAL
    switch, no writes)."""

    def __init__(self, path: Path, writable: bool) -> None:
        self.path = path
        self.writable = writable
        # why writes fail, when they do (the home is read-only, or the disk full)
        self.unwritable: StorageError | None = None if writable else describe_os_error(
            OSError(errno.EROFS, "the session home is read-only"),
            f"cannot write the session index {path}")
        if writable:
            try:
                with self.connect(write=True) as db:
                    db.execute("PRAGMA journal_mode=WAL")  # persistent: once per open is enough
                    db.executescript(SCHEMA)
                    have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
                    for name, kind in OWNER_COLUMNS:
                        if name not in have:
                            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
            except StorageError as exc:
                if not self.path.exists():
                    raise
                self.writable, self.unwritable = False, exc  # e.g. a full disk: still readable

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction. ``write``: fails with StorageError on a read-only index; a read
        falls back to a read-only connection when the normal one cannot open."""
        what = "cannot write the session index" if write else "cannot read the session index"
        if write and self.unwritable is not None:
            raise StorageError(self.unwritable.message, self.unwritable.hint)
        try:
            db = self._open_rw() if self.writable else self._open_ro()
        except sqlite3.Error as exc:
            if write or not self.writable:
                raise describe_sqlite_error(exc, self.path, what) from None
            try:
                db = self._open_ro()
            except sqlite3.Error:
                raise describe_sqlite_error(exc, self.path, what) from None
        try:
            with db:
                yield db
        except sqlite3.Error as exc:
            raise describe_sqlite_error(exc, self.path, what) from None
        finally:
            db.close()

    def _open_rw(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # opens the WAL now
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _open_ro(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise sqlite3.OperationalError("no session index")
        uri = self.path.resolve().as_uri()
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30)
        try:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return db
        except sqlite3.Error:
            db.close()
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise  # unmerged pages: immutable=1 would silently miss them
        # WAL mode needs a writable -shm file; media that cannot take one is read as it is.
        db = sqlite3.connect(f"{uri}?immutable=1", uri=True)
        try:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.Error:
            db.close()
            raise
        return db

