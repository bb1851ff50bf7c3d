"""Figures for supervisors: outcomes, containment, the funnel through the guide, and per-node
behaviour (reach, time, silences, wrong keys, repeats, drop-off). Simulated calls are left out."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta

from .. import french
from ..call import transfer_results
from ..call.handoff import REASON_LABELS
from ..call.hours import PARIS
from ..call.prompts import fill
from ..storage.db import Database

CSV_COLUMNS = ("call_sid", "started_at", "ended_at", "outcome", "outcome_step", "last_node", "transfer_reason",
               "transfer_result", "duration_s", "incident", "arms", "rating", "rating_channel")
OUTCOME_LABELS = {
    "solved": "résolu par le serveur vocal",
    "service": "orienté vers le service (test « Bravo »)",
    "transferred": "transféré à un conseiller",
    "hung_up": "raccroché en cours de route",
    "callback": "demande de rappel",
    "voicemail": "message vocal laissé",
    "closed": "service fermé, sans suite",
    "unanswered": "aucun conseiller, sans suite",
    "busy": "occupé (non décroché)",
    "no-answer": "sans réponse (non décroché)",
    "failed": "échec de l'appel",
    "canceled": "annulé par l'appelant",
    None: "en cours",
}


def outcome_label(outcome: str | None) -> str:
    """An outcome as supervisors read it."""
    return OUTCOME_LABELS.get(outcome, outcome or "en cours")


def day_bounds(first: date, last: date) -> tuple[float, float]:
    """Unix times of the start of `first` and the end of `last`, in Paris time."""
    start = datetime.combine(first, time.min, PARIS)
    end = datetime.combine(last + timedelta(days=1), time.min, PARIS)
    return start.timestamp(), end.timestamp()


def figures(db: Database, start: float, end: float) -> dict:
    """Every figure for calls started in [start, end)."""
    calls = db.query("SELECT * FROM calls WHERE started_at >= ? AND started_at < ? AND simulated = 0 ORDER BY started_at", (start, end))
    events = db.query(
        "SELECT e.call_sid, e.at, e.node, e.step, e.event FROM events e JOIN calls c ON c.call_sid = e.call_sid "
        "WHERE c.started_at >= ? AND c.started_at < ? AND c.simulated = 0 ORDER BY e.call_sid, e.at, e.id",
        (start, end),
    )
    total = len(calls)
    outcomes = Counter(call["outcome"] for call in calls)
    contained = outcomes["solved"] + outcomes["service"]
    return {
        "period": {"start": start, "end": end},
        "calls": total,
        "contained": contained,
        "containment_rate": contained / total if total else None,
        "outcomes": dict(outcomes.most_common()),
        "solved_by_step": _counts(call["outcome_step"] for call in calls if call["outcome"] == "solved"),
        "transferred_by_reason": _counts(call["transfer_reason"] for call in calls if call["outcome"] == "transferred"),
        "transfers": _transfers(calls),
        "hung_up_by_node": _counts(call["last_node"] for call in calls if call["outcome"] == "hung_up"),
        "funnel": _funnel(events),
        "nodes": _nodes(events, calls),
        "days": _days(calls),
        "median_duration_s": statistics.median([c["duration_s"] for c in calls if c["duration_s"] is not None] or [0]) if total else None,
        "incident": _incident_figures(calls, events),
        "satisfaction": satisfaction(calls),
    }


def _incident_figures(calls, events) -> dict:
    """Calls that heard an incident announcement, and those that hung up right after it: before
    doing anything at the question that followed (no key, no word, no silence counted)."""
    during = {call["call_sid"]: call for call in calls if call.get("incident")}
    acted = {row["call_sid"] for row in events if row["call_sid"] in during and row["event"] not in _NOT_AN_ACT}
    return {"calls": len(during), "hung_up_after_announcement": sum(call["outcome"] == "hung_up" and sid not in acted
                                                                    for sid, call in during.items())}


_NOT_AN_ACT = frozenset({"enter", "incident", "experiment"})  # what happens to a call before it does anything


def satisfaction(calls) -> dict:
    """What callers thought: how many rated, the mean, the distribution; by outcome, flow version and experiment arm."""
    rated = [call for call in calls if call.get("rating")]

    def summary(rows) -> dict:
        values = [row["rating"] for row in rows]
        return {"answers": len(values), "mean": round(statistics.mean(values), 2) if values else None,
                "distribution": {str(n): values.count(n) for n in range(1, 6)}}

    arms: dict[str, list] = defaultdict(list)
    for call in rated:
        for key, arm in (json.loads(call["arms"]) if call.get("arms") else {}).items():
            arms[f"{key} {arm}"].append(call)
    return {
        **summary(rated),
        "by_outcome": {outcome: summary([c for c in rated if (c["outcome"] or "") == outcome])
                       for outcome in sorted({c["outcome"] or "" for c in rated})},
        "by_version": {version: summary([c for c in rated if (c["flow_version"] or "") == version])
                       for version in sorted({c["flow_version"] or "" for c in rated})},
        "by_arm": {name: summary(rows) for name, rows in sorted(arms.items())},
    }


def _transfers(calls) -> dict:
    """How the transfers ended: taken by an agent (Flex's `redirected` included) or not, by Twilio's result."""
    put_through = [call for call in calls if call["transfer_result"] is not None or call["outcome"] == "transferred"]
    taken = [call for call in put_through if call["transfer_result"] is not None and transfer_results.of(call["transfer_result"]).agent]
    return {"count": len(put_through), "answered": len(taken),
            "by_result": _counts(transfer_results.of(call["transfer_result"]).label if call["transfer_result"] else "résultat pas encore reçu"
                                 for call in put_through)}


def _counts(values) -> dict:
    return dict(Counter(value for value in values if value is not None).most_common())


def _funnel(events) -> dict:
    reached = defaultdict(set)
    for row in events:
        if row["event"] == "enter" and row["step"]:
            reached[row["step"]].add(row["call_sid"])
    return {step: len(reached.get(step, ())) for step in range(1, 7)}


def node_figures(events, calls) -> dict:
    """Per node: reach, visits, median time, and silence / wrong key / repeat / drop-off (per visit)."""
    return _nodes(events, calls)


def _nodes(events, calls) -> dict:
    by_call = defaultdict(list)
    for row in events:
        by_call[row["call_sid"]].append(row)
    ends = {call["call_sid"]: call["ended_at"] for call in calls}
    # A rate is the share of visits (arrivals at the question) where it happened at least once:
    # three wrong numbers in one visit are one visit with a wrong key, never 300 %.
    stats: dict[str, dict] = defaultdict(lambda: {"reach": set(), "visits": 0, "times": [], "silence": set(), "invalid": set(), "repeat": set()})
    for call_sid, rows in by_call.items():
        for index, row in enumerate(rows):
            node = stats[row["node"]]
            if row["event"] == "enter":
                node["reach"].add(call_sid)
                node["visits"] += 1
                later = [r["at"] for r in rows[index + 1 :] if r["event"] == "enter"]
                leaving = later[0] if later else (ends.get(call_sid) or rows[-1]["at"])
                node["times"].append(max(leaving - row["at"], 0.0))
            elif row["event"] in ("silence", "invalid", "repeat"):
                node[row["event"]].add((call_sid, node["visits"]))
    dropped = Counter(call["last_node"] for call in calls if call["outcome"] == "hung_up")
    result = {}
    for name, node in stats.items():
        if not node["visits"]:
            continue
        visits, reach = node["visits"], len(node["reach"])
        result[name] = {
            "reach": reach,
            "visits": visits,
            "counts": {"silence": len(node["silence"]), "invalid": len(node["invalid"]), "repeat": len(node["repeat"]), "dropped": dropped[name]},
            "median_time_s": round(statistics.median(node["times"]), 1),
            "times": sorted(round(t, 1) for t in node["times"]),
            "silence_rate": len(node["silence"]) / visits,
            "invalid_rate": len(node["invalid"]) / visits,
            "repeat_rate": len(node["repeat"]) / visits,
            "drop_off_rate": dropped[name] / reach,
        }
    return result


def _days(calls) -> list[dict]:
    days: dict[str, list[int]] = {}
    for call in calls:
        day = datetime.fromtimestamp(call["started_at"], PARIS).date().isoformat()
        counts = days.setdefault(day, [0, 0])
        counts[0] += 1
        counts[1] += call["outcome"] in ("solved", "service")
    return [{"day": day, "calls": n, "contained": c} for day, (n, c) in sorted(days.items())]


# The CSV export in the French convention, for a French Excel: « ; » between columns, UTF-8 with a BOM
# (without it Excel reads the accents as Windows-1252), French column names and values, times in Paris.
CSV_HEADINGS = ("Appel", "Début", "Fin", "Issue", "Étape de l'issue", "Dernière étape", "Motif du transfert", "Résultat du transfert",
                "Durée (s)", "Annonce d'incident n°", "Expériences (phrase : version)", "Note", "Note donnée")
_CHANNELS = {"voice": "au téléphone", "sms": "par SMS"}


def calls_csv(db: Database, start: float, end: float) -> str:
    """One row per call (simulated calls left out), in the French convention (see CSV_HEADINGS); the
    text starts with the BOM."""
    rows = db.query(
        f"SELECT {', '.join(CSV_COLUMNS)} FROM calls WHERE started_at >= ? AND started_at < ? AND simulated = 0 ORDER BY started_at",
        (start, end),
    )
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_HEADINGS)
    for row in rows:
        arms = row["arms"] if isinstance(row["arms"], dict) or row["arms"] is None else json.loads(row["arms"])
        writer.writerow([
            row["call_sid"], french.moment(row["started_at"]), french.moment(row["ended_at"]) if row["ended_at"] else "",
            outcome_label(row["outcome"]), _blank(row["outcome_step"]), _blank(row["last_node"]),
            REASON_LABELS.get(row["transfer_reason"], row["transfer_reason"]) if row["transfer_reason"] else "",
            transfer_results.of(row["transfer_result"]).label if row["transfer_result"] else "", _blank(row["duration_s"]),
            _blank(row["incident"]), ", ".join(f"{key} : {arm}" for key, arm in sorted((arms or {}).items())), _blank(row["rating"]),
            _CHANNELS.get(row["rating_channel"], row["rating_channel"] or ""),
        ])
    return "\ufeff" + out.getvalue()


def _blank(value) -> str:
    return "" if value is None else str(value)


def calls_word(count: int) -> str:
    """« 1 appel », « 0 appel », « 12 appels »: the noun agrees, as on the phone."""
    return fill("{n:appel}", {"n": str(count)})


def percent(value: float | None) -> str:
    """A rate as a French percentage ("54 %"), or "—"."""
    return french.percent(value)


def report(data: dict, first: date, last: date) -> str:
    """The figures as text for the terminal (`ivr report`)."""
    lines = [f"Appels du {first:%d/%m/%Y} au {last:%d/%m/%Y} : {data['calls']}"]
    if not data["calls"]:
        return "\n".join(lines + ["Aucun appel sur la période."]) + "\n"
    outcomes = data["outcomes"]
    lines.append(f"Taux de résolution sans conseiller : {percent(data['containment_rate'])} ({calls_word(data['contained'])})")
    solved = ", ".join(f"étape {step} : {n}" for step, n in sorted(data["solved_by_step"].items()))
    lines.append(f"  résolus par le serveur vocal : {outcomes.get('solved', 0)}" + (f" ({solved})" if solved else ""))
    lines.append(f"  orientés vers le service (« Bravo ») : {outcomes.get('service', 0)}")
    reasons = ", ".join(f"{REASON_LABELS.get(r, r)} : {n}" for r, n in data["transferred_by_reason"].items())
    lines.append(f"Transférés à un conseiller : {outcomes.get('transferred', 0)}" + (f" ({reasons})" if reasons else ""))
    transfers = data.get("transfers") or {}
    if transfers.get("count"):
        results = ", ".join(f"{label} : {n}" for label, n in transfers["by_result"].items())
        lines.append(f"  pris par un conseiller : {transfers['answered']} sur {transfers['count']} ({results})")
    hung = ", ".join(f"{node} : {n}" for node, n in data["hung_up_by_node"].items())
    lines.append(f"Raccrochés en cours de route : {outcomes.get('hung_up', 0)}" + (f" ({hung})" if hung else ""))
    others = {k: v for k, v in outcomes.items() if k not in ("solved", "service", "transferred", "hung_up")}
    if others:
        lines.append("Autres : " + ", ".join(f"{outcome_label(k)} : {v}" for k, v in others.items()))
    incident = data.get("incident") or {}
    if incident.get("calls"):
        hung = incident["hung_up_after_announcement"]
        lines.append(f"Pendant une annonce d'incident : {calls_word(incident['calls'])}, dont {hung} "
                     f"{'raccroché' if hung <= 1 else 'raccrochés'} juste après l'annonce")
    rated = data.get("satisfaction") or {}
    if rated.get("answers"):
        spread = ", ".join(f"{n} : {count}" for n, count in rated["distribution"].items())
        notes = fill("{n:note}", {"n": str(rated["answers"])})
        lines.append(f"Satisfaction : {str(rated['mean']).replace('.', ',')} sur 5 ({notes} ; {spread})")
        for title, groups, name in (("par issue", rated["by_outcome"], lambda k: outcome_label(k or None)),
                                    ("par version du parcours", rated["by_version"], str), ("par expérience", rated["by_arm"], str)):
            if groups:
                lines.append(f"  {title} : " + " ; ".join(f"{name(key)} : {str(g['mean']).replace('.', ',')} sur 5 ({g['answers']})"
                                                          for key, g in groups.items()))
    lines.append("")
    lines.append("Entonnoir : " + " → ".join(f"étape {step} : {n}" for step, n in data["funnel"].items()))
    lines.append("")
    lines.append(f"{'étape du parcours':34} {'atteinte':>8} {'médiane':>8} {'silence':>8} {'touche':>8} {'répété':>8} {'abandon':>8}")
    for name, node in sorted(data["nodes"].items(), key=lambda item: -item[1]["reach"]):
        lines.append(f"{name:34} {node['reach']:>8} {node['median_time_s']:>6.0f} s {percent(node['silence_rate']):>8} "
                     f"{percent(node['invalid_rate']):>8} {percent(node['repeat_rate']):>8} {percent(node['drop_off_rate']):>8}")
    return "\n".join(lines) + "\n"
