"""The texts of every version of the flow and prompts served, by label, in the shared database: any
server loads the version a call started on, after a restart too."""

from __future__ import annotations

import time

from ..call.library import Sources
from .db import Database


class VersionArchive:
    def __init__(self, db: Database):
        self.db = db

    def keep(self, version: str, sources: Sources) -> None:
        self.db.execute("INSERT INTO flow_versions (version, flow, prompts, overrides, created_at) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (version) DO UPDATE SET created_at = excluded.created_at",  # published again: the latest
                        (version, sources.flow, sources.prompts, sources.overrides, time.time()))

    def latest(self) -> Sources | None:
        """The version published last, by any server."""
        row = self.db.one("SELECT flow, prompts, overrides FROM flow_versions ORDER BY created_at DESC LIMIT 1")
        return None if row is None else Sources(row["flow"], row["prompts"], row["overrides"])

    def get(self, version: str) -> Sources | None:
        row = self.db.one("SELECT flow, prompts, overrides FROM flow_versions WHERE version = ?", (version,))
        return None if row is None else Sources(row["flow"], row["prompts"], row["overrides"])
