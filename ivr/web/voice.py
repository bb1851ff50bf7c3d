"""Twilio's voice webhooks: each handler reads the form into an event, hands it to `calls`, and
answers the TwiML it gets back."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from .. import metrics
from ..call import handoff, twiml
from ..call.identifiers import is_ascii_digits
from ..call.session import Event, Keys, NoInput, Recorded, Spoken
from ..storage.records import FINAL_STATUSES, SIMULATED_PREFIX
from ..storage.sessions import Conflict, StoreUnavailable
from . import calls, endings, waiting, writes
from .agent import agent_token
from .guide import guide_token
from .services import services
from .signature import clean_request, cleaned, is_signed, twilio_url

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/voice")
KEYPAD = frozenset("0123456789*#")
MAX_DIGITS = 32  # longer than any number a question asks for (a SIRET and its matricule)
CALLER_NUMBER = re.compile(r"\+?[0-9]{3,15}")
NO_SUMMARY = "Résumé indisponible : demandez le détail à l'appelant."


class FlaskUrls:
    """The URLs of this request's TwiML: under IVR_PUBLIC_URL when it is set, else as the request
    reached us (under any prefix a proxy names)."""

    def __init__(self):
        self.base = services().public_base
        self.scope = self.base or request.script_root

    def answer(self, node: str, phase: str) -> str:
        return twilio_url("voice.answer", self.base, node=node, phase=phase)

    def links(self, call_sid: str) -> handoff.Links:
        return handoff.Links(
            done=twilio_url("voice.transfer_done", self.base),
            context=twilio_url("api.call_context", self.base, absolute=True, call_sid=call_sid),
            whisper=twilio_url("voice.whisper", self.base, absolute=True, call=call_sid),
            wait=twilio_url("voice.wait", self.base, absolute=True),
            visual=twilio_url("guide.page", self.base, absolute=True, token=guide_token(call_sid)),
            agent=twilio_url("agent.page", self.base, absolute=True, token=agent_token(call_sid)),
        )


@bp.before_request
def verify_signature():
    """Refuse any request that does not carry Twilio's signature for its public URL."""
    g.call_sid = cleaned(request.form.get("CallSid", ""))[:64] or "-"
    ivr = services()  # without a validator (development without a token) create_app already warned
    if ivr.validator is not None and not is_signed(ivr.validator, request, ivr.public_base):
        log.warning("[%s] refused %s: bad or missing X-Twilio-Signature", g.call_sid, request.path)
        return Response("invalid Twilio signature\n", status=403, mimetype="text/plain")
    clean_request()
    writes.gather_facts()
    if not request.form.get("CallSid", ""):
        return Response("CallSid missing: not a Twilio voice webhook\n", status=400, mimetype="text/plain")
    return None


@bp.teardown_request
def journal_facts(error: BaseException | None) -> None:
    """What the webhook wrote goes to the journal in one append, before its answer leaves."""
    writes.journal_gathered(services())


@bp.post("")
def incoming():
    """A call comes in: start the diagnostic."""
    form = request.form
    return _xml(calls.incoming(services(), _call_sid(form), caller(form), FlaskUrls(), _token()))


@bp.post("/answer")
def answer():
    """Keys pressed at a question, words said, a message left, or silence (Twilio fell through)."""
    ivr, form = services(), request.form
    return _xml(calls.answer(ivr, _call_sid(form), _event(form, request.args, ivr.clock()), FlaskUrls(), _token()))


def _event(form, args, now: float) -> Event:
    node, phase = args.get("node", ""), args.get("phase", "ask")
    if form.get("SpeechResult"):
        try:
            confidence = float(form.get("Confidence", "0"))
        except ValueError:
            confidence = 0.0
        return Spoken(node, phase, form["SpeechResult"], confidence, now)
    if form.get("RecordingUrl"):
        duration = count(form.get("RecordingDuration"))  # 0: an empty recording, which is no message
        # <Record>'s action gets Digits=hangup when the caller hung up to end the recording
        # (https://www.twilio.com/docs/voice/twiml/record#attributes-action): the call is over.
        hung_up = form.get("Digits") == "hangup" or form.get("CallStatus") in FINAL_STATUSES
        return Recorded(node, phase, form["RecordingUrl"], -1 if duration is None else duration, now, hung_up)
    # Only what a keypad sends is ever used (and spoken back), and no more than any question asks.
    digits = "".join(key for key in form.get("Digits", "") if key in KEYPAD)[:MAX_DIGITS]
    return Keys(node, phase, digits, now) if digits else NoInput(node, phase, now)


@bp.post("/page")
def from_page():
    """Twilio's request after the server moved the call: a button of the visual guide was pressed."""
    return _xml(calls.from_page(services(), _call_sid(request.form), FlaskUrls(), _token()))


@bp.post("/transfer-done")
def transfer_done():
    """How a <Dial> or <Enqueue> ended."""
    form = request.form
    result = form.get("DialCallStatus") or form.get("QueueResult") or "unknown"
    caller_gone = form.get("CallStatus") in FINAL_STATUSES  # the caller hung up: our answer would not be heard
    return _xml(calls.transfer_done(services(), _call_sid(form), result, FlaskUrls(), caller_gone, _token()))


