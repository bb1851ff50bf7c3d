"""The supervisors' web console: figures, prompt editing with history, the flow, and a call simulator."""

from __future__ import annotations

import functools
import hmac
import logging
import math
import secrets
import shutil
import subprocess
import time
from datetime import date, datetime, timedelta

from flask import Blueprint, Response, abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from twilio.request_validator import RequestValidator

from .. import french
from ..call.handoff import REASON_LABELS
from ..call.hours import PARIS
from ..storage.experiments import PUBLISHED
from ..storage.records import SIMULATED_PREFIX
from ..supervisor import analytics, diagram, wording
from ..supervisor import experiments as experiment_figures
from ..supervisor.lint import check_change, spoken_seconds
from . import calls
from .services import services

log = logging.getLogger(__name__)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # what callers said and the console's pages stay out of shared and browser caches
}
VISUAL_PREFIX = ("visuel.", "page.")  # the visual guide's texts: read on the caller's phone, not heard
bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static")
PERIOD_DAYS = 7


# ---- authentication, roles, CSRF ----------------------------------------------------------------
@bp.before_request
def guard():
    """Every page but the login needs a live session; every POST needs the CSRF token."""
    if request.method == "POST":
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
        expected = session.get("csrf", "")
        if not expected or not hmac.compare_digest(sent, expected):
            return render_template("console/error.html", message="Jeton de sécurité invalide ou expiré : rechargez la page."), 400
    if request.endpoint in ("console.login", "console.static"):
        return None
    idle = int(current_app.config.get("IVR_CONSOLE_IDLE_MINUTES", 30)) * 60
    token = session.get("login")
    found = services().users.login_of(token, time.time(), idle) if token else None
    if found is None:  # not logged in, logged out, idle too long, over 12 hours, or the account was removed
        session.pop("login", None)
        return redirect(url_for("console.login", next=request.full_path))
    g.user, g.role = found
    return None


@bp.app_template_filter("paris")
def paris_time(timestamp: float) -> str:
    """A Unix time as Paris date and time."""
    return french.moment(timestamp)


@bp.app_context_processor
def template_globals():
    if not request.path.startswith("/console"):  # other pages (the visual guide) have no console session
        return {}
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return {"csrf_token": session["csrf"], "user": g.get("user"), "role": g.get("role")}


@bp.after_request
def security_headers(response):
    """No framing (the one-click rollback cannot be clickjacked), no inline script, no sniffing."""
    response.headers.update({name: value for name, value in SECURITY_HEADERS.items()
                             if name != "Cache-Control" or request.endpoint != "console.static"})  # the style sheet and script are cached
    return response


def editor_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("role") != "editor":
            return render_template("console/error.html", message="Cette action est réservée aux éditeurs."), 403
        return view(*args, **kwargs)

    return wrapped


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return render_template("console/login.html", error=None)
    users, now = services().users, time.time()
    username, address = request.form.get("username", "").strip()[:80], request.remote_addr or "-"
    wait = users.login_try(username, address, now)
    if wait:
        log.warning("console: login for %r from %s refused: too many wrong passwords", username, address)
        minutes = math.ceil(wait / 60)
        error = f"Trop d'essais : réessayez dans {minutes} minute{'s' if minutes > 1 else ''}."
        return render_template("console/login.html", error=error, username=username), 429
    role = users.authenticate(username, request.form.get("password", ""))
    if role is None:
        log.warning("console: failed login for %r from %s", username, address)
        return render_template("console/login.html", error="Identifiant ou mot de passe incorrect.", username=username), 401
    users.login_succeeded(username, address)
    token = secrets.token_urlsafe(32)
    users.open_login(username, token, now)
    csrf = session.get("csrf")
    session.clear()
    session.permanent = True
    session.update(login=token, csrf=csrf or secrets.token_urlsafe(32))
    log.info("console: %s logged in (%s)", username, role)
    target = request.args.get("next", "")
    return redirect(target if target.startswith("/console") else url_for("console.dashboard"))


@bp.post("/logout")
def logout():
    """The login ends on the server too: a copy of the cookie no longer opens anything."""
    if session.get("login"):
        services().users.close_login(session["login"])
    session.clear()
    return redirect(url_for("console.login"))


