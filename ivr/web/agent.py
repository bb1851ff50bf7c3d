"""The agent's page (`/agent/<token>`): one call, read at a glance, in French. Who is calling, where
the diagnosis stopped and the e-CPS test's result, every answer with where it came from (by voice,
in the queue, on the visual guide, deduced), the voice message, the times. Live: answers given in
the queue appear without a reload (the page asks every few seconds: `/etat`, a few hundred bytes).
Its address is signed (itsdangerous, like the visual guide) and valid for the call plus a day; it is
in the Task's attributes, the helpdesk document and the context API. Framed only by the agent
desktop's origins (`IVR_AGENT_FRAME_ORIGINS`, for Flex's CRM container); no other page of ours can be."""

from __future__ import annotations

import hashlib
import json
import logging

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeSerializer

from .. import french
from ..call import handoff
from ..call.devices import COMPUTER, KIND_LABELS, described
from ..call.handoff import FIELD_LABELS
from ..call.identifiers import spoken_phone
from ..supervisor.analytics import outcome_label
from . import calls
from .console import SECURITY_HEADERS
from .services import services

log = logging.getLogger(__name__)
bp = Blueprint("agent", __name__, url_prefix="/agent", template_folder="templates", static_folder="static")
_SALT = "page-conseiller"
VALID_AFTER_CALL = 24 * 3600  # the call plus a day
FOLLOW_MILLISECONDS = 2000  # how often the page asks for new answers
ORIGINS = {"voice": "au téléphone", "queue": "en file d'attente", "page": "sur le guide visuel", "inferred": "déduit",
           "device": "relevé sur l'appareil"}


def agent_token(call_sid: str) -> str:
    return URLSafeSerializer(current_app.secret_key, salt=_SALT).dumps(call_sid)


@bp.after_request
def headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    origins = current_app.config.get("IVR_AGENT_FRAME_ORIGINS", "").split()
    if origins:  # the agent desktop frames it (CSP frame-ancestors; X-Frame-Options cannot name an origin)
        response.headers["Content-Security-Policy"] = SECURITY_HEADERS["Content-Security-Policy"].replace(
            "frame-ancestors 'none'", "frame-ancestors " + " ".join(origins)) + "; media-src https://api.twilio.com"
        response.headers.pop("X-Frame-Options", None)
    else:
        response.headers["Content-Security-Policy"] = SECURITY_HEADERS["Content-Security-Policy"] + "; media-src https://api.twilio.com"
    response.headers.update({"Cache-Control": "no-store", "X-Robots-Tag": "noindex", "Content-Language": "fr"})
    return response


def _document(token: str) -> tuple[str, dict, dict | None]:
    """The call of a token, its document as it is now, and its record: 404 for a token that is not
    ours, 410 a day after the call."""
    try:
        call_sid = URLSafeSerializer(current_app.secret_key, salt=_SALT).loads(token)
    except BadSignature:
        abort(404)
    ivr = services()
    try:
        session = ivr.store.load(call_sid)
    except Exception:  # the session store is down: the document stored with the call
        session = None
    record = ivr.records.get(call_sid)
    callback = ivr.callbacks.of_call(call_sid) if session is None and not (record or {}).get("context") else None
    if session is not None:
        document = calls.context_now(ivr, session)
        started = session.started_at
    elif record is not None and record.get("context"):
        document, started = _with_devices(ivr, call_sid, record["context"]), record["started_at"]
    elif callback is not None and callback.get("context"):  # a callback request or a message: its document
        document, started = callback["context"], callback["requested_at"]
    else:
        abort(404)
    ended = (record or {}).get("ended_at") or started
    if session is None and ivr.clock() > ended + VALID_AFTER_CALL:
        abort(410)
    return call_sid, document, record


def _with_devices(ivr, call_sid: str, document: dict) -> dict:
    """A call's stored document with what its devices sent that it lacks (sent as the call ended)."""
    try:
        found = ivr.devices.of_call(call_sid)
    except Exception:
        return document
    known = document.get("devices") or {}
    if not any(kind not in known for kind in found):
        return document
    merged = {**{kind: {**facts, "at": handoff.iso(facts.get("at"))} for kind, facts in found.items()}, **known}
    return {**document, "devices": merged, "public_ip": handoff.public_ip(merged)}


def view(document: dict) -> dict:
    """What the page shows, from the agent's document."""
    answers = document.get("answers") or {}
    inferred = set(document.get("inferred") or ())
    queued = set(document.get("asked_in_queue") or ())
    from_page = {entry.get("field") for entry in document.get("path") or () if entry.get("from_page")}
    from_device = set(document.get("from_device") or ())
    beside = document.get("device_answers") or {}
    rows = []
    for field, value in answers.items():
        if field in ("type_identifiant", "identifiant", "matricule", "message_vocal", "sans_message"):
            continue
        origin = "inferred" if field in inferred else "device" if field in from_device else "queue" if field in queued else \
            "page" if field in from_page else "voice"
        rows.append({"label": FIELD_LABELS.get(field, field.replace("_", " ")), "value": value, "origin": ORIGINS[origin], "kind": origin,
                     # What a device sent after an answer by voice: shown beside it, never over it.
                     "beside": beside[field] if field in beside and beside[field] != value else ""})
    identifier = document.get("identifier") or {}
    caller = document.get("caller") or ""
    return {
        "identifier": f"{identifier.get('type') or 'Identifiant'} {identifier.get('value')}" if identifier.get("value") else "non donné",
        "matricule": identifier.get("matricule"),
        "card": answers.get("numero_carte"),
        "caller": spoken_phone(caller) if caller else "numéro masqué",
        "step": document.get("last_step"),
        "ecps_test": document.get("ecps_test") or "non fait",
        "reason": document.get("reason_label") or "",
        "answers": rows,
        "message": (document.get("questionnaire") or {}).get("voice_message_url"),
        "started": _moment(document.get("started_at")),
        "not_asked": [FIELD_LABELS.get(field, field.replace("_", " ")) for field in document.get("not_asked") or []
                      if field not in answers],
        "summary": document.get("summary_fr") or "",
        "devices": [(KIND_LABELS.get(kind, kind), described(facts), _moment(facts.get("at")))
                    for kind, facts in sorted((document.get("devices") or {}).items())],
        "computer_sent": COMPUTER in (document.get("devices") or {}),
    }


