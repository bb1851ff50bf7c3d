"""Call sessions by CallSid, with expiry. SQLite embedded by default."""

from __future__ import annotations

import json
import time
from typing import Protocol

from .db import SQLite
from .engine import Session

DEFAULT_TTL = 4 * 3600  # a session outlives any real call; expired ones are purged


class SessionStore(Protocol):
    """Where the state of calls in progress lives between two webhooks."""

    def load(self, call_sid: str) -> Session | None: ...

    def save(self, session: Session) -> None: ...

    def delete(self, call_sid: str) -> None: ...


class SqliteSessionStore:
    """Sessions in the embedded SQLite file."""

    PURGE_EVERY = 500  # saves between two purges of expired sessions

    def __init__(self, db: SQLite, ttl: int = DEFAULT_TTL):
        self.db = db
        self.ttl = ttl
        self._saves = 0

    def load(self, call_sid: str) -> Session | None:
        row = self.db.connection().execute(
            "SELECT data FROM sessions WHERE call_sid = ? AND expires_at > ?", (call_sid, time.time())
        ).fetchone()
        return Session.from_dict(json.loads(row["data"])) if row else None

    def save(self, session: Session) -> None:
        now = time.time()
        conn = self.db.connection()
        conn.execute(
            "INSERT INTO sessions (call_sid, data, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (call_sid) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
            (session.call_sid, json.dumps(session.to_dict(), ensure_ascii=False), now + self.ttl),
        )
        self._saves += 1
        if self._saves % self.PURGE_EVERY == 0:
            conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))

    def delete(self, call_sid: str) -> None:
        self.db.connection().execute("DELETE FROM sessions WHERE call_sid = ?", (call_sid,))
