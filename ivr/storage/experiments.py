"""Sentence experiments (A/B): while one runs, `share` % of new calls hear wording B of a sentence.
At most one per sentence; stopped with the wording kept (A, or B made a console change), or ended
by a new wording published anyway (PUBLISHED)."""

from __future__ import annotations

from .db import Database

PUBLISHED = "publication"  # `kept` of an experiment ended by publishing a new wording of its sentence


class ExperimentError(Exception):
    """A refusal, said in French."""


class Experiments:
    def __init__(self, db: Database):
        self.db = db

    def running(self) -> list[dict]:
        return self.db.query("SELECT * FROM experiments WHERE stopped_at IS NULL ORDER BY key")

    def running_on(self, key: str) -> dict | None:
        """The experiment running on `key`, if one is."""
        return self.db.one("SELECT * FROM experiments WHERE key = ? AND stopped_at IS NULL", (key,))

    def get(self, key: str) -> dict | None:
        """The experiment running on `key`, or else the last one it had."""
        return self.db.one("SELECT * FROM experiments WHERE key = ? ORDER BY stopped_at IS NOT NULL, id DESC LIMIT 1", (key,))

    def start(self, key: str, text_b: str, share: int, who: str, now: float, text_a: str | None = None) -> int:
        """Start an experiment; `text_a`: the wording callers hear now (A), to notice if it changes."""
        if not 1 <= share <= 99:
            raise ExperimentError("la part d'appels en B se donne en %, de 1 à 99")
        if self.running_on(key) is not None:
            raise ExperimentError(f"une expérience est déjà en cours sur « {key} » : arrêtez-la d'abord (ivr experiment stop {key} --keep A|B)")
        row = self.db.one("INSERT INTO experiments (key, text_b, share, started_by, started_at, text_a) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                          (key, text_b, share, who, now, text_a))
        return row["id"]

    def stop(self, key: str, keep: str, who: str, now: float) -> dict:
        running = self.running_on(key)
        if running is None:
            raise ExperimentError(f"aucune expérience en cours sur « {key} »")
        self.db.execute("UPDATE experiments SET stopped_at = ?, stopped_by = ?, kept = ? WHERE id = ?", (now, who, keep, running["id"]))
        return {**running, "stopped_at": now, "stopped_by": who, "kept": keep}

    def all(self) -> list[dict]:
        return self.db.query("SELECT * FROM experiments ORDER BY id DESC")
