"""Step 6 from the caller's own devices (issue 36): the phone (from the visual guide, `/g/<token>/appareil`)
and the computer where the login fails (`/code`, with the code heard in the queue or given by the agent)
send their system, browser, versions and public IP, after showing exactly what is sent.

The facts are read from this request's headers (`ivr.call.devices`: Client Hints, else the
User-Agent) and its address as our server sees it behind the trusted proxies (IVR_TRUSTED_PROXIES,
werkzeug's ProxyFix). What the consent page shows is signed into its form, so what is sent is what
was shown. They are kept with the call (`storage.devices`) and in its session, where they answer
the questions not reached yet (`answers.from_device`)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ..call import devices, handoff
from ..call.answers import log as logged
from ..storage.devices import TooManyTries
from ..storage.sessions import Conflict
from . import endings
from .console import SECURITY_HEADERS
from .services import services
from .writes import write

log = logging.getLogger(__name__)
bp = Blueprint("devices", __name__, template_folder="templates")
_SALT = "appareil"
CONSENT_SECONDS = 15 * 60  # a consent page's form stays valid this long
_SAVE_TRIES = 5


def hinted(response: Response) -> Response:
    """Ask Chromium browsers for the Client Hints that tell the system's version (and require them
    before the page is shown: Critical-CH makes the browser retry the request with them at once)."""
    response.headers["Accept-CH"] = ", ".join(devices.HINTS)
    response.headers["Critical-CH"] = ", ".join(devices.CRITICAL_HINTS)
    response.headers["Vary"] = ", ".join(("Sec-CH-UA", "Sec-CH-UA-Platform", *devices.HINTS))
    return response


def this_device() -> dict:
    """What this request's browser tells of its device, and its public IP as we see it."""
    hints = {name: value for name, value in request.headers.items() if name.lower().startswith("sec-ch-ua")}
    address = request.remote_addr
    facts = devices.read(request.headers.get("User-Agent", ""), hints, address)
    if address and facts["ip"] is None and not _warned:
        _warned.append(address)  # once a process: the operator's setting, not the caller's doing
        log.warning("device page: the request comes from a private address (%s): behind a proxy, set IVR_TRUSTED_PROXIES "
                    "to the number of proxies, or the callers' public IP cannot be known", address)
    return facts


_warned: list[str] = []


def sealed(call_sid: str, facts: dict, page: str, code: str = "") -> str:
    """The consent form's payload: the call, the page and exactly the facts shown, signed and dated."""
    return _signer().dumps({"call": call_sid, "facts": facts, "page": page, "code": code})


def unsealed(payload: str) -> tuple[dict | None, bool]:
    """The consent form's payload, and whether it was ours but too old (shown more than
    CONSENT_SECONDS ago)."""
    try:
        data = _signer().loads(payload, max_age=CONSENT_SECONDS)
    except SignatureExpired:
        return None, True
    except BadSignature:
        return None, False
    return (data if isinstance(data, dict) and isinstance(data.get("facts"), dict) else None), False


def chosen(facts: dict) -> dict:
    """The facts as sent: a Mac's User-Agent said by the caller to be an iPad's is an iPad's."""
    if facts.get("maybe_ipad") and request.form.get("appareil") == "ipad":
        return devices.as_ipad(facts)
    return {key: value for key, value in facts.items() if key != "maybe_ipad"}


def record(call_sid: str, facts: dict, page_kind: str) -> bool:
    """Keep what a device sent, with the call (for the agent, the API, the final document) and in its
    session (so that the questions it answers are not asked). False: the call is over, nothing kept.

    With an agent already, the call's record and the helpdesk's document are written again with these
    facts (the questions may be over, or never started: the agent took the call at once)."""
    ivr = services()
    session = ivr.store.load(call_sid)
    if session is None:
        return False
    kind = devices.kind(facts) or page_kind  # a guide opened on a computer describes the computer
    at = ivr.clock()
    kept = {**facts, "page": page_kind}
    ivr.devices.add(call_sid, kind, kept, at)
    for _ in range(_SAVE_TRIES):
        if session is None:  # ended meanwhile: the facts are with the call (the agent's page reads them there)
            break
        saved = logged(session.evolve(devices={**session.devices, kind: kept}), at, "device", kind=kind, source=facts.get("source"))
        again = saved.outcome == "transferred"
        try:
            ivr.store.save(saved.evolve(recorded=len(saved.history)) if again else saved)
        except Conflict:  # a webhook of the call saved first: once more on the fresh session
            session = ivr.store.load(call_sid)
            continue
        if again:
            document = endings.completed_document(ivr, saved, at, _links_kept(ivr, call_sid))
            write(ivr, "progress", session=saved.to_dict(), context=document, events_from=saved.recorded)
        break
    log.info("[%s] step 6: the %s sent its facts (%s)", call_sid, kind, facts.get("source"))
    return True


