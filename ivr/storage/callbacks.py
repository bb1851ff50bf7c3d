"""Callback requests left outside opening hours (or instead of waiting): who to call back, on which
number, with the context of the call, oldest first for the agents."""

from __future__ import annotations

import json
import time

from .db import Database


class Callbacks:
    """The agents' callback list."""

    def __init__(self, db: Database):
        self.db = db

    def add(self, call_sid: str, number: str, kind: str, context: dict, message_url: str | None = None, at: float | None = None) -> None:
        """Keep a request (once per call): kind is "callback" or "voicemail"."""
        self.db.execute(
            "INSERT INTO callbacks (call_sid, requested_at, number, kind, message_url, context) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (call_sid) DO NOTHING",
            (call_sid, time.time() if at is None else at, number, kind, message_url, json.dumps(context, ensure_ascii=False)),
        )

    def list(self, include_done: bool = False) -> list[dict]:
        """Requests, oldest first (pending only unless `include_done`)."""
        sql = "SELECT * FROM callbacks" + ("" if include_done else " WHERE status = 'pending'") + " ORDER BY requested_at, id"
        return [{**row, "context": json.loads(row["context"]) if row["context"] else None} for row in self.db.query(sql)]

    def of_call(self, call_sid: str) -> dict | None:
        """The request a call left (one per call), done or not."""
        row = self.db.one("SELECT * FROM callbacks WHERE call_sid = ?", (call_sid,))
        return None if row is None else {**row, "context": json.loads(row["context"]) if row["context"] else None}

    def done(self, callback_id: int, who: str) -> bool:
        """Mark a request handled; False when there is no such pending request."""
        return bool(self.db.execute("UPDATE callbacks SET status = 'done', done_at = ?, done_by = ? WHERE id = ? AND status = 'pending'",
                                    (time.time(), who, callback_id)))