def _moment(iso: str | None) -> str:
    """« 06/12/2026 11:02 », Paris time, as everywhere else."""
    from datetime import datetime

    try:
        return french.moment(datetime.fromisoformat(iso).timestamp()) if iso else ""
    except ValueError:
        return iso or ""


_LIVE = ("answers", "step", "ecps_test", "not_asked", "card", "summary")  # what the page redraws in place; anything else changed: it reloads


def _version(shown: dict, live: bool = True) -> str:
    part = {key: value for key, value in shown.items() if (key in _LIVE) == live}
    return hashlib.sha256(json.dumps(part, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:16]


@bp.errorhandler(404)
def unknown(_error):
    return Response("<!doctype html><html lang=\"fr\"><title>Lien inconnu</title><h1>Lien inconnu</h1>"
                    "<p>Ce lien ne correspond à aucun appel.</p></html>", status=404, mimetype="text/html")


@bp.errorhandler(410)
def expired(_error):
    return Response("<!doctype html><html lang=\"fr\"><title>Lien expiré</title><h1>Lien expiré</h1>"
                    "<p>La page d'un appel reste ouverte pendant l'appel et le jour qui suit. La fiche reste dans le helpdesk.</p></html>",
                    status=410, mimetype="text/html")


@bp.get("/<token>")
def page(token: str):
    call_sid, document, record = _document(token)
    shown = view(document)
    ivr = services()
    callback = ivr.callbacks.of_call(call_sid)
    code = _code(ivr, call_sid, shown, record)
    return render_template("agent/page.html", token=token, shown=shown, version=_version(shown), fixed=_version(shown, live=False),
                           code=code, address=ivr.computer_address, code_refused=request.args.get("code") == "fini",
                           every=FOLLOW_MILLISECONDS, outcome=outcome_label(record.get("outcome")) if record else "en cours",
                           callback=callback, callback_number=spoken_phone(callback["number"]) if callback and callback["number"] else "",
                           done=request.args.get("traite"), missing_name=request.args.get("erreur") == "nom")


def _code(ivr, call_sid: str, shown: dict, record: dict | None) -> dict | None:
    """The computer page's code this call holds now, for the agent to give (None: none valid)."""
    if not ivr.computer_address or shown["computer_sent"] or (record or {}).get("ended_at"):
        return None
    valid = ivr.devices.valid_code(call_sid, ivr.clock())
    return {"code": valid[0], "until": french.moment(valid[1])[-5:]} if valid else {}


def _from_this_page() -> None:
    """A POST of the page's own forms only (the browser's Sec-Fetch-Site and Origin, when it sends them): 403 else."""
    origin = request.headers.get("Origin")
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none") or (origin and origin != request.host_url.rstrip("/")):
        abort(403)


@bp.post("/<token>/code")
def new_code(token: str):
    """« Donner un code pour l'ordinateur »: the agent reads it to the caller, whose computer then
    sends its system, browser and public IP (issue 36)."""
    call_sid, _, record = _document(token)
    _from_this_page()
    ivr = services()
    if (record or {}).get("ended_at") or ivr.store.load(call_sid) is None:
        return redirect(url_for("agent.page", token=token, code="fini"), code=303)
    ivr.devices.code_for(call_sid, ivr.clock())
    return redirect(url_for("agent.page", token=token), code=303)


@bp.get("/<token>/etat")
def state(token: str):
    """The answers as they are now (the page replaces its list when the version changes)."""
    _, document, _ = _document(token)
    shown = view(document)
    return jsonify(version=_version(shown), fixed=_version(shown, live=False), answers=shown["answers"], step=shown["step"],
                   ecps_test=shown["ecps_test"], not_asked=shown["not_asked"], card=shown["card"], summary=shown["summary"])


@bp.post("/<token>/traite")
def mark_done(token: str):
    """« Marquer traité » for the call's callback request or message, under the agent's name."""
    call_sid, _, _ = _document(token)
    _from_this_page()
    agent = " ".join(request.form.get("agent", "").split())[:80]
    if not agent:
        return redirect(url_for("agent.page", token=token, erreur="nom"), code=303)
    ivr = services()
    item = ivr.callbacks.of_call(call_sid)
    marked = item is not None and ivr.callbacks.done(item["id"], agent)
    if marked:
        log.info("[%s] callback request %s marked done by %s", call_sid, item["id"], agent)
    return redirect(url_for("agent.page", token=token, traite="1" if marked else "0"), code=303)
