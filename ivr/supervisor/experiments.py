"""The figures of a sentence experiment, arm by arm, and a plain French verdict."""

from __future__ import annotations

import json
import statistics

from .. import french
from ..call.flow import Flow
from ..call.prompts import fill
from ..storage.db import Database
from ..storage.experiments import PUBLISHED
from . import analytics, stats

# What is compared: the share of calls solved without an agent (the more the better), and at the
# questions that say the sentence, the share of arrivals with a hang-up, a silence, a wrong key, a repeat.
_NODE_MEASURES = (("dropped", "l'abandon", "reach"), ("silence", "les silences", "visits"), ("invalid", "les mauvaises touches", "visits"),
                  ("repeat", "les réécoutes", "visits"))


def figures(db: Database, experiment: dict, flow: Flow) -> dict:
    key = experiment["key"]
    end = experiment["stopped_at"] or float("inf")
    rows = db.query("SELECT * FROM calls WHERE started_at >= ? AND simulated = 0 AND arms IS NOT NULL ORDER BY started_at",
                    (experiment["started_at"],))
    calls = {"A": [], "B": []}
    for row in rows:
        arm = json.loads(row["arms"]).get(key)
        if arm in calls and row["started_at"] < end:
            calls[arm].append(row)
    sids = {row["call_sid"]: arm for arm, rows in calls.items() for row in rows}
    events = [e for e in db.query("SELECT e.call_sid, e.at, e.node, e.step, e.event FROM events e JOIN calls c ON c.call_sid = e.call_sid "
                                  "WHERE c.started_at >= ? AND c.simulated = 0 ORDER BY e.call_sid, e.at, e.id", (experiment["started_at"],))
              if e["call_sid"] in sids]
    nodes = [name for name, node in flow.nodes.items() if key in (node.prompt, node.short, node.hold)]
    arms = {}
    for arm, rows in calls.items():
        contained = sum(row["outcome"] in ("solved", "service") for row in rows)
        at_nodes = analytics.node_figures([e for e in events if sids[e["call_sid"]] == arm], rows)
        arms[arm] = {"calls": len(rows), "contained": contained, "containment_rate": contained / len(rows) if rows else None,
                     "nodes": {name: at_nodes[name] for name in nodes if name in at_nodes}}
    comparisons = [_compare("containment", "la résolution sans conseiller", True, arms["A"]["contained"], arms["A"]["calls"],
                            arms["B"]["contained"], arms["B"]["calls"], experiment["share"], "appel")]
    for name in nodes:
        a, b = arms["A"]["nodes"].get(name), arms["B"]["nodes"].get(name)
        comparisons.append(_compare(f"{name}.reach", f"la part des appels qui arrivent à l'étape « {name} »", True,
                                    a["reach"] if a else 0, arms["A"]["calls"], b["reach"] if b else 0, arms["B"]["calls"],
                                    experiment["share"], "appel"))
        if a is None or b is None:
            continue
        comparisons.append(_time(name, a["times"], b["times"]))
        for measure, label, base in _NODE_MEASURES:
            comparisons.append(_compare(f"{name}.{measure}", f"{label} à l'étape « {name} »", False, a["counts"][measure], a[base],
                                        b["counts"][measure], b[base], experiment["share"], "passage à cette étape/passages à cette étape"))
    return {"experiment": experiment, "nodes": nodes, "arms": arms, "comparisons": comparisons, "verdict": comparisons[0]["verdict"]}


def _time(name: str, times_a: list[float], times_b: list[float]) -> dict:
    label = f"le temps passé à l'étape « {name} » (médiane)"
    blank = {"measure": f"{name}.time", "label": label, "a": None, "b": None, "difference": None, "low": None, "high": None}
    found = stats.median_difference(times_a, times_b) if min(len(times_a), len(times_b)) >= stats.ENOUGH else None
    if found is None:
        return {**blank, "verdict": f"pas encore assez de données : il en faut au moins {stats.ENOUGH} dans chaque version "
                                    f"(A : {len(times_a)}, B : {len(times_b)})"}
    value, low, high = found
    gap = f"écart de {_seconds(value)}, intervalle à 95 % de {_seconds(low)} à {_seconds(high)}"
    if low > 0 or high < 0:
        verdict = f"{'B prend plus de temps que A' if value > 0 else 'B prend moins de temps que A'} ({gap})"
    else:
        verdict = f"pas de différence nette ({gap})"
    return {**blank, "a": statistics.median(times_a), "b": statistics.median(times_b), "difference": value, "low": low, "high": high,
            "verdict": verdict}


def _seconds(value: float) -> str:
    return ("+" if value >= 0 else "−") + french.number(abs(value), 1) + " s"


