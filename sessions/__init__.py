"""Persistent sessions: a SQLite (WAL) index of runs plus one folder per run. Storage only:
the analysis of a stored run lives above, in ``workbench.api.pipeline``."""

from sessions.records import RunRecord, RunStatus, SessionKind, SessionRow
from sessions.store import SessionStore, default_home

__all__ = ["RunRecord", "RunStatus", "SessionKind", "SessionRow", "SessionStore", "default_home"]
