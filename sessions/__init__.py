"""Persistent sessions: a SQLite (WAL) index of runs plus one folder per run."""

from sessions.store import RunRecord, SessionStore, default_home

__all__ = ["RunRecord", "SessionStore", "default_home"]