@bp.post("/whisper")
def whisper():
    """Played to the agent who answers a <Dial><Number>, before the caller is connected."""
    ivr, call_sid = services(), request.args.get("call", "")
    session = ivr.store.load(call_sid)  # the caller is in the call: their session says it (the record is written in the background)
    document = calls.context_now(ivr, session) if session is not None else (ivr.records.get(call_sid) or {}).get("context")
    text = handoff.whisper_text(document) if document else NO_SUMMARY
    return _xml(twiml.whisper(ivr.speech(), text))


@bp.post("/wait")
def wait():
    """The hold loop while the caller waits in the queue (Twilio requests it again and again): the
    rest of the questionnaire first, then the hold message."""
    form = request.form
    average = count(form.get("AvgQueueTime")) or 0
    offer = (count(form.get("QueueTime")) or 0) >= int(current_app.config["IVR_CALLBACK_OFFER_SECONDS"])
    choice = twilio_url("voice.wait_choice", services().public_base) if offer else ""
    return _xml(waiting.wait(services(), form.get("CallSid", ""), count(form.get("QueuePosition")),
                           round(average / 60) if average >= 60 else None, choice, _question_url, FlaskUrls(), _token()))


@bp.post("/wait/answer")
def wait_answer():
    """An answer to a question asked in the queue."""
    ivr, form = services(), request.form
    return _xml(waiting.wait_answer(ivr, _call_sid(form), _event(form, request.args, ivr.clock()), _question_url, FlaskUrls(), _token()))


def _question_url(node: str, phase: str) -> str:
    return twilio_url("voice.wait_answer", services().public_base, node=node, phase=phase)


@bp.post("/wait/choice")
def wait_choice():
    """Key 1 during the wait: leave the queue, to be called back (transfer-done ends the call)."""
    if request.form.get("Digits") != "1":
        return _xml(twiml.empty())  # back to the hold loop
    return _xml(waiting.wants_callback(services(), _call_sid(request.form)))


@bp.post("/status")
def status():
    """Status callback: a final status closes the call's record."""
    form = request.form
    if form.get("CallStatus", "") in FINAL_STATUSES:
        endings.ended(services(), _call_sid(form), form["CallStatus"], count(form.get("CallDuration")), caller(form), FlaskUrls().links)
    return _xml(twiml.empty())


@bp.post("/fallback")
def fallback():
    """Twilio could not use our answer (we failed or were too slow): sorry, and the agent
    destination, built without reading anything that may be what failed."""
    form = request.form
    log.error("[%s] fallback: Twilio error %s on %s", g.call_sid, form.get("ErrorCode"), form.get("ErrorUrl"))
    metrics.FALLBACKS.labels("twilio").inc()
    return _xml(calls.bare_transfer(services(), form["CallSid"], caller(form), FlaskUrls(), read_nothing=True))


@bp.errorhandler(Exception)
def on_error(error: Exception):
    """Whatever breaks, Twilio gets valid TwiML, never a 500: in a call, sorry and an agent; where
    Twilio only waits for TwiML of another kind (the hold loop, the agent's whisper, a status), that."""
    if isinstance(error, HTTPException):
        return error
    if isinstance(error, Conflict):  # a save that must win found the call over (its status came meanwhile)
        log.info("[%s] the call ended while %s was handled: nothing to do", g.get("call_sid", "-"), request.path)
        return _xml(twiml.empty())
    log.exception("[%s] error while handling %s", g.get("call_sid", "-"), request.path)
    ivr = services()
    if isinstance(error, StoreUnavailable):
        metrics.STORE_ERRORS.labels("sessions").inc()
    if request.endpoint in ("voice.wait", "voice.wait_choice", "voice.wait_answer"):
        return _xml(twiml.hold(ivr.speech(), None))  # a wait URL must not enqueue nor dial: the caller stays in line
    if request.endpoint == "voice.whisper":
        return _xml(twiml.whisper(ivr.speech(), NO_SUMMARY))
    if request.endpoint == "voice.status":
        return _xml(twiml.empty())
    form = request.form
    if not form.get("CallSid", "").startswith(SIMULATED_PREFIX):
        metrics.FALLBACKS.labels("store" if isinstance(error, StoreUnavailable) else "error").inc()
    if isinstance(error, StoreUnavailable):  # asked once already, with its retry: not again
        return _xml(calls.bare_transfer(ivr, form.get("CallSid", ""), caller(form), FlaskUrls()))
    return _xml(calls.apologise(ivr, form.get("CallSid", ""), caller(form), FlaskUrls()))


def caller(form) -> str:
    """The caller's number as Twilio gives it (+33…), or "" for anything else (anonymous, a SIP or
    client name): it is read back to the caller and whispered to agents, never other text."""
    number = form.get("From", "")
    return number if CALLER_NUMBER.fullmatch(number) else ""


def _token() -> str:
    """Twilio's idempotency token: the same on every retry of one request."""
    return request.headers.get("I-Twilio-Idempotency-Token", "")[:200]


def count(value: str | None) -> int | None:
    """One of Twilio's numeric fields (seconds, a queue position), or None when it is not a number."""
    return int(value) if value and is_ascii_digits(value) and len(value) < 10 else None


def _call_sid(form) -> str:
    call_sid = form.get("CallSid", "")
    if not call_sid:
        raise LookupError("request without CallSid")
    return call_sid


def _xml(body: str) -> Response:
    return Response(body, content_type=twiml.CONTENT_TYPE)