def _links_kept(ivr, call_sid: str) -> handoff.Links:
    """The links of the call's document as written at its transfer (the agent's page, the API…)."""
    before = (ivr.records.get(call_sid) or {}).get("context") or {}
    return handoff.Links(done="", context=before.get("context_url") or "", visual=before.get("visual_guide_url") or "",
                         agent=before.get("agent_url") or "")


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=_SALT)


def _text(name: str, **params: str) -> str:
    ivr = services()
    return ivr.bundle().prompts.text(f"page.{name}", {"jours": str(ivr.retention_days), **params})


def _page(step: str, status: int = 200, **values):
    return render_template("guide/computer.html", t=_text, step=step, **values), status


@bp.after_request
def headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    response.headers.update({"X-Robots-Tag": "noindex", "Content-Language": "fr"})
    return hinted(response)


@bp.get("/code")
def code_page():
    """The computer's page: the code heard on the phone."""
    return _page("code", problem=None)


MISHEARD = ("/Code", "/CODE", "/code/", "/o", "/O", "/0", "/codes")  # the address as it may be typed from hearing it


def misheard():
    return redirect(url_for("devices.code_page"), code=302)


for _path in MISHEARD:
    bp.add_url_rule(_path, f"misheard{MISHEARD.index(_path)}", misheard)


@bp.post("/code")
def code_typed():
    """A code typed: the consent page with this computer's facts, or why not."""
    ivr = services()
    code = "".join(request.form.get("code", "").split())[:12]
    try:
        call_sid = ivr.devices.call_of(code, request.remote_addr or "-", ivr.clock())
    except TooManyTries as too_many:
        return _page("code", 429, problem=_text("ordinateur_trop", minutes=str(max(1, round(too_many.wait / 60)))))
    except Exception:
        log.exception("computer page: the codes cannot be read")
        abort(503)
    if call_sid is None:
        return _page("code", 400, problem=_text("ordinateur_code_faux"))
    facts = this_device()
    return _page("consent", facts=devices.described(facts), payload=sealed(call_sid, facts, devices.COMPUTER, code),
                 action=url_for("devices.send"), maybe_ipad=False)


@bp.post("/code/envoyer")
def send():
    """The caller agreed: the facts shown are kept with the call, and the code is used up."""
    if not same_origin():
        abort(403)
    data, expired = unsealed(request.form.get("envoi", ""))
    if data is None:
        return _page("code", 400, problem=_text("ordinateur_expire" if expired else "ordinateur_code_faux"))
    ivr = services()
    try:
        if not record(data["call"], chosen(data["facts"]), data.get("page") or devices.COMPUTER):
            return _page("done", message=_text("ordinateur_fini"))
        if data.get("code"):
            ivr.devices.used(data["code"])
    except Exception:
        log.exception("[%s] computer page: the facts could not be kept", data.get("call"))
        abort(503)
    return _page("done", message=_text("ordinateur_merci"))


def same_origin() -> bool:
    """Whether a POST comes from our own page (the browser's Sec-Fetch-Site and Origin, when sent)."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    public_base = services().public_base
    return origin in {request.host_url.rstrip("/"), *(["/".join(public_base.split("/")[:3])] if public_base else [])}


def _error(status: int, name: str, title: str = "lien_titre"):
    return render_template("guide/error.html", message=_text(name), title=_text(title), again=False, t=_text), status


bp.register_error_handler(403, lambda error: _error(403, "autre_site"))
bp.register_error_handler(413, lambda error: _error(413, "trop_long"))
bp.register_error_handler(503, lambda error: _error(503, "ordinateur_indisponible", "ordinateur_titre"))
