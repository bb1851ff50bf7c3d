"""Twilio's voice webhooks: each handler reads the form into an event, hands it to `calls`, and
answers the TwiML it gets back."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, request, url_for
from werkzeug.exceptions import HTTPException

from ..call import handoff, twiml
from ..call.session import Event, Keys, NoInput, Recorded, Spoken
from ..storage.records import FINAL_STATUSES
from . import calls
from .services import services
from .signature import is_signed

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/voice")


class FlaskUrls:
    """The URLs of this request's TwiML, from Flask's url_for (under any prefix a proxy adds)."""

    def __init__(self):
        self.scope = request.script_root

    def answer(self, node: str, phase: str) -> str:
        return url_for("voice.answer", node=node, phase=phase)

    def links(self, call_sid: str) -> handoff.Links:
        base = services().public_base or request.host_url.rstrip("/")
        return handoff.Links(
            done=url_for("voice.transfer_done"),
            context=base + url_for("api.call_context", call_sid=call_sid),
            whisper=base + url_for("voice.whisper", call=call_sid),
            wait=base + url_for("voice.wait"),
        )


@bp.before_request
def verify_signature():
    """Refuse any request that does not carry Twilio's signature for its public URL."""
    current = request._get_current_object()  # werkzeug's LocalProxy, resolved once for the checks below
    g.call_sid = current.form.get("CallSid", "-")
    ivr = services()
    if ivr.validator is None:
        return None  # development without a token: create_app already warned
    if not is_signed(ivr.validator, current, ivr.public_base):
        log.warning("[%s] refused %s: bad or missing X-Twilio-Signature", g.call_sid, request.path)
        return Response("invalid Twilio signature\n", status=403, mimetype="text/plain")
    return None


@bp.post("")
def incoming():
    """A call comes in: start the diagnostic."""
    form = request.form
    return _xml(calls.incoming(services(), _call_sid(form), form.get("From", ""), FlaskUrls()))


@bp.post("/answer")
def answer():
    """Keys pressed at a question, words said, a message left, or silence (Twilio fell through)."""
    ivr, form = services(), request.form
    return _xml(calls.answer(ivr, _call_sid(form), _event(form, request.args, ivr.clock()), FlaskUrls()))


def _event(form, args, now: float) -> Event:
    node, phase = args.get("node", ""), args.get("phase", "ask")
    if form.get("SpeechResult"):
        try:
            confidence = float(form.get("Confidence", "0"))
        except ValueError:
            confidence = 0.0
        return Spoken(node, phase, form["SpeechResult"], confidence, now)
    if form.get("RecordingUrl"):
        duration = form.get("RecordingDuration", "0")
        return Recorded(node, phase, form["RecordingUrl"], int(duration) if duration.isdigit() else 0, now)
    if form.get("Digits"):
        return Keys(node, phase, form["Digits"], now)
    return NoInput(node, phase, now)


@bp.post("/transfer-done")
def transfer_done():
    """How a <Dial> or <Enqueue> ended."""
    form = request.form
    result = form.get("DialCallStatus") or form.get("QueueResult") or "unknown"
    return _xml(calls.transfer_done(services(), _call_sid(form), result, FlaskUrls()))


@bp.post("/whisper")
def whisper():
    """Played to the agent who answers a <Dial><Number>, before the caller is connected."""
    ivr = services()
    record = ivr.records.get(request.args.get("call", ""))
    text = ((record or {}).get("context") or {}).get("summary_fr") or "Résumé indisponible : demandez le détail à l'appelant."
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
    """Key 1 during the wait: leave the queue, to be called back (transfer-done ends the call)."""
    if request.form.get("Digits") != "1":
        return _xml(twiml.empty())  # back to the hold loop
    return _xml(calls.wants_callback(services(), _call_sid(request.form)))


@bp.post("/status")
def status():
    """Status callback: a final status closes the call's record."""
    form = request.form
    if form.get("CallStatus", "") in FINAL_STATUSES:
        duration = form.get("CallDuration", "")
        calls.ended(services(), _call_sid(form), form["CallStatus"], int(duration) if duration.isdigit() else None, form.get("From", ""))
    return _xml(twiml.empty())


@bp.post("/fallback")
def fallback():
    """Twilio could not use our answer: apologise and put the caller through with what we know."""
    log.error("[%s] fallback: Twilio error %s on %s", g.call_sid, request.form.get("ErrorCode"), request.form.get("ErrorUrl"))
    return _xml(calls.apologise(services(), request.form.get("CallSid", ""), request.form.get("From", ""), FlaskUrls()))


@bp.errorhandler(Exception)
def on_error(error: Exception):
    """Whatever breaks, Twilio gets valid TwiML that apologises and transfers, never a 500."""
    if isinstance(error, HTTPException):
        return error
    log.exception("[%s] error while handling %s", g.get("call_sid", "-"), request.path)
    return _xml(calls.apologise(services(), request.form.get("CallSid", ""), request.form.get("From", ""), FlaskUrls()))


def _call_sid(form) -> str:
    call_sid = form.get("CallSid", "")
    if not call_sid:
        raise LookupError("request without CallSid")
    return call_sid


def _xml(body: str) -> Response:
    return Response(body, content_type=twiml.CONTENT_TYPE)
