"""Twilio's voice webhooks. Each handler: verify → load session → engine → save → render."""

from __future__ import annotations

import hmac
import logging
from datetime import datetime

from flask import Blueprint, Response, current_app, g, request, url_for
from werkzeug.exceptions import HTTPException

from . import engine, handoff, twiml
from .app import Services, services
from .engine import GuideRequested, Keys, NoInput, Recorded, Session, Spoken, Transfer
from .handoff import PARIS
from .records import FINAL_STATUSES, SIMULATED_PREFIX
from .store import Conflict

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/voice")
# Results of <Dial> or <Enqueue> that mean the caller did talk to an agent.
REACHED = frozenset({"completed", "answered", "bridged", "hangup"})
# Times a webhook replays its event when another request of the call saved first; each conflict means
# another request of the call succeeded, so N requests racing need at most N - 1 replays.
RACE_RETRIES = 10


@bp.before_request
def verify_signature():
    """Refuse any request that does not carry Twilio's signature for its public URL."""
    form = request.form
    g.call_sid = form.get("CallSid", "-")
    ivr = services()
    validator = ivr.validator
    if validator is None:
        return None  # development without a token: create_app already warned
    url = ivr.public_url(request)
    signature = request.environ.get("HTTP_X_TWILIO_SIGNATURE", "")
    # The URL as we see it almost always matches: one HMAC; the library's validate() then also
    # tries the variants with and without the port that Twilio may have signed.
    if not (hmac.compare_digest(ivr.signer.signature(url, form), signature) or validator.validate(url, form, signature)):
        log.warning("[%s] refused %s: bad or missing X-Twilio-Signature for %s", g.call_sid, request.path, url)
        return Response("invalid Twilio signature\n", status=403, mimetype="text/plain")
    return None


@bp.post("")
def incoming():
    """A call comes in: start the diagnostic (or repeat the question if Twilio asks twice)."""
    ivr, form = services(), request.form
    call_sid = _call_sid(form)
    started: list[str] = []  # the flow version, when this request started the call

    def decide(session: Session | None):
        started.clear()
        if session is None:
            flow = ivr.bundle().flow
            started.append(flow.version)
            return engine.start(flow, call_sid, form.get("From", ""), ivr.clock())
        return engine.resume(ivr.bundle(session.flow_version).flow, session)

    response = _advance(ivr, call_sid, decide, first_webhook=True)
    if started:
        log.info("[%s] call started (flow %s)", call_sid, started[0])
    return response


@bp.post("/answer")
def answer():
    """Keys pressed at a question, or silence when Twilio falls through the <Gather>."""
    ivr = services()
    form, args = request.form, request.args
    node, phase = args.get("node", ""), args.get("phase", "ask")
    digits = form.get("Digits", "")
    now = ivr.clock()
    if form.get("SpeechResult"):
        confidence = form.get("Confidence", "0")
        try:
            sureness = float(confidence)
        except ValueError:
            sureness = 0.0
        event = Spoken(node, phase, form["SpeechResult"], sureness, now)
    elif form.get("RecordingUrl"):
        duration = form.get("RecordingDuration", "0")
        event = Recorded(node, phase, form["RecordingUrl"], int(duration) if duration.isdigit() else 0, now)
    elif digits:
        event = Keys(node, phase, digits, now)
    else:
        event = NoInput(node, phase, now)

    def decide(session: Session | None):
        if session is None:
            raise LookupError("no session for this call (expired or store lost)")
        g.session = session
        bundle = ivr.bundle(session.flow_version)
        return engine.step(bundle.flow, session, _guide_request(ivr, bundle, session, event) or event)

    return _advance(ivr, _call_sid(form), decide)


def _guide_request(ivr: Services, bundle, session: Session, event) -> GuideRequested | None:
    """The key of a guide at the question the caller is at: send the SMS, say how it went."""
    node = bundle.flow.nodes.get(session.node)
    if not (isinstance(event, Keys) and node is not None and node.guide and event.digits == node.guide.key
            and (event.node, event.phase) == (session.node, session.phase) == (node.name, "ask")):
        return None
    status = ivr.guides.send(session.call_sid, session.caller, node.guide.sms, bundle.prompts.text(node.guide.sms))
    return GuideRequested(node.name, "ask", node.guide.sms, status, event.at)


def _advance(ivr: Services, call_sid: str, decide, first_webhook: bool = False) -> Response:
    """Load the session, let the engine decide, save; replay on a fresh session if another request
    of the same call saved first (no lost write).

    A call's first webhook starts without reading: its new session is saved only if the call has
    none (one round trip less per call); when Twilio asks twice, that save finds the session of
    the first request, and this one is answered from it."""
    for attempt in range(RACE_RETRIES):
        unread = first_webhook and attempt == 0
        session, actions = decide(None if unread else ivr.store.load(call_sid))
        try:
            return _respond(ivr, session, actions)
        except Conflict:
            if not unread:
                log.info("[%s] another request of this call saved first: replaying on the fresh session", call_sid)
    raise RuntimeError("the session kept changing under this request")


