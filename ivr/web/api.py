"""The agents' API: the context document of a call, behind a bearer token."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, current_app, jsonify, request

from . import calls
from .console import SECURITY_HEADERS
from .services import services
from .voice import FlaskUrls

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")


@bp.before_request
def require_token():
    """401 unless `Authorization: Bearer <IVR_API_TOKEN>`."""
    expected = current_app.config.get("IVR_API_TOKEN", "")
    given = request.headers.get("Authorization", "")
    if not expected or not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
        response = jsonify(error="unauthorized", detail="send Authorization: Bearer <IVR_API_TOKEN>")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="ivr"'
        return response
    return None


@bp.after_request
def security_headers(response):
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.get("/calls/<call_sid>/context")
def call_context(call_sid: str):
    """The document an agent gets: built live while the call goes on (answers given in the queue
    included, the moment they are given), else the one stored with the call's record."""
    ivr = services()
    try:
        session = ivr.store.load(call_sid)
    except Exception:  # the session store is down: the document stored at the transfer
        log.warning("[%s] context: the session store does not answer, the stored document is served", call_sid)
        session = None
    if session is not None:
        return jsonify(calls.context_now(ivr, session, FlaskUrls().links(call_sid)))
    record = ivr.records.get(call_sid)
    if record is not None and record["context"] is not None:
        return jsonify(record["context"])
    detail = "this call ended without a transfer" if record is not None else f"no call {call_sid}"
    return jsonify(error="not_found", detail=detail), 404


@bp.get("/callbacks")
def callbacks():
    """Callback requests and messages, oldest first (pending ones unless ?all=1)."""
    ivr = services()
    return jsonify(ivr.callbacks.list(include_done=request.args.get("all") == "1"))


@bp.post("/callbacks/<int:callback_id>/done")
def callback_done(callback_id: int):
    """An agent called back: the request leaves the pending list."""
    ivr = services()
    who = (request.get_json(silent=True) or {}).get("agent") or "api"
    if not ivr.callbacks.done(callback_id, str(who)[:80]):
        return jsonify(error="not_found", detail=f"no pending callback {callback_id}"), 404
    return jsonify(status="done")
