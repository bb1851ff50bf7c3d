"""What a call causes besides its answer (records and events, transfer results, the agents' list of
callbacks and messages, the helpdesk's documents, the rating SMS) is a fact appended to this
server's journal (the spool, a local file) and applied by its replay thread, nudged at once: a
webhook never waits on the database, the helpdesk or Twilio's REST API for it, and an outage is no
special path (the facts wait in the journal until the database answers). Each kind of fact is
applied from plain data, and applying one twice, or facts in another order, changes nothing more
(see ivr/storage/records.py for the record's precedence)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from ..call import engine, handoff, transfer_results
from ..call.library import Bundle
from ..call.session import Session
from ..storage.records import SIMULATED_PREFIX
from .services import Services

log = logging.getLogger(__name__)
# Ways a call can end that the agents follow up (the callback list).
FOLLOWED_UP = ("callback", "voicemail")
RATING_SMS = "satisfaction.sms"  # the sentence sent to ask a caller gone after the agent for a rating


def writers(ivr: Services) -> dict[str, Callable[[Mapping], None]]:
    """How each kind of fact is applied, from plain data (a line of the journal)."""
    return {
        "progress": lambda a: ivr.records.progress(Session.from_dict(a["session"]), a["context"], a["events_from"]),
        "close": lambda a: ivr.records.close(a["call_sid"], a["status"], a["ended_at"], a["duration"], a["caller"]),
        "transfer_result": lambda a: ivr.records.transfer_result(a["call_sid"], a["result"], a.get("at")),
        "late_message": lambda a: late_message(ivr, a),
        "callback": lambda a: ivr.callbacks.add(a["call_sid"], a["number"], a["kind"], a["document"], a["message_url"], a["at"]),
        "outbox": lambda a: _outbox(ivr, a),
        "fallback": lambda a: fallback(ivr, a),
        "rating_sms": lambda a: rating_by_sms(ivr, a["call_sid"]),
    }


_pending = threading.local()  # the facts of the request this thread is answering, appended together


def write(ivr: Services, what: str, **args) -> None:
    """A fact for later: appended to the journal and applied in the background, within
    milliseconds when the database answers. Within a webhook (`gather_facts`), its facts go in one
    append, before its answer leaves."""
    batch = getattr(_pending, "facts", None)
    if batch is not None:
        batch.append((what, args))
        return
    journal(ivr, [(what, args)])


def gather_facts() -> None:
    """From now on, what this thread writes waits for `journal_gathered` (a webhook's facts)."""
    _pending.facts = []


def journal_gathered(ivr: Services) -> None:
    """The facts this thread gathered, appended together (one sync to the disk), before the answer leaves."""
    facts, _pending.facts = getattr(_pending, "facts", None) or [], None
    journal(ivr, facts)


def journal(ivr: Services, facts: list[tuple[str, Mapping]]) -> None:
    """Append `facts` to the journal and nudge its thread. A journal that cannot be written (the
    disk is full) leaves them to be applied now, the database's wait included: late, not lost."""
    if not facts:
        return
    try:
        ivr.spool.add_all(facts)
    except OSError:
        log.exception("the journal cannot be written: %d fact(s) applied now", len(facts))
        for what, args in facts:
            try:
                writers(ivr)[what](args)
            except Exception:
                log.exception("[%s] %s is lost", args.get("call_sid") or (args.get("session") or {}).get("call_sid"), what)
        return
    ivr.nudge_spool()


def deliver_again(ivr: Services, call_sid: str, document: dict, at: float) -> None:
    """The helpdesk gets the document completed with the answers given in the queue, as a second version."""
    if ivr.outbox is not None and not call_sid.startswith(SIMULATED_PREFIX):
        write(ivr, "outbox", call_sid=call_sid, document=document, at=at, version="queue")


def follow_up(ivr: Services, session: Session, document: dict | None, at: float) -> None:
    """The call joins the agents' list of callbacks and messages."""
    if document is None:
        document = handoff.context(session, ivr.bundle(session.flow_version).flow, at)
    write(ivr, "callback", call_sid=session.call_sid, number=session.answers.get("numero_rappel") or session.caller, kind=session.outcome,
          document=document, message_url=session.answers.get("message_vocal"), at=at)


def _outbox(ivr: Services, args: Mapping) -> None:
    if ivr.outbox is None:  # a fact of a server configured with a helpdesk, applied by one without
        log.warning("[%s] a helpdesk document is dropped: HANDOFF_WEBHOOK_URL is not set here", args["call_sid"])
        return
    ivr.outbox.add(args["call_sid"], args["document"], args["at"], args.get("version", ""))
    ivr.nudge_outbox()


def fallback(ivr: Services, args: Mapping) -> None:
    """A transfer made without the session (the fallback, or the store down): the record says so
    and the helpdesk gets its document, written from what the session holds when it can be read
    now (this runs after the caller's answer, within a second when the database answers), else
    from the request."""
    call_sid, document, at = args["call_sid"], args["document"], args["at"]
    try:
        session = ivr.store.load(call_sid)
    except Exception:
        log.warning("[%s] the fallback's transfer is written without the session (store unreadable)", call_sid)
        session = None
    if session is not None:
        document = {**handoff.context(engine.put_through(session, at), ivr.bundle(session.flow_version).flow, at), **_links_of(document)}
    ivr.records.fallback(call_sid, args["caller"], at, args["flow_version"], document)
    if ivr.outbox is not None and not call_sid.startswith(SIMULATED_PREFIX):
        ivr.outbox.add(call_sid, document, at)
        ivr.nudge_outbox()


def _links_of(document: Mapping) -> dict:
    return {key: document[key] for key in ("context_url",) if key in document}


def late_message(ivr: Services, args: Mapping) -> None:
    """A message whose recording's action came after the call's status (the caller hung up to end
    it, and Twilio sent the status first): the call ends with it, and it joins the agents' list,
    unless the call ended otherwise."""
    call_sid = args["call_sid"]
    record = ivr.records.get(call_sid)
    if "message_url" not in args:  # a fact of the release before: the callback came as a fact of its own
        ivr.records.late_message(call_sid)
        return
    if record is not None and record["outcome"] not in ("hung_up", None):
        return
    record = record or {"caller": "", "last_step": None, "context": None}
    document = record["context"] or {"call_sid": call_sid, "caller": record["caller"], "last_step": record["last_step"]}
    ivr.records.late_message(call_sid)
    ivr.callbacks.add(call_sid, record["caller"], "voicemail", document, args["message_url"], args["at"])
    log.info("[%s] a message recorded as the caller hung up is kept (its status came first)", call_sid)


def rating_by_sms(ivr: Services, call_sid: str) -> None:
    """One rule, a fact of the status callback and of the transfer's result, applied after each
    (whichever lands last asks): a caller put through and gone before the rating question gets one
    SMS asking for it (when SMS is configured; the answer comes to POST /sms) once the call is
    closed and its transfer's result says an agent took it; not if they rated or were asked on the line."""
    record = ivr.records.get(call_sid)  # the database down: the fact waits in the journal with the others
    if record is None or record["call_status"] is None or record["outcome"] != "transferred" or record["rating"] is not None:
        return
    if record["transfer_result"] is None:  # Twilio documents no order: the transfer's result, when it lands, asks again
        log.info("[%s] the rating SMS waits for the transfer's result", call_sid)
        return
    bundle = ivr.bundle(record["flow_version"])
    if not transfer_results.of(record["transfer_result"]).agent or bundle.flow.satisfaction is None or bundle.flow.ratings_off:
        return
    if not any(event["event"] == "rating_offer" for event in ivr.records.events(call_sid)):
        _send_rating(ivr, call_sid, record["caller"], bundle)


def _send_rating(ivr: Services, call_sid: str, number: str, bundle: Bundle) -> None:
    status = ivr.guides.send(call_sid, number, RATING_SMS, bundle.prompts.text(RATING_SMS))  # once per call, whoever asks twice
    log.info("[%s] rating asked by SMS: %s", call_sid, status)