@bp.post("/transfer-done")
def transfer_done():
    """Twilio reports how a <Dial> or <Enqueue> ended; if nobody answered, say so politely."""
    result = request.form.get("DialCallStatus") or request.form.get("QueueResult") or "unknown"
    ivr = services()
    call_sid = _call_sid(request.form)
    ivr.records.transfer_result(call_sid, result)
    session = ivr.store.load(call_sid)
    if result == "leave" and session is not None and engine.waiting_for_callback(session):
        session = engine.called_back_later(session, ivr.clock())
        return _respond(ivr, session, (engine.Hangup((engine.Say("fin.rappel"),)),), force=True)
    if result in REACHED:
        return _xml(twiml.goodbye(ivr.speech()))
    log.warning("[%s] transfer not answered: %s", g.call_sid, result)
    return _xml(twiml.goodbye(ivr.speech(), twiml.UNAVAILABLE))


@bp.post("/whisper")
def whisper():
    """Played to the agent who answers a <Dial><Number>, before the caller is connected."""
    ivr = services()
    record = ivr.records.get(request.args.get("call", ""))
    summary = (record or {}).get("context") or {}
    text = summary.get("summary_fr") or "Résumé indisponible : demandez le détail à l'appelant."
    return _xml(twiml.whisper(ivr.speech(), text))


@bp.post("/wait")
def wait():
    """The hold loop while the caller waits in the queue (Twilio requests it again and again)."""
    position = request.form.get("QueuePosition", "")
    waited = request.form.get("QueueTime", "0")
    average = request.form.get("AvgQueueTime", "0")
    minutes = round(int(average) / 60) if average.isdigit() and int(average) >= 60 else None
    offer = waited.isdigit() and int(waited) >= int(current_app.config["IVR_CALLBACK_OFFER_SECONDS"])
    return _xml(twiml.hold(services().speech(), int(position) if position.isdigit() else None, minutes,
                           url_for("voice.wait_choice") if offer else ""))


@bp.post("/wait/choice")
def wait_choice():
    """Key 1 during the wait: leave the queue, to be called back (handled in transfer-done)."""
    if request.form.get("Digits") != "1":
        return _xml(twiml.empty())  # back to the hold loop
    ivr = services()
    session = ivr.store.load(_call_sid(request.form))
    if session is not None:
        ivr.store.save(engine.wants_callback(session, ivr.clock()), force=True)
    return _xml(twiml.leave())


@bp.post("/status")
def status():
    """Status callback: a final status closes the call's record."""
    ivr, form = services(), request.form
    call_status = form.get("CallStatus", "")
    if call_status in FINAL_STATUSES:
        duration = form.get("CallDuration")
        call_sid = _call_sid(form)
        seconds = int(duration) if duration and duration.isdigit() else None
        session = ivr.store.take(call_sid)  # read and removed in one round trip: the call is over
        if session is not None and session.recorded < len(session.history):
            ivr.records.progress(session, None, session.recorded)  # hung up mid-call: its events until now
        ivr.records.close(call_sid, call_status, ivr.clock(), seconds, form.get("From", ""))
        log.info("[%s] call ended: %s", call_sid, call_status)
    return _xml(twiml.empty())


@bp.post("/fallback")
def fallback():
    """Twilio could not use our answer: apologise and put the caller through with what we know."""
    log.error("[%s] fallback: Twilio error %s on %s", g.call_sid, request.form.get("ErrorCode"), request.form.get("ErrorUrl"))
    return _apology(services())


@bp.errorhandler(Exception)
def on_error(error: Exception):
    """Whatever breaks, Twilio gets valid TwiML that apologises and transfers, never a 500."""
    if isinstance(error, HTTPException):
        return error
    log.exception("[%s] error while handling %s", g.get("call_sid", "-"), request.path)
    ivr = services()
    try:
        return _apology(ivr)
    except Exception:  # the store itself may be what failed: still never a 500
        log.exception("[%s] could not build the transfer, transferring without context", g.get("call_sid", "-"))
        call_sid = request.form.get("CallSid", "")
        bare = {"call_sid": call_sid, "caller": request.form.get("From"), "reason": "technical_error"}
        return _xml(twiml.apology(ivr.speech(), handoff.plan(ivr.destinations, bare, _links(ivr, call_sid))))


