"""Writes the database refused while it answered (a poison line of the spool): kept with the reason,
out of the way of the others, until someone retries or drops them (`ivr journal`), or retention
purges them with the calls."""

from __future__ import annotations

import time

from .db import Database


class SetAside:
    """The set-aside writes, in the SQL database."""

    def __init__(self, db: Database):
        self.db = db

    def add(self, kind: str, call_sid: str, line: str, reason: str) -> None:
        # The line is JSON (control characters escaped): it fits a text column whatever it holds.
        self.db.execute("INSERT INTO set_aside (call_sid, kind, line, reason, at) VALUES (?, ?, ?, ?, ?)",
                        (call_sid, kind, line, reason, time.time()))

    def list(self) -> list[dict]:
        return self.db.query("SELECT id, call_sid, kind, line, reason, at FROM set_aside ORDER BY id")

    def count(self) -> int:
        return self.db.one("SELECT COUNT(*) AS n FROM set_aside")["n"]

    def remove(self, item_id: int) -> bool:
        return bool(self.db.execute("DELETE FROM set_aside WHERE id = ?", (item_id,)))

    def purge(self, before: float) -> int:
        return self.db.execute("DELETE FROM set_aside WHERE at < ?", (before,))
