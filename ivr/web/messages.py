"""Twilio's messaging webhook: a caller's answer to the rating SMS."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from twilio.twiml.messaging_response import MessagingResponse

from ..call.flow import RATINGS
from .services import services
from .signature import clean_request, is_signed
from .writes import RATING_SMS

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
    clean_request()
    number, body = request.form.get("From", ""), request.form.get("Body", "").strip().rstrip(".!")
    prompts = ivr.bundle().prompts
    now = ivr.clock()
    try:
        reply = _rate(ivr, number, body, now)
    except Exception:  # the database: the caller is told, Twilio gets its answer
        log.exception("the rating SMS of …%s cannot be kept", number[-2:])
        reply = "satisfaction.sms_erreur"
    answer = MessagingResponse()
    answer.message(prompts.text(reply))
    return Response(str(answer), content_type="text/xml; charset=utf-8")


def _rate(ivr, number: str, body: str, now: float) -> str:
    """Keep the rating if this number was asked for one by SMS in the last 24 hours and has not
    given it yet; the sentence to answer with."""
    if not number:
        return "satisfaction.sms_inconnu"
    asked = ivr.db.one(
        "SELECT c.call_sid, c.rating, s.sent_at FROM sms s JOIN calls c ON c.call_sid = s.call_sid "
        "WHERE s.number = ? AND s.guide = ? AND s.status = 'sent' ORDER BY s.sent_at DESC LIMIT 1", (number, RATING_SMS))
    if asked is None:
        return "satisfaction.sms_inconnu"
    if asked["sent_at"] < now - DAY:
        return "satisfaction.sms_trop_tard"
    if asked["rating"] is not None:
        return "satisfaction.sms_deja"
    if len(body) != 1 or body not in RATINGS:
        return "satisfaction.sms_incompris"
    ivr.records.rate(asked["call_sid"], int(body), "sms", now)
    log.info("[%s] rated %s by SMS", asked["call_sid"], body)
    return "satisfaction.sms_merci"
