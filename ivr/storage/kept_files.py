"""The last accepted text of a supervised file (the opening hours), in the shared database: a server
that starts on a broken edit serves it instead of refusing to start."""

from __future__ import annotations

import time

from .db import Database


class KeptFiles:
    def __init__(self, db: Database):
        self.db = db

    def keep(self, name: str, text: str) -> None:
        """Remember `text` as the last accepted `name` (nothing written when it is already that)."""
        if self.get(name) == text:
            return
        self.db.execute("INSERT INTO kept_files (name, text, at) VALUES (?, ?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET text = excluded.text, at = excluded.at", (name, text, time.time()))

    def get(self, name: str) -> str | None:
        row = self.db.one("SELECT text FROM kept_files WHERE name = ?", (name,))
        return row["text"] if row else None
