"""One call's orchestration: load the session, let the engine decide, save, write the records,
the callback list and the helpdesk outbox, and render the TwiML. No Flask: the web layer gives the
URLs (`Urls`) and the event; this module gives back a TwiML document."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from .. import metrics
from ..call import engine, handoff, transfer_results, twiml, visual
from ..call.session import Action, Event, GuideRequested, NoInput, Recorded, Session, Transfer
from ..storage.records import SIMULATED_PREFIX
from ..storage.sessions import Conflict
from . import endings
from .services import Services
from .writes import FOLLOWED_UP, follow_up, write

log = logging.getLogger(__name__)
# Times a webhook replays its event when another request of the call saved first; each conflict means
# another request of the call succeeded, so N requests racing need at most N - 1 replays.
RACE_RETRIES = 10

Decision = tuple[Session, tuple[Action, ...]]


class Urls(Protocol):
    """Where this request's TwiML points, as the web layer builds them."""

    scope: str  # what the URLs depend on besides node and phase (the prefix we are served under)

    def answer(self, node: str, phase: str) -> str: ...

    def links(self, call_sid: str) -> handoff.Links: ...


def incoming(ivr: Services, call_sid: str, caller: str, urls: Urls, token: str = "") -> str:
    """A call comes in: start the diagnostic (or say the question again if Twilio asks twice).

    A call's first webhook starts without reading: its new session is saved only if the call has
    none (one round trip less per call); when Twilio asks twice, that save finds the session of the
    first request, and this one is answered from it."""
    now = ivr.clock()

    def decide(session: Session | None) -> Decision:
        if session is None:
            return engine.start(ivr.bundle().flow, call_sid, caller, now, ivr.conditions(now))
        return engine.resume(ivr.bundle(session.flow_version).flow, session, ivr.conditions(now))

    return _advance(ivr, call_sid, decide, urls, token, first_webhook=True)


def answer(ivr: Services, call_sid: str, event: Event, urls: Urls, token: str = "") -> str:
    """Keys, words, a message or silence at a question."""

    def decide(session: Session | None) -> Decision:
        if session is None:
            raise LookupError("no session for this call (expired or store lost)")
        bundle = ivr.bundle(session.flow_version)
        page = visual.pressed(session, event.at)
        if page is not None and isinstance(event, NoInput) and not session.ended:
            # A button of the visual guide was pressed and the call was not moved then: its next quiet turn applies it.
            return engine.step(bundle.flow, session, page, ivr.conditions(event.at))
        guide = engine.requested_guide(bundle.flow, session, event)
        happened = event
        if guide is not None:
            # The SMS carries the call's visual guide when the server has a public address, else the general help page.
            link = urls.links(call_sid).visual if ivr.public_base else bundle.prompts.text("sms.lien_general")
            status = ivr.guides.send_for_caller(call_sid, session.caller, guide.sms, bundle.prompts.text(guide.sms, {"lien": link}))
            happened = GuideRequested(event.node, event.phase, guide.sms, status, event.at)
        after, actions = engine.step(bundle.flow, session, happened, ivr.conditions(event.at))
        if page is not None and (after.node, after.phase, after.ended) != (page.node, page.phase, False):
            # The caller answered on the line meanwhile: that answer wins over the button (a key that
            # leaves the question where it was, * or the SMS key, leaves the button waiting).
            after = engine.page_dropped(after.evolve(page=""), page)
        return after, actions

    late = (lambda: endings.late_message(ivr, call_sid, event)) if isinstance(event, Recorded) and event.duration != 0 else None
    return _advance(ivr, call_sid, decide, urls, token, on_closed=late)


def from_page(ivr: Services, call_sid: str, urls: Urls, token: str = "") -> str:
    """Twilio asks for the call's next TwiML because the server moved the call: a button of the
    visual guide was pressed. Applied now (« c'est noté », then where it leads); if another request
    applied it already, the current question again; a call already put through goes through again."""

    def decide(session: Session | None) -> Decision:
        if session is None:
            raise LookupError("no session for this call (expired or store lost)")
        bundle, now = ivr.bundle(session.flow_version), ivr.clock()
        if session.ended:
            return session.evolve(page=""), visual.again(session)
        page = visual.pressed(session, now)
        if page is None:
            return engine.resume(bundle.flow, session, ivr.conditions(now))
        return engine.step(bundle.flow, session, page, ivr.conditions(now))

    return _advance(ivr, call_sid, decide, urls, token)


