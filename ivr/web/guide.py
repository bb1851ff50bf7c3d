"""The visual guide: a mobile page for the caller (`/g/<token>`), one per call, valid 24 hours from
the call's start. It shows the step the call is at, with the labels to tap, and buttons that move
the live call (through Twilio's REST API); after the call it stays a plain guide of every step.

The token is the call's identifier signed with the server's secret key (itsdangerous): nobody can
make one up, and it is the same for the whole call. The buttons are POSTs carrying the token, from
this origin only (CSRF); they work without JavaScript, which only makes the page follow the call."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeSerializer

from ..call import devices as device_facts
from ..call import engine, visual
from ..call.hours import PARIS
from ..call.session import Conditions, Session
from ..storage.records import SIMULATED_PREFIX
from ..storage.sessions import Conflict, StoreUnavailable
from . import devices as devices_web
from .console import SECURITY_HEADERS
from .services import services
from .signature import twilio_url

log = logging.getLogger(__name__)
bp = Blueprint("guide", __name__, url_prefix="/g", template_folder="templates", static_folder="static")
VALID_SECONDS = 24 * 3600
FOLLOW_MILLISECONDS = 1500  # how often the page asks where the call is (the page follows it within 2 s)
_SALT = "guide-visuel"
NOTES = ("ok", "bientot", "attente", "deja", "conseiller", "fini", "indisponible", "appareil")  # what the page says after a button: page.note_*


def guide_token(call_sid: str) -> str:
    """The call's token: its identifier, signed."""
    return _signer().dumps(call_sid)


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=_SALT)


@bp.after_request
def headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    # The token is in the address: never sent to another site (the console's Referrer-Policy: same-origin,
    # which keeps the Origin header of the page's own POSTs), never kept by a cache or a search engine.
    response.headers.update({"Cache-Control": "no-store", "X-Robots-Tag": "noindex",
                             "Content-Language": "fr"})
    return response


@bp.get("/<token>")
def page(token: str):
    ivr = services()
    call_sid, session, started_at, reachable = _call(token)
    bundle = ivr.bundle(session.flow_version if session is not None else None)
    flow = bundle.flow
    node = flow.nodes.get(session.node) if session is not None and not session.ended else None
    live = {}
    if node is not None:
        now = ivr.clock()
        conditions = ivr.conditions(now)
        prompts = bundle.prompts.with_texts(session.variants)  # the wording this caller hears
        params = {"jours": str(ivr.retention_days), "quand": conditions.reopening}
        shown = visual.lines(flow, prompts, session, params, engine.instead(flow, session, conditions))
        agents = _agents_answer(conditions, session)
        live = {"step": node.step, "lines": [visual.segments(line) for line in shown], "node": node.name, "pending": bool(session.page),
                "buttons": [(action, _text(action)) for action in visual.buttons(flow, session, agents)]}
    steps = [(step, [[visual.segments(line) for line in text] for text in texts]) for step, texts in visual.whole_guide(flow, bundle.prompts)]
    until = datetime.fromtimestamp(started_at + VALID_SECONDS, PARIS)
    note = request.args.get("note", "")
    return render_template("guide/page.html", token=token, live=live, steps=steps, state=_state(session, reachable), t=_text,
                           title=_title(live, session, reachable), announce=_announce(live),
                           with_agent=session is not None and session.outcome == "transferred", over=reachable and (session is None or session.ended),
                           unavailable=not reachable, until=f"{until:%d/%m} à {until:%H} h {until:%M}",
                           note=_text("note_" + note) if note in NOTES else None, follow=FOLLOW_MILLISECONDS,
                           device=_device_button(session) if reachable else None)


@bp.get("/<token>/appareil")
def device(token: str):
    """What this phone would send to the agent, shown before anything is sent (issue 36)."""
    call_sid, session, _, reachable = _call(token)
    if not reachable or session is None:
        return _back(token, "indisponible" if not reachable else "fini")
    facts = devices_web.this_device()
    return devices_web.hinted(Response(render_template(
        "guide/device.html", t=_text, facts=device_facts.described(facts), payload=devices_web.sealed(call_sid, facts, device_facts.PHONE),
        action=url_for("guide.device_sent", token=token), cancel=url_for("guide.page", token=token), maybe_ipad=facts["maybe_ipad"])))


@bp.post("/<token>/appareil")
def device_sent(token: str):
    """The caller agreed: this phone's facts, as shown, go with the call."""
    if not devices_web.same_origin():
        abort(403)
    call_sid, session, _, reachable = _call(token)
    data, _ = devices_web.unsealed(request.form.get("envoi", ""))
    if data is None or data.get("call") != call_sid:
        return _back(token, "deja")
    if not reachable:
        return _back(token, "indisponible")
    try:
        kept = devices_web.record(call_sid, devices_web.chosen(data["facts"]), device_facts.PHONE)
    except Exception:
        log.exception("[%s] visual guide: this phone's facts could not be kept", call_sid)
        return _back(token, "indisponible")
    return _back(token, "appareil" if kept else "fini")


@bp.get("/<token>/etat")
def state(token: str):
    """Where the call is, for the page's script: it reloads the page when this changes."""
    _, session, _, reachable = _call(token)
    return jsonify(etat=_state(session, reachable))


