"""One record per call: how far it went, how it ended, and the context handed to an agent."""

from __future__ import annotations

import json

import orjson

from ..call.session import Session
from .db import Database

# Twilio's final call statuses; only these close a record.
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
# Calls played from the console's simulator: "CAtry…" cannot be a Twilio CallSid (CA + 32 hex digits).
SIMULATED_PREFIX = "CAtry"
_UPSERT_CALL = """
    INSERT INTO calls (call_sid, caller, started_at, flow_version, last_node, last_step,
                       outcome, outcome_step, transfer_reason, context, simulated, incident, arms, rating, rating_channel, rating_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (call_sid) DO UPDATE SET
        last_node = excluded.last_node, last_step = excluded.last_step,
        outcome = excluded.outcome, outcome_step = excluded.outcome_step,
        transfer_reason = excluded.transfer_reason,
        context = COALESCE(excluded.context, calls.context),
        rating = COALESCE(excluded.rating, calls.rating), rating_channel = COALESCE(excluded.rating_channel, calls.rating_channel),
        rating_at = COALESCE(excluded.rating_at, calls.rating_at)
    WHERE calls.call_status IS NULL
"""
# The new events of a call: its history entries as one JSON array, in their order (ids follow it);
# the columns are read out of each entry and the rest of it is the event's detail.
_INSERT_EVENTS = {
    "sqlite": """
        INSERT INTO events (call_sid, at, node, step, event, detail)
        SELECT ?, json_extract(value, '$.at'), json_extract(value, '$.node'), json_extract(value, '$.step'),
               json_extract(value, '$.event'), json_remove(value, '$.at', '$.node', '$.step', '$.event')
        FROM json_each(?) ORDER BY key
    """,
    "postgres": """
        INSERT INTO events (call_sid, at, node, step, event, detail)
        SELECT ?, (e.value->>'at')::double precision, e.value->>'node', (e.value->>'step')::integer,
               e.value->>'event', (e.value - 'at' - 'node' - 'step' - 'event')::text
        FROM jsonb_array_elements(?::jsonb) WITH ORDINALITY AS e(value, position) ORDER BY position
    """,
}


def _rated_at(session: Session) -> float | None:
    return next((entry["at"] for entry in reversed(session.history) if entry.get("event") == "rating"), None)


class CallRecords:
    """Call records and their events in the SQL database."""

    def __init__(self, db: Database):
        self.db = db

    def progress(self, session: Session, context: dict | None = None, events_from: int = 0) -> None:
        """Record where the call is now, its new events (history from `events_from` on), and the
        agent context when it is being transferred.

        The events travel as one JSON array unpacked by the database: on PostgreSQL the record and
        its events are one statement (one round trip, not one per event)."""
        record = (
            session.call_sid,
            session.caller,
            session.started_at,
            session.flow_version,
            session.node,
            session.step,
            session.outcome,
            session.outcome_step,
            session.transfer_reason,
            json.dumps(context, ensure_ascii=False) if context is not None else None,
            int(session.call_sid.startswith(SIMULATED_PREFIX)),
            session.incident,
            json.dumps(dict(session.arms), sort_keys=True) if session.arms else None,
            session.rating,
            "voice" if session.rating is not None else None,
            _rated_at(session),
        )
        events = orjson.dumps(session.history[events_from:]).decode()
        insert_events = _INSERT_EVENTS[self.db.dialect]
        if self.db.dialect == "postgres":
            self.db.execute(f"WITH call AS ({_UPSERT_CALL}) {insert_events}", (*record, session.call_sid, events))
            return
        with self.db.transaction():
            self.db.execute(_UPSERT_CALL, record)
            self.db.execute(insert_events, (session.call_sid, events))

    def rate(self, call_sid: str, rating: int, channel: str, at: float) -> bool:
        """A rating given after the call (by SMS); False when the call is unknown."""
        return bool(self.db.execute("UPDATE calls SET rating = ?, rating_channel = ?, rating_at = ? WHERE call_sid = ?",
                                    (rating, channel, at, call_sid)))

    def transfer_result(self, call_sid: str, result: str) -> None:
        """How the transfer ended (answered, busy, no-answer, bridged, no_destination…), whenever it
        comes for a call that was put through: Twilio documents no order between a verb's action and
        the call's status callback. A result for a call closed without a transfer changes nothing."""
        self.db.execute("UPDATE calls SET transfer_result = ? WHERE call_sid = ? AND (call_status IS NULL OR transfer_reason IS NOT NULL)",
                        (result, call_sid))

    def close(self, call_sid: str, status: str, ended_at: float, duration_s: int | None, caller: str = "") -> None:
        """The call is over: a call that ended with no outcome was hung up (or never answered).

        A call we never saw (its first webhook failed) still gets a record; a status sent again
        changes nothing."""
        fallback = "hung_up" if status == "completed" else status
        self.db.execute(
            """
            INSERT INTO calls (call_sid, caller, started_at, ended_at, duration_s, call_status, outcome)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (call_sid) DO UPDATE SET
                ended_at = excluded.ended_at, duration_s = excluded.duration_s,
                call_status = excluded.call_status, outcome = COALESCE(calls.outcome, excluded.outcome)
            WHERE calls.call_status IS NULL
            """,
            (call_sid, caller, ended_at - (duration_s or 0), ended_at, duration_s, status, fallback),
        )

    def late_message(self, call_sid: str) -> None:
        """A call closed as hung up whose voice message arrived afterwards: it ended with that message."""
        self.db.execute("UPDATE calls SET outcome = 'voicemail' WHERE call_sid = ? AND (outcome = 'hung_up' OR outcome IS NULL)", (call_sid,))

    def closed(self, call_sid: str) -> bool:
        """Whether Twilio has already said the call is over (its status callback came)."""
        return self.db.one("SELECT 1 AS closed FROM calls WHERE call_sid = ? AND call_status IS NOT NULL", (call_sid,)) is not None

    def events(self, call_sid: str) -> list[dict]:
        """The timeline of one call, oldest first."""
        rows = self.db.query("SELECT * FROM events WHERE call_sid = ? ORDER BY at, id", (call_sid,))
        return [{**row, "detail": json.loads(row["detail"]) if row["detail"] else {}} for row in rows]

    def get(self, call_sid: str) -> dict | None:
        """The record of one call, context decoded."""
        record = self.db.one("SELECT * FROM calls WHERE call_sid = ?", (call_sid,))
        if record is None:
            return None
        record["context"] = json.loads(record["context"]) if record["context"] else None
        record["arms"] = json.loads(record["arms"]) if record.get("arms") else {}
        return record
