"""One call's orchestration: load the session, let the engine decide, save, write the records,
the callback list and the helpdesk outbox, and render the TwiML. No Flask: the web layer gives the
URLs (`Urls`) and the event; this module gives back a TwiML document."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from ..call import engine, handoff, transfer_results, twiml, visual
from ..call.session import Action, Event, GuideRequested, NoInput, Recorded, Session, Transfer
from ..storage.records import SIMULATED_PREFIX
from ..storage.sessions import Conflict
from .services import Services

log = logging.getLogger(__name__)
# Times a webhook replays its event when another request of the call saved first; each conflict means
# another request of the call succeeded, so N requests racing need at most N - 1 replays.
RACE_RETRIES = 10
RATING_SMS = "satisfaction.sms"  # the sentence sent to ask a caller gone after the agent for a rating
# Ways a call can end that the agents follow up (the callback list).
FOLLOWED_UP = ("callback", "voicemail")

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
            status = ivr.guides.send(call_sid, session.caller, guide.sms, bundle.prompts.text(guide.sms, {"lien": link}))
            happened = GuideRequested(event.node, event.phase, guide.sms, status, event.at)
        after, actions = engine.step(bundle.flow, session, happened, ivr.conditions(event.at))
        if page is not None and (after.node, after.phase, after.ended) != (page.node, page.phase, False):
            # The caller answered on the line meanwhile: that answer wins over the button (a key that
            # leaves the question where it was, * or the SMS key, leaves the button waiting).
            after = engine.page_dropped(after.evolve(page=""), page)
        return after, actions

    late = (lambda: _late_message(ivr, call_sid, event)) if isinstance(event, Recorded) and event.duration != 0 else None
    return _advance(ivr, call_sid, decide, urls, token, on_closed=late)


def _late_message(ivr: Services, call_sid: str, event: Recorded) -> None:
    """A message whose recording's action came after the call's status (the caller hung up to end
    it, and Twilio sent the status first): it is kept and followed up all the same."""
    record = ivr.records.get(call_sid)
    if record is None or record["outcome"] not in ("hung_up", None):
        return
    document = record["context"] or {"call_sid": call_sid, "caller": record["caller"], "last_step": record["last_step"]}
    write(ivr, "late_message", call_sid=call_sid)
    write(ivr, "callback", call_sid=call_sid, number=record["caller"], kind="voicemail", document=document, message_url=event.url, at=event.at)
    log.info("[%s] a message recorded as the caller hung up is kept (its status came first)", call_sid)


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
    write(ivr, "transfer_result", call_sid=call_sid, result=result)
    if session is not None and session.outcome is None:  # put through by the fallback, without its session
        session = engine.put_through(session, now)
        ivr.store.save(session, force=True)  # and the record at the call's end
    meaning = transfer_results.of(result)
    if not transfer_results.documented(result):
        log.warning("[%s] transfer result %r is not one Twilio documents: read as nobody took the call", call_sid, result[:40])
    if meaning.agent and unreadable is None:  # the call's status came first, or meanwhile: the rating SMS waited for this
        _late_rating_by_sms(ivr, call_sid)
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


def with_reply(session: Session, token: str, body: str, **changes) -> Session:
    """The session with `changes`, keeping `body` as the answer to the request of `token` (for
    Twilio's retry): one copy, or none when there is nothing to change."""
    if token:
        changes.update(reply_token=token, reply=body)
    return session.evolve(**changes) if changes else session


def deliver_again(ivr: Services, call_sid: str, document: dict, at: float) -> None:
    """The helpdesk gets the document completed with the answers given in the queue, as a second version."""
    if ivr.outbox is not None and not call_sid.startswith(SIMULATED_PREFIX):
        write(ivr, "outbox", call_sid=call_sid, document=document, at=at, version="queue")
        ivr.nudge_outbox()


def queue_answers(ivr: Services, session: Session, since: int, at: float, links: handoff.Links | None) -> dict | None:
    """The agent's document again when answers given in the queue since history entry `since` are
    not in the record yet (the agent took the call before the questions were over, and the caller
    then hung up or rated the call): for the record, and for the helpdesk as its second version."""
    if session.outcome != "transferred" or not any(entry.get("event") == "queued_answer" for entry in session.history[since:]):
        return None
    document = handoff.context(session, ivr.bundle(session.flow_version).flow, at, links)
    deliver_again(ivr, session.call_sid, document, at)
    return document


def ended(ivr: Services, call_sid: str, status: str, seconds: int | None, caller: str, urls: Urls | None = None) -> None:
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
        document = queue_answers(ivr, session, session.recorded, now, urls.links(call_sid) if urls else None)
        write(ivr, "progress", session=session.to_dict(), context=document, events_from=session.recorded)
        if session.outcome in FOLLOWED_UP:
            _follow_up(ivr, session, None, now)
    write(ivr, "close", call_sid=call_sid, status=status, ended_at=now, duration=seconds, caller=caller)
    if session is not None:  # after the close: a transfer result written meanwhile finds the call closed and asks itself
        _rating_by_sms(ivr, session)
    log.info("[%s] call ended: %s", call_sid, status)


def _rating_by_sms(ivr: Services, session: Session) -> None:
    """A caller who talked with an agent but was gone before the rating question: one SMS asks for it
    (when SMS is configured); the answer comes to POST /sms."""
    try:
        bundle = ivr.bundle(session.flow_version)
        if not engine.wants_rating_by_sms(bundle.flow, session):
            return
        result = (ivr.records.get(session.call_sid) or {}).get("transfer_result")
        if result is None:  # Twilio documents no order: the transfer's action, when it comes, asks if an agent took it
            log.info("[%s] the rating SMS waits for the transfer's result", session.call_sid)
            return
        if transfer_results.of(result).agent:
            _send_rating(ivr, session.call_sid, session.caller, bundle)
    except Exception:
        log.exception("[%s] the rating could not be asked by SMS", session.call_sid)


def _late_rating_by_sms(ivr: Services, call_sid: str) -> None:
    """An agent took the call, and Twilio reported it after the call's status: the rating SMS that
    waited for it, on the same conditions (put through, not rated, not asked on the line)."""
    try:
        record = ivr.records.get(call_sid)
        if record is None or record["call_status"] is None or record["outcome"] != "transferred" or record["rating"] is not None:
            return
        bundle = ivr.bundle(record["flow_version"])
        if bundle.flow.satisfaction is None or bundle.flow.ratings_off:
            return
        if not any(event["event"] == "rating_offer" for event in ivr.records.events(call_sid)):
            _send_rating(ivr, call_sid, record["caller"], bundle)
    except Exception:
        log.exception("[%s] the rating could not be asked by SMS", call_sid)


def _send_rating(ivr: Services, call_sid: str, number: str, bundle) -> None:
    status = ivr.guides.send(call_sid, number, RATING_SMS, bundle.prompts.text(RATING_SMS))  # once per call, whoever asks twice
    log.info("[%s] rating asked by SMS: %s", call_sid, status)



def _follow_up(ivr: Services, session: Session, document: dict | None, at: float) -> None:
    """The call joins the agents' list of callbacks and messages."""
    if document is None:
        document = handoff.context(session, ivr.bundle(session.flow_version).flow, at)
    write(ivr, "callback", call_sid=session.call_sid, number=session.answers.get("numero_rappel") or session.caller, kind=session.outcome,
           document=document, message_url=session.answers.get("message_vocal"), at=at)


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
    task still carries the context URL, where the agent's tool finds what the caller said. The call's
    record is written now, or with `read_nothing` (the fallback: what failed may be the database)
    through the spool, a file of this server written to the database within seconds."""
    bare = {"call_sid": call_sid, "caller": caller, "reason": "technical_error", "reason_label": handoff.REASON_LABELS["technical_error"],
            "context_url": urls.links(call_sid).context}
    now = ivr.clock()
    record = Session(call_sid, caller, now, ivr.library.current_bundle.version, outcome="transferred", transfer_reason="technical_error")
    args = {"session": record.to_dict(), "context": bare, "events_from": 0}
    try:
        ivr.spool.add("progress", args) if read_nothing else write(ivr, "progress", **args)
    except OSError:
        log.exception("[%s] the record of this transfer cannot be kept", call_sid)
    return twiml.apology(ivr.speech(), handoff.plan(ivr.destinations, bare, urls.links(call_sid)))


def _closed(ivr: Services, call_sid: str) -> bool:
    try:
        return ivr.records.closed(call_sid)
    except Exception:  # the records are unreachable: the call is taken as still going on
        log.warning("[%s] cannot tell whether the call has ended (records unreachable)", call_sid)
        return False


def context_now(ivr: Services, session: Session, links: handoff.Links | None = None) -> dict:
    """The agent's document for a call still in the IVR (the API, the console's simulator)."""
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
    follow_up = ending and session.outcome in FOLLOWED_UP
    links = urls.links(session.call_sid) if transfer or follow_up else None
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
    call_sid = session.call_sid
    if recording:  # at a transfer the agent's document; at the end, the one completed by answers given in the queue, if any
        context = document if transfer else queue_answers(ivr, session, unrecorded, now, urls.links(call_sid)) if ending else None
        write(ivr, "progress", session=session.to_dict(), context=context, events_from=unrecorded)
    if follow_up:
        _follow_up(ivr, session, document, now)
    if plan is not None:
        log.info("[%s] transfer (%s) via %s", call_sid, session.transfer_reason, plan.kind)
        if ivr.outbox is not None and not call_sid.startswith(SIMULATED_PREFIX):
            write(ivr, "outbox", call_sid=call_sid, document=document, at=now)
            ivr.nudge_outbox()
        if plan.kind == "none":
            write(ivr, "transfer_result", call_sid=call_sid, result="no_destination")
    return body


def writers(ivr: Services) -> dict[str, Callable[[Mapping], None]]:
    """The writes a call makes for later (records, the agents' lists), by kind, from plain data: the
    same run now or replayed from the spool after an outage."""
    return {
        "progress": lambda a: ivr.records.progress(Session.from_dict(a["session"]), a["context"], a["events_from"]),
        "close": lambda a: ivr.records.close(a["call_sid"], a["status"], a["ended_at"], a["duration"], a["caller"]),
        "transfer_result": lambda a: ivr.records.transfer_result(a["call_sid"], a["result"]),
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
