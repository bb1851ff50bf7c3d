"""Incident announcements (a national Pro Santé Connect outage…): one at a time, in the database
every server reads, with who set and cleared each; an announcement ends by itself at its `until`."""

from __future__ import annotations

from .db import Database


class Incidents:
    def __init__(self, db: Database):
        self.db = db

    def current(self, now: float) -> dict | None:
        """The announcement new calls hear at `now`, or None."""
        return self.db.one("SELECT * FROM incidents WHERE cleared_at IS NULL AND (until_at IS NULL OR until_at > ?) ORDER BY id DESC LIMIT 1",
                           (now,))

    def set(self, text: str, until: float | None, who: str, now: float) -> int:
        """Announce `text` (until `until`, or until cleared); replaces the one in force."""
        with self.db.transaction():
            self.db.execute("UPDATE incidents SET cleared_at = ?, cleared_by = ? WHERE cleared_at IS NULL", (now, who))
            row = self.db.one("INSERT INTO incidents (text, until_at, set_by, set_at) VALUES (?, ?, ?, ?) RETURNING id", (text, until, who, now))
        return row["id"]

    def clear(self, who: str, now: float) -> bool:
        """End the announcement in force; False when there was none."""
        current = self.current(now)
        if current is None:
            return False
        self.db.execute("UPDATE incidents SET cleared_at = ?, cleared_by = ? WHERE id = ?", (now, who, current["id"]))
        return True

    def history(self, limit: int = 50) -> list[dict]:
        return self.db.query("SELECT * FROM incidents ORDER BY id DESC LIMIT ?", (limit,))
