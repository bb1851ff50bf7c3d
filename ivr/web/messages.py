"""Twilio's messaging webhook: a caller's answer to the rating SMS."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from twilio.twiml.messaging_response import MessagingResponse

from ..call.flow import RATINGS
from .services import services
from .signature import is_signed

log = logging.getLogger(__name__)
bp = Blueprint("messages", __name__)
DAY = 86400


@bp.post("/sms")
def sms():
    """« 4 » in reply to « notez votre appel de 1 à 5 »: the rating of the caller's most recent call
    of the last 24 hours; anything else gets a short French answer."""
    ivr = services()
    if ivr.validator is not None and not is_signed(ivr.validator, request, ivr.public_base):
        log.warning("refused /sms: bad or missing X-Twilio-Signature")
        return Response("invalid Twilio signature\n", status=403, mimetype="text/plain")
    number, body = request.form.get("From", ""), request.form.get("Body", "").strip().rstrip(".!")
    prompts = ivr.bundle().prompts
    now = ivr.clock()
    try:
        call = ivr.db.one("SELECT call_sid FROM calls WHERE caller = ? AND started_at >= ? AND simulated = 0 ORDER BY started_at DESC LIMIT 1",
                          (number, now - DAY)) if number else None
    except Exception:
        log.exception("the rating SMS of %s cannot be matched (database)", number[-2:])
        call = None
    if call is None:
        reply = prompts.text("satisfaction.sms_inconnu")
    elif len(body) == 1 and body in RATINGS:
        ivr.records.rate(call["call_sid"], int(body), "sms", now)
        log.info("[%s] rated %s by SMS", call["call_sid"], body)
        reply = prompts.text("satisfaction.sms_merci")
    else:
        reply = prompts.text("satisfaction.sms_incompris")
    answer = MessagingResponse()
    answer.message(reply)
    return Response(str(answer), content_type="text/xml; charset=utf-8")