@bp.post("/<token>")
def press(token: str):
    """A button: kept in the call's session, then the live call is moved so that it says « c'est
    noté » and goes on at once; if it cannot be moved, the call's next quiet turn applies it.

    The call is moved only to the configured public address (IVR_PUBLIC_URL): never to an address
    taken from this request, whose Host anyone may write."""
    if not devices_web.same_origin():
        log.warning("visual guide: a button posted from another site was refused")
        abort(403)
    ivr = services()
    call_sid, session, _, reachable = _call(token)
    action, at = request.form.get("action", ""), request.form.get("etape", "")
    if not reachable:
        return _back(token, "indisponible")
    if session is None or session.ended:
        return _back(token, "conseiller" if session is not None and session.outcome == "transferred" else "fini")
    if session.page:
        return _back(token, "attente")
    flow = ivr.bundle(session.flow_version).flow
    if action not in visual.buttons(flow, session, _agents_answer(ivr.conditions(ivr.clock()), session)) or at != session.node:
        return _back(token, "deja")
    try:
        ivr.store.save(visual.press(session, action))
    except Conflict:  # the call moved on at this very moment
        return _back(token, "deja")
    except Exception:  # the session store cannot be written: the caller goes on with the keypad
        log.exception("[%s] visual guide: the button could not be kept", call_sid)
        return _back(token, "indisponible")
    movable = bool(ivr.public_base) and ivr.mover is not None and not call_sid.startswith(SIMULATED_PREFIX)  # the console's calls are not at Twilio
    moved = movable and ivr.mover.move(call_sid, twilio_url("voice.from_page", ivr.public_base))
    log.info("[%s] visual guide: « %s » at %s (%s)", call_sid, action, session.node, "call moved" if moved else "at the next turn")
    return _back(token, "ok" if moved else "bientot")


def _title(live: dict, session: Session | None, reachable: bool) -> str:
    """The page's title names where the call is (a screen reader says it first)."""
    if not reachable:
        where = _text("indisponible_titre")
    elif live:
        where = (f"Étape {live['step']} sur 6 : " if live.get("step") else "") + _text("a_faire").lower()
    elif session is not None and session.outcome == "transferred":
        where = _text("avec_conseiller_titre")
    else:
        where = _text("fin_titre")
    return f"{where} · Guide e-CPS"


def _announce(live: dict) -> str:
    """What the live region says when the page moves to this step: « Étape 3 sur 6 : … »."""
    if not live:
        return ""
    first = "".join(f"« {text} »" if label else text for text, label in live["lines"][0]) if live["lines"] else ""
    return (f"Étape {live['step']} sur 6 : " if live.get("step") else "") + first


def _device_button(session: Session | None) -> str | None:
    """The button that sends this device's facts (this phone's, or this computer's when the guide is
    opened on one), while the call goes on and until they are sent."""
    if session is None:
        return None
    viewer = devices_web.this_device()
    kind = device_facts.COMPUTER if device_facts.kind(viewer) == device_facts.COMPUTER and not viewer["maybe_ipad"] else device_facts.PHONE
    if kind in session.devices:
        return None
    return _text("appareil_bouton_ordinateur" if kind == device_facts.COMPUTER else "appareil_bouton")


def _call(token: str) -> tuple[str, Session | None, float, bool]:
    """The call of a token: its identifier, its session while it goes on, when it started, and
    whether the session store answered; a 404 for a token that is not ours, a 410 once 24 hours
    have passed, a 503 when neither the session store nor the records answer."""
    try:
        call_sid = _signer().loads(token)
    except BadSignature:
        abort(404)
    if not isinstance(call_sid, str) or not call_sid.startswith("CA") or len(call_sid) > 64:
        abort(404)  # signed with our key, but not a call's link
    ivr = services()
    try:
        session, reachable = ivr.store.load(call_sid), True
    except StoreUnavailable:  # the session store does not answer: the page says so and keeps asking
        log.warning("[%s] visual guide: the session store does not answer", call_sid)
        session, reachable = None, False
    except Exception:
        log.exception("[%s] visual guide: the call's session cannot be read", call_sid)
        session, reachable = None, False
    started_at = session.started_at if session is not None else None
    if started_at is None:
        try:
            started_at = (ivr.records.get(call_sid) or {}).get("started_at")
        except Exception:
            log.warning("[%s] visual guide: the call records do not answer", call_sid)
            abort(503)
    if started_at is None:
        abort(404)
    if ivr.clock() - started_at > VALID_SECONDS:
        abort(410)
    return call_sid, session, started_at, reachable


def _agents_answer(conditions: Conditions, session: Session) -> bool:
    """Whether « Parler à un conseiller » can put the caller through now (open, a destination, not
    already in the part for when none can answer)."""
    return conditions.service_open and conditions.agents and not engine.fell_back(session)


def _state(session: Session | None, reachable: bool = True) -> str:
    if not reachable:
        return "indisponible"
    if session is None or session.ended:
        return "transfert" if session is not None and session.outcome == "transferred" else "fin"
    return f"{session.node}|{session.phase}|{'attente' if session.page else ''}"


def _back(token: str, note: str):
    return redirect(url_for("guide.page", token=token, note=note), code=303)


def _text(name: str, **params: str) -> str:
    """A text of the page (the `page.*` sentences of the prompts, which supervisors tune)."""
    ivr = services()
    return ivr.bundle().prompts.text(f"page.{name}", {"jours": str(ivr.retention_days), **params})


def _error(name: str, status: int, title: str = "lien_titre", again: bool = False):
    return render_template("guide/error.html", message=_text(name), title=_text(title), again=again, t=_text), status


def _handles(status: int, name: str, **extra) -> None:
    bp.register_error_handler(status, lambda error: _error(name, status, **extra))


# A French page for each way a link or a button can fail (never werkzeug's English one).
_handles(404, "lien_inconnu")
_handles(410, "lien_expire")
_handles(413, "trop_long")
_handles(403, "autre_site")
_handles(503, "indisponible", title="indisponible_titre", again=True)  # both stores down: the page reloads itself