def _apology(ivr: Services) -> Response:
    call_sid = request.form.get("CallSid", "")
    session = g.get("session")
    if session is None:
        try:
            session = ivr.store.load(call_sid) if call_sid else None
        except Exception:
            log.exception("[%s] store unavailable during apology", call_sid)
    if session is None:
        session = Session(call_sid, request.form.get("From", ""), ivr.clock(), ivr.bundle().version)
    if session.ended and session.outcome != "transferred":
        return _xml(twiml.goodbye(ivr.speech()))
    session, actions = engine.fail(session, ivr.clock())
    return _respond(ivr, session, actions, force=True)


def _respond(ivr: Services, session: Session, actions, force: bool = False) -> Response:
    """Save the session (Conflict if another request saved first), record the call when it starts
    and ends, and render the TwiML.

    The events of a call live in its session's history until the call ends (transfer, goodbye or
    status callback): one write per webhook (the session) instead of three."""
    bundle = ivr.bundle(session.flow_version)
    plan = None
    context = None
    now = ivr.clock()
    if any(isinstance(action, Transfer) for action in actions):
        moment = datetime.fromtimestamp(now, PARIS)
        if not ivr.hours.is_open(moment):
            reopening = ivr.hours.spoken_opening(moment)
            log.info("[%s] needs an agent (%s) but the service is closed until %s", session.call_sid, session.transfer_reason, reopening)
            session, actions = engine.after_hours(bundle.flow, session, now, reopening)
    unrecorded = session.recorded
    # The call ends in this request (a late webhook on an ended call changes nothing to record).
    ending = session.ended and unrecorded < len(session.history)
    if ending and session.outcome in ("callback", "voicemail") and ivr.callbacks is not None:
        _keep_callback(ivr, session, bundle, now)
    if any(isinstance(action, Transfer) for action in actions):
        links = _links(ivr, session.call_sid)
        context = handoff.context(session, bundle.flow, now, links.context)
        plan = handoff.plan(ivr.destinations, context, links)
        log.info("[%s] transfer (%s) via %s", session.call_sid, session.transfer_reason, plan.kind)
    flush = unrecorded == 0 or ending
    if flush:
        session = session.evolve(recorded=len(session.history))
    session = ivr.store.save(session, force=force)
    if flush:
        try:
            ivr.records.progress(session, context, unrecorded)
        except Exception:  # the records are for later; the caller in front of us comes first
            log.exception("[%s] could not write the call record; the call goes on", session.call_sid)
    if context is not None and ivr.outbox is not None and not session.call_sid.startswith(SIMULATED_PREFIX):
        ivr.outbox.add(session.call_sid, context)
        ivr.nudge_outbox()
    if plan is not None and plan.kind == "none":
        ivr.records.transfer_result(session.call_sid, "no_destination")
    if plan is None:
        return _xml(ivr.twiml_cache.document(bundle.version, actions, ivr.speech(bundle), _answer_url))
    return _xml(twiml.document(actions, ivr.speech(bundle), _answer_url, plan))


def _keep_callback(ivr: Services, session: Session, bundle, now: float) -> None:
    """The caller asked to be called back (or left a message): put it on the agents' list."""
    links = _links(ivr, session.call_sid)
    document = handoff.context(session, bundle.flow, now, links.context)
    number = session.answers.get("numero_rappel") or session.caller
    ivr.callbacks.add(session.call_sid, number, session.outcome, document, session.answers.get("message_vocal"), now)
    log.info("[%s] %s request kept for the agents", session.call_sid, session.outcome)


def _links(ivr: Services, call_sid: str) -> handoff.Links:
    base = ivr.public_base or request.host_url.rstrip("/")
    return handoff.Links(
        done=url_for("voice.transfer_done"),
        context=base + url_for("api.call_context", call_sid=call_sid),
        whisper=base + url_for("voice.whisper", call=call_sid),
        wait=base + url_for("voice.wait"),
    )


def _call_sid(form) -> str:
    call_sid = form.get("CallSid", "")
    if not call_sid:
        raise LookupError("request without CallSid")
    return call_sid


def _answer_url(node: str, phase: str) -> str:
    return url_for("voice.answer", node=node, phase=phase)


class TwimlResponse(Response):
    """A webhook's answer: a 200 with a TwiML body, sent with the headers it was given.

    werkzeug's `Response.__call__` goes over every case HTTP allows (HEAD, 204 and 304, relative
    Location headers, streamed bodies) and wraps the body in an encoding iterator; none applies to
    the answer to Twilio's POST, and with the CPU's caches cold under load that code is a tenth of
    what Flask costs a request (docs/capacite.md). Any other case goes through werkzeug."""

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "HEAD" or self.status_code != 200:
            return super().__call__(environ, start_response)
        body = self.get_data()  # set from a str: werkzeug already set the Content-Length
        start_response(self.status, self.headers.to_wsgi_list())
        return [body]


def _xml(body: str) -> Response:
    return TwimlResponse(body, content_type=twiml.CONTENT_TYPE)