def _compare(name: str, label: str, higher_is_better: bool, hits_a: int, n_a: int, hits_b: int, n_b: int, share: int, unit: str) -> dict:
    found = stats.difference(hits_a, n_a, hits_b, n_b)
    blank = {"measure": name, "label": label, "a": None, "b": None, "difference": None, "low": None, "high": None}
    if found is None or min(n_a, n_b) < stats.ENOUGH:
        return {**blank, "verdict": f"pas encore assez de données : il en faut au moins {stats.ENOUGH} dans chaque version "
                                    f"(A : {n_a}, B : {n_b})"}
    gap = f"écart de {stats.points(found.value)}, intervalle à 95 % de {stats.points(found.low)} à {stats.points(found.high)}"
    if found.clear:
        b_better = (found.value > 0) == higher_is_better
        verdict = f"{'B fait mieux que A' if b_better else 'A fait mieux que B'} ({gap})"
    elif found.negligible:
        verdict = f"pas de différence qui compte : les deux formulations se valent ({gap})"
    else:
        more = stats.calls_needed(found, n_a, n_b, share / 100)
        verdict = f"pas encore de différence nette ({gap}) : il faudrait environ {fill('{n:' + unit + '}', {'n': french.about(more)})} de plus"
    return {**blank, "a": found.a, "b": found.b, "difference": found.value, "low": found.low, "high": found.high, "verdict": verdict}


# ---- what the console and the commands both say about experiments ---------------------------------
def refusal(bundle, key: str, text_b: str) -> str | None:
    """Why an experiment on `key` with wording `text_b` makes no sense, or None."""
    if text_b == bundle.prompts.entries[key].text:
        return "la formulation B est la même que l'actuelle (A)"
    if not any(key in (node.prompt, node.short, node.hold) for node in bundle.flow.nodes.values()):
        return f"« {key} » n'est dite à aucune étape du parcours : une expérience n'y mesurerait rien"
    return None


def locked(experiment: dict) -> str:
    """Why sentence A cannot simply be published while its experiment runs, and the two ways out."""
    key = experiment["key"]
    return (f"une expérience (n° {experiment['id']}) est en cours sur « {key} » : publier une autre formulation de A maintenant "
            "fausserait la comparaison. Deux issues : arrêter l'expérience en gardant A ou B "
            f"(« ivr experiment stop {key} --keep A|B », ou les boutons de l'expérience), ou publier quand même, "
            "ce qui arrête l'expérience (ses chiffres jusqu'ici restent consultables)")


def a_changed(experiment: dict, text_a: str | None) -> str | None:
    """What to say when the wording A callers hear is no longer the one the experiment started
    with (edited in the file during the test), or None."""
    if experiment.get("stopped_at") is not None or not experiment.get("text_a") or text_a is None or text_a == experiment["text_a"]:
        return None
    return (f"la phrase A de l'expérience n° {experiment['id']} sur « {experiment['key']} » a changé depuis son début "
            f"(« {experiment['text_a']} » → « {text_a} ») : la comparaison n'est plus valable ; arrêtez-la "
            f"(« ivr experiment stop {experiment['key']} --keep A|B ») ou remettez le texte de départ")


def kept_label(experiment: dict) -> str:
    """« A », « B », or what ended it: a new wording published."""
    kept = experiment.get("kept")
    return "aucune, une nouvelle formulation a été publiée" if kept == PUBLISHED else str(kept)


def report(data: dict, text_a: str) -> str:
    """The experiment's figures and verdict as text (`ivr experiment show`)."""
    from .analytics import calls_word, percent

    found = data["experiment"]
    state = "en cours" if found["stopped_at"] is None else f"arrêtée le {french.moment(found['stopped_at'])}, gardée : {kept_label(found)}"
    lines = [f"Expérience n° {found['id']} sur « {found['key']} » ({state}), "
             f"{found['share']} % des appels en B depuis le {french.moment(found['started_at'])}",
             f"  A : « {text_a} »", f"  B : « {found['text_b']} »", ""]
    changed = a_changed(found, text_a)
    if changed:
        lines[-1:-1] = [f"  Attention : {changed}."]
    for arm in ("A", "B"):
        figures = data["arms"][arm]
        lines.append(f"{arm} : {calls_word(figures['calls'])}, résolution sans conseiller {percent(figures['containment_rate'])}")
        for name, node in figures["nodes"].items():
            lines.append(f"    {name} : atteinte {node['reach']}, médiane {node['median_time_s']:.0f} s, silence {percent(node['silence_rate'])}, "
                         f"touche {percent(node['invalid_rate'])}, répété {percent(node['repeat_rate'])}, abandon {percent(node['drop_off_rate'])}")
    lines.append("")
    lines.append(f"Verdict, sur la résolution sans conseiller : {data['verdict']}.")
    for comparison in data["comparisons"][1:]:
        lines.append(f"  Sur {comparison['label']} : {comparison['verdict']}.")
    return "\n".join(lines)
