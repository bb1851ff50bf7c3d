"""The console's evidence pages: the incident announcement, and sentence experiments on a sentence's
page. Same rules as the rest of the console: editors change, viewers read, every change has who/when."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from flask import flash, g, redirect, render_template, request, url_for

from ..call.hours import PARIS
from ..storage.experiments import ExperimentError
from ..supervisor import experiments as experiments_module
from ..supervisor import wording
from ..supervisor.lint import check_announcement
from .console import _check_edit, _prompt_or_404, _prompt_page, bp, editor_required
from .services import services

log = logging.getLogger(__name__)


@bp.get("/incident")
def incident():
    ivr = services()
    return render_template("console/incident.html", current=ivr.incidents.current(ivr.clock()), history=ivr.incidents.history(),
                           text=request.args.get("text", ""), problems=[])


@bp.post("/incident")
@editor_required
def incident_set():
    ivr = services()
    text = " ".join(request.form.get("text", "").split())
    until_text = request.form.get("until", "").strip()
    problems = [p.message for p in check_announcement(text)]
    until = None
    if until_text:
        try:
            until = datetime.fromisoformat(until_text).replace(tzinfo=PARIS).timestamp()
        except ValueError:
            problems.append("la fin doit être une date et une heure (heure de Paris)")
        else:
            if until <= ivr.clock():
                problems.append("la fin est déjà passée")
    if problems:
        return render_template("console/incident.html", current=ivr.incidents.current(ivr.clock()), history=ivr.incidents.history(),
                               text=text, until=until_text, problems=problems), 400
    number = ivr.incidents.set(text, until, g.user, time.time())
    log.info("console: %s set incident announcement #%s", g.user, number)
    flash("Annonce en service : les nouveaux appels l'entendent après l'accueil, sur tous les serveurs.", "success")
    return redirect(url_for("console.incident"))


@bp.post("/incident/clear")
@editor_required
def incident_clear():
    if services().incidents.clear(g.user, time.time()):
        log.info("console: %s cleared the incident announcement", g.user)
        flash("Annonce arrêtée : les nouveaux appels ne l'entendent plus.", "success")
    else:
        flash("Aucune annonce en cours.", "info")
    return redirect(url_for("console.incident"))


@bp.post("/prompts/<key>/experiment")
@editor_required
def experiment_start(key: str):
    ivr = services()
    current = _prompt_or_404(ivr.bundle(), key)
    text = " ".join(request.form.get("text_b", "").split())
    try:
        share = int(request.form.get("share", "50"))
    except ValueError:
        share = 0
    found = _check_edit(key, text) if text else []
    problems = [p for p in found if p.severity == "error"]
    refusal = experiments_module.refusal(ivr.bundle(), key, text) if text and not problems else None
    if refusal:
        flash(f"Expérience refusée : {refusal}.", "error")
        return redirect(url_for("console.prompt", key=key))
    if not text:
        flash("La formulation B est vide.", "error")
    for problem in problems:
        flash(f"Formulation B refusée : {problem.message}", "error")
    if text and not problems and found and request.form.get("confirm") != "1":  # warnings: a second click, as for a change
        return _prompt_page(ivr.bundle(), current, current.text, [], b_text=text, b_warnings=found, share=share)
    if text and not problems:
        try:
            number = ivr.experiments.start(key, text, share, g.user, time.time(), current.text)
        except ExperimentError as error:
            flash(str(error), "error")
        else:
            log.info("console: %s started experiment #%s on %s", g.user, number, key)
            flash(f"Expérience en cours : {share} % des nouveaux appels entendent B.", "success")
    return redirect(url_for("console.prompt", key=key))


@bp.post("/prompts/<key>/experiment/stop")
@editor_required
def experiment_stop(key: str):
    ivr = services()
    current = _prompt_or_404(ivr.bundle(), key)
    keep = request.form.get("keep")
    if keep not in ("A", "B"):
        flash("Choisissez la formulation gardée : A ou B.", "error")
        return redirect(url_for("console.prompt", key=key))
    try:
        stopped = ivr.experiments.stop(key, keep, g.user, time.time())
    except ExperimentError as error:
        flash(str(error), "error")
        return redirect(url_for("console.prompt", key=key))
    if keep == "B":
        wording.publish(ivr.overrides, ivr.library.file_prompts(), key, stopped["text_b"], g.user, current.text,
                        action=f"expérience n° {stopped['id']} : B gardé")
        ivr.library.reload()
        flash("Expérience arrêtée : B devient la phrase (modification de la console, dans l'historique).", "success")
    else:
        flash("Expérience arrêtée : la phrase reste telle quelle (A).", "success")
    return redirect(url_for("console.prompt", key=key))
