"""What a call causes besides its answer (records and events, transfer results, the agents' list of
callbacks and messages, the helpdesk's documents), written now or, when the database fails, kept in
the spool and written once it answers: every kind from plain data, the same code for both."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..call import engine, handoff
from ..call.session import Session
from ..storage.records import SIMULATED_PREFIX
from .services import Services

log = logging.getLogger(__name__)
# Ways a call can end that the agents follow up (the callback list).
FOLLOWED_UP = ("callback", "voicemail")


def writers(ivr: Services) -> dict[str, Callable[[Mapping], None]]:
    """The writes a call makes for later (records, the agents' lists), by kind, from plain data: the
    same run now or replayed from the spool after an outage."""
    return {
        "progress": lambda a: ivr.records.progress(Session.from_dict(a["session"]), a["context"], a["events_from"]),
        "close": lambda a: ivr.records.close(a["call_sid"], a["status"], a["ended_at"], a["duration"], a["caller"]),
        "transfer_result": lambda a: ivr.records.transfer_result(a["call_sid"], a["result"], a.get("at")),
        "fallback": lambda a: fallback(ivr, a),
        "late_message": lambda a: ivr.records.late_message(a["call_sid"]),
        "callback": lambda a: ivr.callbacks.add(a["call_sid"], a["number"], a["kind"], a["document"], a["message_url"], a["at"]),
        "outbox": lambda a: ivr.outbox.add(a["call_sid"], a["document"], a["at"], a.get("version", "")),
    }


def write(ivr: Services, what: str, **args) -> None:
    """A write for later: the caller in front of us comes first. If the database fails, the write is
    spooled on this server's disk and made once the database answers."""
    try:
        writers(ivr)[what](args)
    except Exception:
        log.exception("[%s] could not write %s now: spooled for later", args.get("call_sid") or args["session"]["call_sid"], what)
        ivr.spool.add(what, args)


def deliver_again(ivr: Services, call_sid: str, document: dict, at: float) -> None:
    """The helpdesk gets the document completed with the answers given in the queue, as a second version."""
    if ivr.outbox is not None and not call_sid.startswith(SIMULATED_PREFIX):
        write(ivr, "outbox", call_sid=call_sid, document=document, at=at, version="queue")
        ivr.nudge_outbox()


def follow_up(ivr: Services, session: Session, document: dict | None, at: float) -> None:
    """The call joins the agents' list of callbacks and messages."""
    if document is None:
        document = handoff.context(session, ivr.bundle(session.flow_version).flow, at)
    write(ivr, "callback", call_sid=session.call_sid, number=session.answers.get("numero_rappel") or session.caller, kind=session.outcome,
           document=document, message_url=session.answers.get("message_vocal"), at=at)


def fallback(ivr: Services, args: Mapping) -> None:
    """A transfer made without the session (the fallback, or the store down): the record says so
    and the helpdesk gets its document, written from what the session holds when it can be read
    now (this runs after the caller's answer, or later from the spool), else from the request."""
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