# ---- figures ------------------------------------------------------------------------------------
def _period() -> tuple[date, date]:
    today = datetime.now(PARIS).date()
    try:
        last = date.fromisoformat(request.args["to"]) if request.args.get("to") else today
        first = date.fromisoformat(request.args["from"]) if request.args.get("from") else last - timedelta(days=PERIOD_DAYS - 1)
    except ValueError:
        abort(Response(render_template("console/error.html", message="Date invalide : utilisez le format AAAA-MM-JJ."), 400))
    return (first, last) if first <= last else (last, first)


@bp.get("/")
def dashboard():
    first, last = _period()
    data = analytics.figures(services().db, *analytics.day_bounds(first, last))
    return render_template("console/dashboard.html", data=data, first=first, last=last, reasons=REASON_LABELS,
                           percent=analytics.percent, outcome_labels=analytics.OUTCOME_LABELS,
                           calls_word=analytics.calls_word)


@bp.get("/calls.csv")
def calls_csv():
    first, last = _period()
    body = analytics.calls_csv(services().db, *analytics.day_bounds(first, last))
    filename = f"appels-{first.isoformat()}-{last.isoformat()}.csv"
    return Response(body.encode("utf-8"), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# ---- prompts ------------------------------------------------------------------------------------
def _nodes_by_prompt(flow) -> dict[str, list[str]]:
    uses: dict[str, list[str]] = {}
    for node in flow.nodes.values():
        for key in (node.prompt, node.short, node.hold, node.visual):
            if key:
                uses.setdefault(key, []).append(node.name)
    return uses


@bp.get("/prompts")
def prompts():
    bundle = services().bundle()
    query = request.args.get("q", "").strip().lower()
    overridden = services().overrides.all()
    uses = _nodes_by_prompt(bundle.flow)
    rows = [
        {"key": p.key, "text": p.text, "nodes": uses.get(p.key, []), "overridden": p.key in overridden,
         "seconds": spoken_seconds(p.text)}
        for p in bundle.prompts.entries.values()
        if not query or query in p.key.lower() or query in p.text.lower() or any(query in n for n in uses.get(p.key, []))
    ]
    return render_template("console/prompts.html", rows=rows, query=request.args.get("q", ""), version=bundle.version)


@bp.get("/prompts/<key>")
def prompt(key: str):
    bundle = services().bundle()
    current = _prompt_or_404(bundle, key)
    return _prompt_page(bundle, current, current.text, [])


@bp.post("/prompts/<key>")
@editor_required
def prompt_edit(key: str):
    """Publish a changed sentence: checked like `ivr validate` (errors refuse it; warnings need a
    second click); while an experiment runs on it, only with a click that ends the experiment."""
    ivr = services()
    bundle = ivr.bundle()
    current = _prompt_or_404(bundle, key)
    text = " ".join(request.form.get("text", "").split())
    if text == current.text:
        flash("Aucun changement.", "info")
        return redirect(url_for("console.prompt", key=key))
    problems = _check_edit(key, text)
    running = ivr.experiments.running_on(key)
    locked = running is not None and request.form.get("end_experiment") != "1"
    if any(p.severity == "error" for p in problems) or locked or (problems and request.form.get("confirm") != "1"):
        return _prompt_page(bundle, current, text, problems, locked=experiment_figures.locked(running) if locked else None)
    if running is not None:
        ivr.experiments.stop(key, PUBLISHED, g.user, time.time())
        flash(f"L'expérience n° {running['id']} est arrêtée : une nouvelle formulation a été publiée (ses chiffres restent ci-dessous).",
              "warning")
    source = wording.publish(ivr.overrides, ivr.library.file_prompts(), key, text, g.user, current.text)
    ivr.library.reload()
    log.info("console: %s changed prompt %s", g.user, key)
    heard = "le guide visuel l'affiche" if key.startswith(VISUAL_PREFIX) else "les nouveaux appels l'entendent"
    origin = " C'est le texte du fichier : la modification de la console est retirée." if source == wording.FILE else ""
    flash(f"Phrase « {key} » publiée : {heard} dès maintenant.{origin}", "success")
    for problem in problems:
        flash(f"Publiée malgré l'avertissement : {problem.message}", "warning")
    return redirect(url_for("console.prompt", key=key))


@bp.post("/prompts/<key>/reset")
@editor_required
def prompt_reset(key: str):
    """« Reprendre le texte du fichier »: the console's change withdrawn, the file speaks again."""
    ivr = services()
    current = _prompt_or_404(ivr.bundle(), key)
    running = ivr.experiments.running_on(key)
    if running is not None:
        flash(f"Refusé : {experiment_figures.locked(running)}.", "error")
        return redirect(url_for("console.prompt", key=key))
    file = ivr.library.file_prompts()
    if file is None or not wording.reset(ivr.overrides, file, key, g.user, current.text):
        flash("Cette phrase n'est pas modifiée dans la console : c'est déjà le texte du fichier.", "info")
        return redirect(url_for("console.prompt", key=key))
    ivr.library.reload()
    log.info("console: %s withdrew the console's change of prompt %s", g.user, key)
    flash(f"Phrase « {key} » : le texte du fichier est de nouveau celui que les appelants entendent.", "success")
    return redirect(url_for("console.prompt", key=key))


def _prompt_or_404(bundle, key: str):
    current = bundle.prompts.entries.get(key)
    if current is None:
        abort(404)
    return current


def experiment_of(key: str) -> tuple[dict | None, dict | None]:
    """The experiment on `key` (running, or the last one) and its figures."""
    ivr = services()
    found = ivr.experiments.get(key)
    if found is None:
        return None, None
    return found, experiment_figures.figures(ivr.db, found, ivr.bundle().flow)


def _prompt_page(bundle, current, text: str, problems: list, locked: str | None = None, b_text: str = "", b_warnings: tuple = (),
                 share: int = 50):
    ivr = services()
    confirmable = bool(problems) and not any(p.severity == "error" for p in problems)
    experiment, figures = experiment_of(current.key)
    file = ivr.library.file_prompts()
    origin = wording.origin_of(current.key, file, ivr.overrides.rows())
    changed = experiment_figures.a_changed(experiment, current.text) if experiment else None
    return render_template("console/prompt.html", prompt=current, text=text, problems=problems, confirmable=confirmable,
                           nodes=_nodes_by_prompt(bundle.flow).get(current.key, []), history=ivr.overrides.history(current.key),
                           seconds=spoken_seconds(text), shown=current.key.startswith(VISUAL_PREFIX), experiment=experiment,
                           figures=figures, percent=analytics.percent, origin=origin, locked=locked, a_changed=changed,
                           kept_label=experiment_figures.kept_label, prompts_file=ivr.library.prompts_path.name, b_text=b_text,
                           b_warnings=b_warnings, share=share), 409 if locked else 200


def _check_edit(key: str, text: str):
    """Exactly what `ivr validate` checks, on the files with this change on top (only what concerns
    this sentence or what it breaks; the rest was already there)."""
    return check_change(services().library.load, key, text)


@bp.get("/history")
def history():
    return render_template("console/history.html", entries=services().overrides.history())


@bp.post("/history/<int:entry_id>/rollback")
@editor_required
def rollback(entry_id: int):
    """Back to the wording before a change: the file's own wording withdraws the console's change."""
    ivr = services()
    entry = ivr.overrides.entry(entry_id)
    if entry is None:
        abort(404)
    bundle = ivr.bundle()
    current = bundle.prompts.entries.get(entry["key"])
    if current is None or entry["before"] is None:
        flash("Cette phrase n'existe plus : rien à rétablir.", "warning")
        return redirect(url_for("console.history"))
    running = ivr.experiments.running_on(entry["key"])
    if running is not None:
        flash(f"Retour arrière refusé : {experiment_figures.locked(running)}.", "error")
        return redirect(url_for("console.history"))
    problems = _check_edit(entry["key"], entry["before"])
    if any(p.severity == "error" for p in problems):
        flash("Retour arrière refusé : " + " ; ".join(p.message for p in problems), "error")
        return redirect(url_for("console.history"))
    source = wording.publish(ivr.overrides, ivr.library.file_prompts(), entry["key"], entry["before"], g.user, current.text,
                             action=f"rollback #{entry_id}")
    ivr.library.reload()
    origin = " C'est le texte du fichier : la phrase ne dépend plus de la console." if source == wording.FILE else ""
    flash(f"Phrase « {entry['key']} » rétablie comme avant la modification n° {entry_id}.{origin}", "success")
    return redirect(url_for("console.history"))


# ---- the flow -----------------------------------------------------------------------------------
@bp.get("/flow")
def flow():
    """The flow, one part at a time (each readable at its natural size; the whole flow is 3,800
    points wide, its text would be 3 pixels high on a screen), with each step's figures."""
    first, last = _period()
    bundle = services().bundle()
    data = analytics.figures(services().db, *analytics.day_bounds(first, last))
    labels = {name: f"{analytics.calls_word(n['reach'])} · {n['median_time_s']:.0f} s · abandon {analytics.percent(n['drop_off_rate'])}"
              for name, n in data["nodes"].items()}
    parts = diagram.sections(bundle.flow)
    chosen = request.args.get("section") or parts[0][0]
    if chosen != "tout" and chosen not in {id_ for id_, _, _ in parts}:
        chosen = parts[0][0]
    only = None if chosen == "tout" else next(names for id_, _, names in parts if id_ == chosen)
    svg = None
    program = shutil.which("dot")
    if program:
        link = f"?from={first.isoformat()}&to={last.isoformat()}&section={{}}"
        source = diagram.dot(bundle.flow, labels, only, link)
        svg = subprocess.run([program, "-Tsvg"], input=source.encode(), capture_output=True, check=True).stdout.decode()
        svg = svg[svg.index("<svg"):]
    title = "Tout le parcours" if chosen == "tout" else next(title for id_, title, _ in parts if id_ == chosen)
    return render_template("console/flow.html", flow=bundle.flow, nodes=data["nodes"], svg=svg, first=first, last=last,
                           mermaid=diagram.mermaid(bundle.flow, labels), percent=analytics.percent, parts=parts, chosen=chosen,
                           part_title=title, shown=set(only) if only is not None else set(bundle.flow.nodes))


# ---- try it: a call in the browser over the real webhooks ---------------------------------------
@bp.get("/try")
def try_call():
    return render_template("console/try.html", call_sid=SIMULATED_PREFIX + secrets.token_hex(15)[:29], prefix=SIMULATED_PREFIX)


@bp.post("/try/webhook")
def try_webhook():
    """Play Twilio for the browser: sign the request and send it through the voice webhooks."""
    payload = request.get_json(silent=True) or {}
    path, base = str(payload.get("url", "")), services().public_base
    if base and path.startswith(base + "/"):  # the TwiML names our URLs under IVR_PUBLIC_URL
        path = path[len(base):]
    params = {str(k): str(v) for k, v in (payload.get("params") or {}).items()}
    if not path.startswith("/voice") or not params.get("CallSid", "").startswith(SIMULATED_PREFIX):
        return jsonify(error="only simulated calls to /voice URLs"), 400
    ivr = services()
    base = ivr.public_base or request.host_url.rstrip("/")
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    headers = {"X-Twilio-Signature": RequestValidator(token).compute_signature(base + path, params)} if token else {}
    response = current_app.test_client().post(path, data=params, headers=headers, base_url=base)
    services().settle(timeout=2)  # what the call wrote (its outcome) is applied from the journal before the page asks
    return jsonify(status=response.status_code, body=response.get_data(as_text=True))


@bp.get("/try/context/<call_sid>")
def try_context(call_sid: str):
    if not call_sid.startswith(SIMULATED_PREFIX):
        abort(404)
    ivr = services()
    record = ivr.records.get(call_sid) or {}
    document = record.get("context")
    if document is None:
        live = ivr.store.load(call_sid)
        if live is not None:
            document = calls.context_now(ivr, live)
    outcome = record.get("outcome")
    return jsonify(outcome=outcome, outcome_label=analytics.outcome_label(outcome) if record else "en cours",
                   outcome_step=record.get("outcome_step"), summary=(document or {}).get("summary_fr"), context=document)
