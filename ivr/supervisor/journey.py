"""One call, step by step, as a supervisor reads it (like Studio's execution log, in French): each
step with the sentence of that step, what the caller pressed or said, silences and retries, the time
spent there; the experiment arm, the incident, the transfer and its result, the rating. And the
search that finds a call again: by day, outcome, identifier, or the last digits of the number."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import french
from ..call import transfer_results
from ..call.flow import Flow
from ..call.handoff import REASON_LABELS
from ..call.prompts import Prompts
from ..storage.db import Database
from .analytics import outcome_label

# What each event of a call's history says, for a supervisor.
_EVENTS = {
    "enter": "étape", "answer": "réponse", "invalid": "mauvaise touche", "silence": "silence", "repeat": "réécoute (étoile)",
    "agent": "demande un conseiller (0)", "transfer": "transfert vers un conseiller", "skip": "question passée",
    "wait": "rappel pendant l'action", "experiment": "expérience A/B", "incident": "annonce d'incident", "sms": "guide par SMS",
    "end": "fin de l'appel", "closed": "service fermé : partie hors horaires", "unanswered": "aucun conseiller : partie hors horaires",
    "rating": "note", "option": "choix (plusieurs possibles)", "confirm": "relecture confirmée", "page": "bouton du guide visuel",
    "queued_answer": "réponse en file d'attente", "speech": "réponse dite", "callback": "demande de rappel",
    "device": "informations envoyées par un appareil", "inferred": "réponses déduites",
}
MAX_LISTED = 200


@dataclass(frozen=True)
class Moment:
    """One line of the journey."""

    offset: str  # « +1:05 » from the call's start
    step: int | None
    node: str
    what: str  # the event, in French
    detail: str  # what was pressed or said, the reason, the arm…
    heard: str  # on arriving at a step: its sentence (as written in the call's version)
    spent: str  # on arriving at a step: the time spent there


def moments(record: dict, events: list[dict], flow: Flow | None, prompts: Prompts | None) -> list[Moment]:
    """The call's history as lines, oldest first."""
    start = record["started_at"]
    entries = sorted(events, key=lambda e: (e.get("seq") if e.get("seq") is not None else 1 << 30, e["at"], e["id"]))
    found = []
    for index, event in enumerate(entries):
        name, node = event["event"], event.get("node") or ""
        detail = event.get("detail") or {}
        heard = spent = ""
        if name == "enter":
            item = flow.nodes.get(node) if flow is not None else None
            if item is not None and prompts is not None and item.prompt in prompts.entries:
                heard = prompts.entries[item.prompt].text
            following = next((e for e in entries[index + 1:] if e["event"] == "enter"), None)
            until = following["at"] if following else record.get("ended_at")
            spent = _duration(until - event["at"]) if until is not None else "en cours"
        found.append(Moment(_offset(event["at"] - start), event.get("step"), node, _EVENTS.get(name, name), _detail(name, detail), heard,
                            spent))
    if record.get("transfer_result"):
        result = transfer_results.of(record["transfer_result"])
        found.append(Moment("", None, "", "résultat du transfert", result.label, "", ""))
    if record.get("rating") is not None:
        channel = {"voice": "au téléphone", "sms": "par SMS"}.get(record.get("rating_channel"), record.get("rating_channel") or "")
        found.append(Moment("", None, "", "note de l'appelant", f"{record['rating']} sur 5 {channel}".strip(), "", ""))
    return found


def _detail(name: str, detail: dict) -> str:
    if name == "answer" or name == "queued_answer":
        parts = [f"touche {detail['key']}" if detail.get("key") else "", detail.get("answer") or ""]
        return " : ".join(part for part in parts if part)
    if name in ("invalid", "option"):
        return f"touche {detail.get('key', '?')}"
    if name == "transfer":
        return REASON_LABELS.get(detail.get("reason", ""), detail.get("reason", ""))
    if name == "experiment":
        return f"« {detail.get('key')} » : version {detail.get('arm')}"
    if name == "incident":
        return f"n° {detail.get('incident')}"
    if name == "sms":
        return f"{detail.get('guide', '')} : {detail.get('status', '')}"
    if name == "end":
        return outcome_label(detail.get("outcome"))
    if name == "skip" and detail.get("device"):
        return "relevé sur l'appareil : pas demandé"
    if name == "skip" and detail.get("inferred"):
        return "déduit d'une autre réponse : pas demandé"
    if name == "skip":
        return f"touche {detail['key']}" if detail.get("key") else "silence ou dièse seul"
    if name == "device":
        return {"telephone": "téléphone ou tablette", "ordinateur": "ordinateur"}.get(detail.get("kind", ""), detail.get("kind", ""))
    if name == "inferred":
        return ", ".join(detail.get("fields") or ())
    if name == "rating":
        return str(detail.get("rating", ""))
    if name == "page":
        return detail.get("action", "")
    return ""


def _offset(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"+{seconds // 60}:{seconds % 60:02d}"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def search(db: Database, start: float, end: float, outcome: str = "", identifier: str = "", digits: str = "") -> list[dict]:
    """The calls of a period (simulated ones left out), the most recent first, that match: their
    outcome, their identifier (as keyed in), the last digits of the caller's number."""
    sql = "SELECT call_sid, caller, started_at, outcome, outcome_step, last_step, transfer_reason, context FROM calls " \
          "WHERE started_at >= ? AND started_at < ? AND simulated = 0"
    params: list = [start, end]
    if outcome:
        sql += " AND outcome = ?"
        params.append(outcome)
    rows = db.query(sql + " ORDER BY started_at DESC", tuple(params))
    found = []
    for row in rows:
        context = row["context"] if isinstance(row["context"], dict) or row["context"] is None else json.loads(row["context"])
        value = ((context or {}).get("identifier") or {}).get("value") or ""
        if identifier and value != identifier:
            continue
        if digits and not (row["caller"] or "").endswith(digits):
            continue
        found.append({"call_sid": row["call_sid"], "when": french.moment(row["started_at"]), "outcome": outcome_label(row["outcome"]),
                      "step": row["outcome_step"] or row["last_step"], "number": masked(row["caller"]),
                      "identifier": (((context or {}).get("identifier") or {}).get("type") or "") + (f" …{value[-4:]}" if value else ""),
                      "reason": REASON_LABELS.get(row["transfer_reason"] or "", "")})
        if len(found) >= MAX_LISTED:
            break
    return found


def masked(number: str | None) -> str:
    """A caller's number shown by its last 4 digits only (the list is seen by every supervisor)."""
    return f"•• •• •• {number[-4:-2]} {number[-2:]}" if number and len(number) >= 4 else "masqué"
