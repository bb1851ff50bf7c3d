"""How a call ends, whatever order its last requests come in: Twilio documents no order between a
verb's action and the call's status callback, and sends either again. The status closes the record;
a late transfer result, a late voice message or answers given in the queue still reach the record,
the agents' list and the helpdesk; the rating SMS goes once, when an agent took the call. All of it
as facts of the journal (ivr/web/writes.py): nothing here waits on the database."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .. import metrics
from ..call import engine, handoff
from ..call.session import Recorded, Session
from ..storage.records import SIMULATED_PREFIX
from .services import Services
from .writes import FOLLOWED_UP, deliver_again, follow_up, write

log = logging.getLogger(__name__)


def ended(ivr: Services, call_sid: str, status: str, seconds: int | None, caller: str,
          links: Callable[[str], handoff.Links] | None = None) -> None:
    """Twilio's final status: the call's last events and its record are written, its session is
    taken (no later request of the call reads it or saves it back).
    Hanging up at a question whose flow says what that means (a message already left…) ends the
    call so, and what the agents follow up joins their list. Answers given in the queue and not yet
    written (the agent took the call mid-questions) join the agent's document in the record."""
    now = ivr.clock()
    try:
        session = ivr.store.take(call_sid)
        if session is not None and not session.ended:
            session = engine.hung_up(ivr.bundle(session.flow_version).flow, session, now)
        elif session is not None and session.outcome == "transferred" and engine.waiting_for_callback(session):
            session = engine.called_back_later(session, now)[0]  # it left the queue to be called back; its <Leave> action comes late
    except Exception:  # the store is down: the call is closed all the same (its last events stay in the store)
        log.exception("[%s] the call's session cannot be read at its end", call_sid)
        session = None
        metrics.STORE_ERRORS.labels("sessions").inc()
        metrics.ended("unknown", None)
    else:
        if session is not None and not call_sid.startswith(SIMULATED_PREFIX):  # taken once: a status sent again counts nothing
            metrics.ended(session.outcome, session.outcome_step or session.step)
    devices_missed = False
    if session is not None:
        session, devices_missed = with_devices(ivr, session)  # then the call's document is written again
    if session is not None and (session.recorded < len(session.history) or devices_missed):  # hung up mid-call: its events until now
        document = queue_answers(ivr, session, session.recorded, now, lambda: links(call_sid) if links else None, devices_missed)
        write(ivr, "progress", session=session.to_dict(), context=document, events_from=session.recorded)
        if session.outcome in FOLLOWED_UP:
            follow_up(ivr, session, None, now)
    write(ivr, "close", call_sid=call_sid, status=status, ended_at=now, duration=seconds, caller=caller)
    if session is None or session.outcome == "transferred":  # the one rule, from the record once closed (a result landing later asks again)
        write(ivr, "rating_sms", call_sid=call_sid)
    log.info("[%s] call ended: %s", call_sid, status)


def with_devices(ivr: Services, session: Session) -> tuple[Session, bool]:
    """The session with what the caller's devices sent, as kept with the call (the session's own copy
    may be a moment behind, or lost under a save forced over it), and whether that copy lacked a
    device; the database not answering, the session's copy."""
    try:
        found = ivr.devices.of_call(session.call_sid)
    except Exception:
        return session, False
    if not found:
        return session, False
    return session.evolve(devices={**session.devices, **found}), any(kind not in session.devices for kind in found)


def queue_answers(ivr: Services, session: Session, since: int, at: float, links: Callable[[], handoff.Links | None],
                  devices_missed: bool = False) -> dict | None:
    """The agent's document again when answers given in the queue since history entry `since` are
    not in the record yet (the agent took the call before the questions were over, and the caller
    then hung up or rated the call), or what a device sent since: for the record, and for the helpdesk
    as its second version."""
    if session.outcome != "transferred" or not (devices_missed or any(entry.get("event") in ("queued_answer", "device")
                                                                      for entry in session.history[since:])):
        return None
    return completed_document(ivr, session, at, links())


def completed_document(ivr: Services, session: Session, at: float, links: handoff.Links | None) -> dict:
    """The agent's document with what was answered in the queue, sent to the helpdesk as its second version."""
    document = handoff.context(session, ivr.bundle(session.flow_version).flow, at, links)
    deliver_again(ivr, session.call_sid, document, at)
    return document


def late_message(ivr: Services, call_sid: str, event: Recorded) -> None:
    """A message whose recording's action came after the call's status (the caller hung up to end
    it, and Twilio sent the status first): kept and followed up all the same, unless the call
    ended otherwise (writes.late_message, applied from the journal)."""
    write(ivr, "late_message", call_sid=call_sid, message_url=event.url, at=event.at)