def transfer_done(ivr: Services, call_sid: str, result: str, urls: Urls, caller_gone: bool = False, token: str = "") -> str:
    """Twilio reports how a <Dial> or <Enqueue> ended: after an agent, the rating question (if the
    caller is still there); if nobody answered, the callback or message offer. Sent again by
    Twilio (the same token), the same answer."""
    try:
        session, unreadable = ivr.store.load(call_sid), None
    except Exception as error:  # the store is down: the agent's result is still written
        session, unreadable = None, error
    if replayed(session, token):
        return session.reply
    now = ivr.clock()
    if _first_result(ivr, call_sid, session, unreadable) and not call_sid.startswith(SIMULATED_PREFIX):
        metrics.TRANSFERS.labels(result if transfer_results.documented(result) else "other").inc()
    write(ivr, "transfer_result", call_sid=call_sid, result=result, at=now)
    if session is not None and session.outcome is None:  # put through by the fallback, without its session
        session = engine.put_through(session, now)
        ivr.store.save(session, force=True)  # and the record at the call's end
    meaning = transfer_results.of(result)
    if not transfer_results.documented(result):
        log.warning("[%s] transfer result %r is not one Twilio documents: read as nobody took the call", call_sid, result[:40])
    if meaning.agent and unreadable is None:  # the call's status came first, or meanwhile: the rating SMS waited for this
        write(ivr, "rating_sms", call_sid=call_sid)
    if meaning.agent and meaning.caller_back and not caller_gone and session is not None:
        try:
            return _respond(ivr, *engine.rate_after_agent(ivr.bundle(session.flow_version).flow, session, now), urls, force=True, token=token)
        except Exception:  # the agent took the call: a rating is not worth an error, nor a second transfer
            log.exception("[%s] the rating question cannot be asked", call_sid)
    if meaning.agent or not meaning.caller_back or caller_gone:  # an agent took it (Flex: Twilio ignores this answer), or the caller left
        return twiml.goodbye(ivr.speech())  # nothing offered to nobody: the call stays a transfer, with its result
    if unreadable is not None:
        raise unreadable
    if result == "leave" and session is not None and engine.waiting_for_callback(session):
        return _respond(ivr, *engine.called_back_later(session, now), urls, force=True, token=token)
    log.warning("[%s] transfer not answered: %s", call_sid, result)
    if session is None or session.outcome != "transferred":
        return twiml.goodbye(ivr.speech(), twiml.UNAVAILABLE)
    return _respond(ivr, *engine.unanswered(ivr.bundle(session.flow_version).flow, session, now, ivr.conditions(now)), urls, force=True,
                    token=token)


def _first_result(ivr: Services, call_sid: str, session: Session | None, unreadable: Exception | None) -> bool:
    """Whether this transfer result is the call's first (counted once): with its session, always (a
    retry is answered from it before); without (its status came first), unless its record has one."""
    if session is not None or unreadable is not None:
        return True
    try:
        record = ivr.records.get(call_sid) or {}
        return not (record.get("transfer_result") or record.get("transfer_result_raw"))
    except Exception:  # the records do not answer: counted
        return True


def with_reply(session: Session, token: str, body: str, **changes) -> Session:
    """The session with `changes`, keeping `body` as the answer to the request of `token` (for
    Twilio's retry): one copy, or none when there is nothing to change."""
    if token:
        changes.update(reply_token=token, reply=body)
    return session.evolve(**changes) if changes else session


def apologise(ivr: Services, call_sid: str, caller: str, urls: Urls) -> str:
    """Something failed (our code, Twilio's use of our answer): say sorry and put the caller through
    with what we know; with the store or the records down too, with what the request says."""
    now = ivr.clock()
    if _closed(ivr, call_sid):
        log.info("[%s] a webhook after the call ended: nothing to do", call_sid)
        return twiml.empty()
    try:
        session = ivr.store.load(call_sid) if call_sid else None
        if session is None:
            session = Session(call_sid, caller, now, ivr.library.current_bundle.version)
        if session.ended and session.outcome != "transferred":
            return twiml.goodbye(ivr.speech())
        flow = ivr.bundle(session.flow_version).flow
        return _respond(ivr, *engine.fail(flow, session, now, ivr.conditions(now)), urls, force=True)
    except Exception:
        log.exception("[%s] could not build the transfer, transferring without context", call_sid)
        return bare_transfer(ivr, call_sid, caller, urls, read_nothing=True)


def bare_transfer(ivr: Services, call_sid: str, caller: str, urls: Urls, read_nothing: bool = False) -> str:
    """Sorry, and the agent destination, from the configuration and the request alone: no store. The
    task still carries the context URL, where the agent's tool finds what the caller said. The
    transfer's record and helpdesk document are a fact of the journal, written after the answer from
    what the session holds then; with `read_nothing` (the fallback: what failed may be the database
    or the disk), a journal that cannot be written loses it rather than wait on the database."""
    bare = {"call_sid": call_sid, "caller": caller, "reason": "technical_error", "reason_label": handoff.REASON_LABELS["technical_error"],
            "context_url": urls.links(call_sid).context}
    args = {"call_sid": call_sid, "caller": caller, "at": ivr.clock(), "flow_version": ivr.library.current_bundle.version, "document": bare}
    if not read_nothing:
        write(ivr, "fallback", **args)
    else:
        try:
            ivr.spool.add("fallback", args)
            ivr.nudge_spool()
        except OSError:
            log.exception("[%s] the record of this transfer cannot be kept", call_sid)
    return twiml.apology(ivr.speech(), handoff.plan(ivr.destinations, bare, urls.links(call_sid)))


