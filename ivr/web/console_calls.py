"""The console's calls: a period's calls found again (by outcome, identifier, the last digits of the
number) and one call's journey, step by step. Same rules as the rest of the console."""

from __future__ import annotations

from flask import abort, render_template, request

from ..supervisor import analytics, journey
from .console import _period, bp
from .services import services


@bp.get("/appels")
def calls_list():
    """The calls of a period, found by outcome, identifier or the last digits of the number."""
    first, last = _period()
    outcome = request.args.get("issue", "")
    identifier = request.args.get("identifiant", "").strip()
    digits = request.args.get("numero", "").strip().replace(" ", "")
    problems = []
    if outcome and outcome not in analytics.OUTCOME_LABELS:
        problems.append("Issue inconnue : choisissez-la dans la liste.")
    if digits and not (digits.isascii() and digits.isdigit() and 2 <= len(digits) <= 4):
        problems.append("Numéro : tapez les 2 à 4 derniers chiffres du numéro de l'appelant.")
    rows = [] if problems else journey.search(services().db, *analytics.day_bounds(first, last), outcome, identifier, digits)
    return render_template("console/calls.html", rows=rows, first=first, last=last, outcome=outcome, identifier=identifier,
                           digits=digits, problems=problems, outcomes={k: v for k, v in analytics.OUTCOME_LABELS.items() if k},
                           limit=journey.MAX_LISTED), 400 if problems else 200


@bp.get("/appels/<call_sid>")
def call_journey(call_sid: str):
    """One call's journey: each step, what was said there, what the caller did, the time spent."""
    ivr = services()
    record = ivr.records.get(call_sid)
    if record is None:
        abort(404)
    bundle = ivr.library.get(record["flow_version"]) if record.get("flow_version") else ivr.bundle()
    lines = journey.moments(record, ivr.records.events(call_sid), bundle.flow, bundle.prompts)
    return render_template("console/call.html", record=record, lines=lines, context=record.get("context") or {},
                           outcome=analytics.outcome_label(record.get("outcome")), number=journey.masked(record.get("caller")))
