"""How a call ends, whatever order its last requests come in: Twilio documents no order between a
verb's action and the call's status callback, and sends either again. The status closes the record;
a late transfer result, a late voice message or answers given in the queue still reach the record,
the agents' list and the helpdesk; the rating SMS goes once, when an agent took the call."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..call import engine, handoff, transfer_results
from ..call.library import Bundle
from ..call.session import Recorded, Session
from .services import Services
from .writes import FOLLOWED_UP, deliver_again, follow_up, write

log = logging.getLogger(__name__)
RATING_SMS = "satisfaction.sms"  # the sentence sent to ask a caller gone after the agent for a rating


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
    if session is not None and session.recorded < len(session.history):  # hung up mid-call: its events until now
        document = queue_answers(ivr, session, session.recorded, now, lambda: links(call_sid) if links else None)
        write(ivr, "progress", session=session.to_dict(), context=document, events_from=session.recorded)
        if session.outcome in FOLLOWED_UP:
            follow_up(ivr, session, None, now)
    write(ivr, "close", call_sid=call_sid, status=status, ended_at=now, duration=seconds, caller=caller)
    if session is not None and engine.wants_rating_by_sms(ivr.bundle(session.flow_version).flow, session):
        rating_by_sms(ivr, call_sid)  # after the close: a transfer result written meanwhile finds the call closed and asks itself
    log.info("[%s] call ended: %s", call_sid, status)


def queue_answers(ivr: Services, session: Session, since: int, at: float, links: Callable[[], handoff.Links | None]) -> dict | None:
    """The agent's document again when answers given in the queue since history entry `since` are
    not in the record yet (the agent took the call before the questions were over, and the caller
    then hung up or rated the call): for the record, and for the helpdesk as its second version."""
    if session.outcome != "transferred" or not any(entry.get("event") == "queued_answer" for entry in session.history[since:]):
        return None
    return completed_document(ivr, session, at, links())


def completed_document(ivr: Services, session: Session, at: float, links: handoff.Links | None) -> dict:
    """The agent's document with what was answered in the queue, sent to the helpdesk as its second version."""
    document = handoff.context(session, ivr.bundle(session.flow_version).flow, at, links)
    deliver_again(ivr, session.call_sid, document, at)
    return document


def late_message(ivr: Services, call_sid: str, event: Recorded) -> None:
    """A message whose recording's action came after the call's status (the caller hung up to end
    it, and Twilio sent the status first): it is kept and followed up all the same."""
    record = ivr.records.get(call_sid)
    if record is None or record["outcome"] not in ("hung_up", None):
        return
    document = record["context"] or {"call_sid": call_sid, "caller": record["caller"], "last_step": record["last_step"]}
    write(ivr, "late_message", call_sid=call_sid)
    write(ivr, "callback", call_sid=call_sid, number=record["caller"], kind="voicemail", document=document, message_url=event.url, at=event.at)
    log.info("[%s] a message recorded as the caller hung up is kept (its status came first)", call_sid)


def rating_by_sms(ivr: Services, call_sid: str) -> None:
    """One rule, asked by the status callback and by the transfer's result, whichever comes last: a
    caller put through and gone before the rating question gets one SMS asking for it (when SMS is
    configured; the answer comes to POST /sms) once the call is closed and its transfer's result
    says an agent took it; not if they rated or were asked on the line."""
    try:
        record = ivr.records.get(call_sid)
        if record is None or record["call_status"] is None or record["outcome"] != "transferred" or record["rating"] is not None:
            return
        if record["transfer_result"] is None:  # Twilio documents no order: the transfer's action, when it comes, asks again
            log.info("[%s] the rating SMS waits for the transfer's result", call_sid)
            return
        bundle = ivr.bundle(record["flow_version"])
        if not transfer_results.of(record["transfer_result"]).agent or bundle.flow.satisfaction is None or bundle.flow.ratings_off:
            return
        if not any(event["event"] == "rating_offer" for event in ivr.records.events(call_sid)):
            _send_rating(ivr, call_sid, record["caller"], bundle)
    except Exception:
        log.exception("[%s] the rating could not be asked by SMS", call_sid)


def _send_rating(ivr: Services, call_sid: str, number: str, bundle: Bundle) -> None:
    status = ivr.guides.send(call_sid, number, RATING_SMS, bundle.prompts.text(RATING_SMS))  # once per call, whoever asks twice
    log.info("[%s] rating asked by SMS: %s", call_sid, status)