def _closed(ivr: Services, call_sid: str) -> bool:
    """Whether the call's status came: the session store's mark (kept an hour), else its record."""
    try:
        return ivr.store.over(call_sid) or ivr.records.closed(call_sid)
    except Exception:  # unreachable: the call is taken as still going on
        log.warning("[%s] cannot tell whether the call has ended (store or records unreachable)", call_sid)
        return False


def context_now(ivr: Services, session: Session, links: handoff.Links | None = None) -> dict:
    """The agent's document for a call still in the IVR (the API, the console's simulator)."""
    session, _ = endings.with_devices(ivr, session)
    return handoff.context(session, ivr.bundle(session.flow_version).flow, ivr.clock(), links)


def _advance(ivr: Services, call_sid: str, decide: Callable[[Session | None], Decision], urls: Urls, token: str,
             first_webhook: bool = False, on_closed: Callable[[], None] | None = None) -> str:
    """Load the session, let the engine decide, save; replay on a fresh session if another request
    of the same call saved first (no lost write). A request Twilio retries (the same idempotency
    token as the last one answered) gets the same answer, and nothing is counted twice."""
    for attempt in range(RACE_RETRIES):
        unread = first_webhook and attempt == 0
        loaded = None if unread else ivr.store.load(call_sid)
        if loaded is None and not unread and _closed(ivr, call_sid):  # its status came first, or meanwhile
            log.info("[%s] a webhook after the call ended: nothing to do", call_sid)
            if on_closed is not None:
                on_closed()
            return twiml.empty()
        if replayed(loaded, token):
            return loaded.reply
        session, actions = decide(loaded)
        try:
            return _respond(ivr, session, actions, urls, token=token)
        except Conflict:
            if not unread:
                log.info("[%s] another request of this call saved first: replaying on the fresh session", call_sid)
    raise RuntimeError("the session kept changing under this request")


def replayed(session: Session | None, token: str) -> bool:
    """Whether Twilio sent this request again (the token of the last one answered): its answer is
    given again, and nothing is counted twice."""
    if token and session is not None and session.reply_token == token:
        log.info("[%s] Twilio sent this request again: the same answer", session.call_sid)
        return True
    return False


def _respond(ivr: Services, session: Session, actions: tuple[Action, ...], urls: Urls, force: bool = False, token: str = "") -> str:
    """Save the session (Conflict if another request saved first), record the call when it starts
    and ends, keep what the agents follow up, and render the TwiML.

    The events of a call live in its session's history until the call ends (transfer, goodbye or
    status callback): one write per webhook (the session) instead of three."""
    bundle = ivr.bundle(session.flow_version)
    now = ivr.clock()
    transfer = any(isinstance(action, Transfer) for action in actions)
    unrecorded = session.recorded
    ending = session.ended and unrecorded < len(session.history)  # a late webhook on an ended call records nothing
    followed_up = ending and session.outcome in FOLLOWED_UP
    links = urls.links(session.call_sid) if transfer or followed_up else None
    document = handoff.context(session, bundle.flow, now, links) if links else None
    plan = handoff.plan(ivr.destinations, document, links) if transfer else None
    speech = ivr.speech(bundle, session.variants)
    if plan is None:
        scope = (bundle.version, urls.scope, tuple(sorted(session.variants.items())))
        body = ivr.twiml_cache.document(scope, actions, speech, urls.answer)
    else:
        body = twiml.document(actions, speech, urls.answer, plan)
    recording = unrecorded == 0 or ending
    session = with_reply(session, token, body, **({"recorded": len(session.history)} if recording else {}))
    ivr.store.save(session, force=force)
    if unrecorded == 0:
        log.info("[%s] call started (flow %s)", session.call_sid, session.flow_version)
        if not session.call_sid.startswith(SIMULATED_PREFIX):
            metrics.CALLS_STARTED.inc()
            for prompt, arm in session.arms.items():
                metrics.ARMS.labels(prompt, arm).inc()
    call_sid = session.call_sid
    if recording:  # at a transfer the agent's document; at the end, the one completed by answers given in the queue, if any
        context = document if transfer else endings.queue_answers(ivr, session, unrecorded, now, lambda: urls.links(call_sid)) if ending else None
        write(ivr, "progress", session=session.to_dict(), context=context, events_from=unrecorded)
    if followed_up:
        follow_up(ivr, session, document, now)
    if plan is not None:
        log.info("[%s] transfer (%s) via %s", call_sid, session.transfer_reason, plan.kind)
        if ivr.outbox is not None and not call_sid.startswith(SIMULATED_PREFIX):
            write(ivr, "outbox", call_sid=call_sid, document=document, at=now)
        if plan.kind == "none":
            write(ivr, "transfer_result", call_sid=call_sid, result="no_destination", at=now)
            metrics.TRANSFERS.labels("no_destination").inc()
    return body


