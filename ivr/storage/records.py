"""One record per call: how far it went, how it ended, and the context handed to an agent."""

from __future__ import annotations

import json
import time

import orjson

from ..call.session import Session
from .db import Database

# Twilio's final call statuses; only these close a record.
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
# Calls played from the console's simulator: "CAtry…" cannot be a Twilio CallSid (CA + 32 hex digits).
SIMULATED_PREFIX = "CAtry"
# A call's record is the merge of what its webhooks wrote, in whatever order the writes land (Twilio
# documents no order between a verb's action and the status callback; a write kept in the spool
# during an outage lands after newer ones; a statement sent before the database froze runs when it
# resumes, beside its spooled copy). The precedence, the same for every order:
# - where the call is and how it ended (node, step, outcome, reason, rating) come from the latest
#   state of its session: the one with the longest history (`progress_seq`); an older one, or the
#   same one again, moves nothing;
# - each event is its history entry number (`seq`): written twice, kept once;
# - the status callback closes the record once: its time and duration; a call it finds with no
#   outcome was hung up (or never answered), until a state of its session says otherwise;
# - the fallback's transfer (`fallback_at`) makes a call that has no other ending a transfer for a
#   technical error;
# - a transfer's result is kept for any call put through, whenever it comes; a call closed without
#   a transfer ignores one.
_UPSERT_CALL = """
    INSERT INTO calls (call_sid, caller, started_at, flow_version, last_node, last_step,
                       outcome, outcome_step, transfer_reason, context, simulated, incident, arms, rating, rating_channel, rating_at,
                       progress_seq)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (call_sid) DO UPDATE SET
        started_at = excluded.started_at, flow_version = excluded.flow_version, simulated = excluded.simulated,
        incident = excluded.incident, arms = excluded.arms,
        last_node = excluded.last_node, last_step = excluded.last_step,
        outcome = CASE WHEN excluded.outcome IS NULL AND calls.fallback_at IS NOT NULL THEN 'transferred'
                       ELSE COALESCE(excluded.outcome, calls.outcome) END,
        outcome_step = excluded.outcome_step,
        transfer_reason = CASE WHEN excluded.outcome IS NULL AND calls.fallback_at IS NOT NULL
                               THEN COALESCE(excluded.transfer_reason, 'technical_error') ELSE excluded.transfer_reason END,
        context = COALESCE(excluded.context, calls.context),
        rating = COALESCE(excluded.rating, calls.rating), rating_channel = COALESCE(excluded.rating_channel, calls.rating_channel),
        rating_at = COALESCE(excluded.rating_at, calls.rating_at), progress_seq = excluded.progress_seq,
        transfer_result = COALESCE(calls.transfer_result, CASE WHEN excluded.transfer_reason IS NOT NULL THEN calls.transfer_result_raw END)
    WHERE calls.progress_seq IS NULL OR excluded.progress_seq > calls.progress_seq
"""
# The new events of a call: its history entries as one JSON array, in their order, each numbered
# by its place in the history (`seq`, from the first entry not written yet): an entry written
# twice is kept once. The columns are read out of each entry; the rest of it is the event's detail.
_INSERT_EVENTS = {
    "sqlite": """
        INSERT INTO events (call_sid, seq, at, node, step, event, detail)
        SELECT ?, ? + key, json_extract(value, '$.at'), json_extract(value, '$.node'), json_extract(value, '$.step'),
               json_extract(value, '$.event'), json_remove(value, '$.at', '$.node', '$.step', '$.event')
        FROM json_each(?) WHERE true ORDER BY key
        ON CONFLICT (call_sid, seq) DO NOTHING
    """,
    "postgres": """
        INSERT INTO events (call_sid, seq, at, node, step, event, detail)
        SELECT ?, ?::integer + e.position::integer - 1, (e.value->>'at')::double precision, e.value->>'node', (e.value->>'step')::integer,
               e.value->>'event', (e.value - 'at' - 'node' - 'step' - 'event')::text
        FROM jsonb_array_elements(?::jsonb) WITH ORDINALITY AS e(value, position) ORDER BY e.position
        ON CONFLICT (call_sid, seq) DO NOTHING
    """,
}
_FALLBACK = """
    INSERT INTO calls (call_sid, caller, started_at, flow_version, outcome, transfer_reason, context, simulated, fallback_at)
    VALUES (?, ?, ?, ?, 'transferred', 'technical_error', ?, ?, ?)
    ON CONFLICT (call_sid) DO UPDATE SET
        fallback_at = COALESCE(calls.fallback_at, excluded.fallback_at),
        transfer_reason = CASE WHEN calls.outcome IS NULL OR calls.outcome = 'hung_up'
                               THEN COALESCE(calls.transfer_reason, 'technical_error') ELSE calls.transfer_reason END,
        outcome = CASE WHEN calls.outcome IS NULL OR calls.outcome = 'hung_up' THEN 'transferred' ELSE calls.outcome END,
        context = COALESCE(calls.context, excluded.context),
        transfer_result = COALESCE(calls.transfer_result, calls.transfer_result_raw)
"""
# A transfer's result: kept as it came, and counted at once unless the call is known to have ended
# without a transfer (a state of its session saying it was put through counts it when it lands).
_TRANSFER_RESULT = """
    INSERT INTO calls (call_sid, caller, started_at, transfer_result, transfer_result_raw) VALUES (?, '', ?, ?, ?)
    ON CONFLICT (call_sid) DO UPDATE SET transfer_result_raw = excluded.transfer_result_raw,
        transfer_result = CASE WHEN calls.call_status IS NULL OR calls.transfer_reason IS NOT NULL OR calls.fallback_at IS NOT NULL
                               THEN excluded.transfer_result ELSE calls.transfer_result END
"""


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
            len(session.history),
        )
        events = orjson.dumps(session.history[events_from:]).decode()
        insert_events = _INSERT_EVENTS[self.db.dialect]
        if self.db.dialect == "postgres":
            self.db.execute(f"WITH call AS ({_UPSERT_CALL}) {insert_events}", (*record, session.call_sid, events_from, events))
            return
        with self.db.transaction():
            self.db.execute(_UPSERT_CALL, record)
            self.db.execute(insert_events, (session.call_sid, events_from, events))

    def fallback(self, call_sid: str, caller: str, at: float, flow_version: str, context: dict) -> None:
        """The fallback put the caller through without reading the session: unless the call ended
        otherwise, it is a transfer for a technical error, whatever order this lands in."""
        self.db.execute(_FALLBACK, (call_sid, caller, at, flow_version, json.dumps(context, ensure_ascii=False),
                                    int(call_sid.startswith(SIMULATED_PREFIX)), at))

    def rate(self, call_sid: str, rating: int, channel: str, at: float) -> bool:
        """A rating given after the call (by SMS); False when the call is unknown."""
        return bool(self.db.execute("UPDATE calls SET rating = ?, rating_channel = ?, rating_at = ? WHERE call_sid = ?",
                                    (rating, channel, at, call_sid)))

    def transfer_result(self, call_sid: str, result: str, at: float | None = None) -> None:
        """How the transfer ended (answered, busy, no-answer, bridged, no_destination…), whenever it
        comes for a call that was put through: Twilio documents no order between a verb's action and
        the call's status callback. A result for a call closed without a transfer changes nothing."""
        self.db.execute(_TRANSFER_RESULT, (call_sid, time.time() if at is None else at, result, result))

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
