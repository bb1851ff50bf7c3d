"""The flow loader: reads a flow file and checks everything (links, keys, prompts, reachability,
loops) before a call can use it; every problem is reported with its file and line."""

from __future__ import annotations

import hashlib
import re
from dataclasses import fields
from pathlib import Path
from types import MappingProxyType

from . import yamlfile
from .flow import AGENT_KEY, CHOICE_KEYS, NODE_TYPES, REPEAT_KEY, SYSTEM_PROMPTS, Choice, Flow, FlowError, Guide, Node, Settings, Variant
from .flow_sections import SectionChecks
from .identifiers import CHECKS
from .prompts import Prompts
from .yamlfile import LineMap, Problem

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# Which fields each node type takes; the first group is required.
_FIELDS = {
    "say": ({"prompt", "next"}, {"step"}),
    "menu": ({"prompt", "choices"}, {"short", "field", "step", "say_caller", "guide", "speech", "silence", "outcome", "visual"}),
    "wait": ({"prompt", "choices"}, {"short", "hold", "field", "step", "guide", "speech", "visual"}),
    "digits": ({"prompt", "field", "next"}, {"check", "options", "optional", "short", "confirm", "step"}),
    "record": ({"prompt", "field", "next"}, {"max_length", "step", "if_empty"}),
    "end": ({"prompt", "outcome"}, {"step"}),
    "transfer": ({"prompt", "reason"}, {"step"}),
    "branch": ({"branches", "next"}, {"step"}),
    "rating": ({"prompt", "next"}, {"step", "outcome"}),
}
_SECTIONS = ("start", "nodes", "settings", "after_hours", "closed_prompts", "satisfaction", "inferences", "while_queued", "visual_guide",
             "variants", "facts")



def load(path: Path | str, prompts: Prompts, extra: bytes = b"") -> Flow:
    """The flow at `path`, or FlowError listing every problem."""
    flow, problems = parse(path, prompts, extra)
    if flow is None:
        raise FlowError([p for p in problems if p.severity == "error"])
    return flow


def parse(path: Path | str, prompts: Prompts, extra: bytes = b"", text: str | None = None,
          version: str | None = None, partial: bool = False) -> tuple[Flow | None, list[Problem]]:
    """Read (or take as `text`) and check a flow; return it (None when any error, unless `partial`:
    then what could be read of it, for further checks to find their problems too) and every problem.

    Its version is `version`, or a digest of the flow file, the prompt file and `extra` (the
    console's changes)."""
    path = Path(path)
    name = str(path)
    data, problems = yamlfile.load(path, text=text)
    if data is None:
        return None, problems or [Problem(name, 0, "le fichier est vide")]
    checker = Checker(name, prompts, problems)
    flow = checker.flow(data, version or _digest(path, Path(prompts.source), extra=extra))
    if any(p.severity == "error" for p in problems) and not partial:
        return None, sorted(problems)
    return flow, sorted(problems)


def _digest(*paths: Path, extra: bytes = b"") -> str:
    # One version for the flow and its sentences: a call keeps both for its whole length.
    digest = hashlib.sha256()
    for path in paths:
        try:
            digest.update(path.read_bytes())
        except OSError:
            pass
    digest.update(extra)
    return digest.hexdigest()[:12]


class Checker(SectionChecks):
    def __init__(self, name: str, prompts: Prompts, problems: list[Problem]):
        self.names: set[str] = set()
        self.broken_links = 0
        self.name = name
        self.prompts = prompts
        self.problems = problems

    def error(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.name, line, message))

    def flow(self, data: object, version: str) -> Flow | None:
        if not isinstance(data, LineMap):
            self.error(1, "le fichier doit contenir « start », « nodes » et éventuellement « settings »")
            return None
        for key in sorted(set(data) - set(_SECTIONS), key=str):
            self.error(data.line_of(key), f"rubrique inconnue « {key} » (possibles : {', '.join(_SECTIONS)})")
        settings = self.settings(data.get("settings"), data.line_of("settings"))
        raw_nodes = data.get("nodes")
        if not isinstance(raw_nodes, LineMap) or not raw_nodes:
            self.error(data.line_of("nodes"), "« nodes » doit lister les étapes de l'appel")
            return None
        self.names = {str(name) for name in raw_nodes}
        nodes = {}
        for node_name, raw in raw_nodes.items():
            node = self.node(str(node_name), raw, raw_nodes.line_of(node_name))
            if node is not None:
                nodes[node.name] = node
        start = data.get("start")
        if start not in raw_nodes:
            self.error(data.line_of("start"), f"« start » doit nommer une étape de « nodes » (trouvé : « {start} »)")
        after_hours = data.get("after_hours")
        if after_hours is not None:
            self.link(str(after_hours), data.line_of("after_hours"), "« after_hours »")
        if start in nodes and not self.broken_links:
            # With a broken link, most "unreachable" findings would only repeat it: fix links first.
            # A rating step is reached from Twilio after an agent too, even with ratings turned off.
            roots = [str(start), *([str(after_hours)] if after_hours else []), *(name for name, node in nodes.items() if node.type == "rating")]
            self.reachability(roots, nodes)
        self.say_loops(nodes)
        for key in SYSTEM_PROMPTS:
            if key not in self.prompts:
                message = f"la phrase « {key} » manque : le serveur vocal en a besoin"
                self.problems.append(Problem(self.prompts.source, 0, message))
        closed_prompts = self.closed_prompts(data) if "closed_prompts" in data else {}
        facts = self.facts(data) if "facts" in data else {}
        variants = self.variants(data, facts) if "variants" in data else {}
        for usual, instead in closed_prompts.items():  # the older form: said instead while closed
            variants[usual] = (*variants.get(usual, ()), Variant(("ferme",), instead))
        satisfaction = data.get("satisfaction")
        ratings_off = satisfaction is False
        if satisfaction is False or satisfaction is None:
            satisfaction = None
        elif not isinstance(satisfaction, str) or satisfaction not in nodes or nodes[satisfaction].type != "rating":
            self.error(data.line_of("satisfaction"),
                       "« satisfaction » nomme l'étape « rating » posée après un conseiller, ou vaut false (pas de notes)")
            satisfaction = None
        inferences = self.inferences(data, nodes) if "inferences" in data else ()
        while_queued, computer_code = self.while_queued(data, nodes) if "while_queued" in data else (None, ())
        visual_guide = self.visual_guide(data) if "visual_guide" in data else None
        if not nodes or start not in nodes:
            return None
        return Flow(str(start), MappingProxyType(nodes), settings, version, self.name, str(after_hours) if after_hours else None,
                    satisfaction, ratings_off, inferences, while_queued, MappingProxyType(closed_prompts), visual_guide,
                    MappingProxyType(variants), MappingProxyType(facts), computer_code)

    def settings(self, raw: object, line: int) -> Settings:
        if raw is None:
            return Settings()
        if not isinstance(raw, LineMap):
            self.error(line, "« settings » doit être une liste « réglage: valeur »")
            return Settings()
        known = {f.name for f in fields(Settings)}
        values = {}
        for key, value in raw.items():
            if key not in known:
                self.error(raw.line_of(key), f"réglage inconnu « {key} » (possibles : {', '.join(sorted(known))})")
            elif not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                self.error(raw.line_of(key), f"« {key} » doit être un nombre entier positif (trouvé : « {value} »)")
            else:
                values[key] = value
        return Settings(**values)

    def node(self, name: str, raw: object, line: int) -> Node | None:
        where = f"étape « {name} »"
        if not _NAME.match(name):
            self.error(line, f"{where} : le nom ne doit contenir que des minuscules sans accent, chiffres et _")
        if not isinstance(raw, LineMap):
            self.error(line, f"{where} : doit décrire type, prompt…")
            return None
        kind = raw.get("type")
        if kind not in NODE_TYPES:
            self.error(raw.line_of("type"), f"{where} : type « {kind} » inconnu (possibles : {', '.join(NODE_TYPES)})")
            return None
        required, optional = _FIELDS[kind]
        for key in sorted(required - set(raw)):
            self.error(raw.line, f"{where} ({kind}) : il manque « {key} »")
        for key in sorted(set(raw) - required - optional - {"type"}, key=str):
            allowed = ", ".join(sorted(required | optional))
            self.error(raw.line_of(key), f"{where} ({kind}) : « {key} » n'a pas de sens ici (possibles : {allowed})")
        for key in ("prompt", "short", "hold", "visual"):
            if key in raw:
                self.prompt_ref(raw.get(key), raw.line_of(key), where)
        values = {k: raw.get(k) for k in ("prompt", "short", "hold", "field", "next", "outcome", "reason", "silence", "if_empty", "visual")}
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                self.error(raw.line_of(key), f"{where} : « {key} » doit être un texte")
                values[key] = None
        step = raw.get("step")
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or not 1 <= step <= 6):
            self.error(raw.line_of("step"), f"{where} : « step » est le numéro d'étape du guide, de 1 à 6")
            step = None
        check = raw.get("check")
        if "check" in raw and check not in CHECKS:
            self.error(raw.line_of("check"), f"{where} : « check » doit être {', '.join(CHECKS)}")
        options = self.options(raw, where) if kind == "digits" else {}
        confirm = self.flag(raw, "confirm", not options, where)
        optional = self.flag(raw, "optional", False, where)
        max_length = raw.get("max_length", 60)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or not 5 <= max_length <= 300:
            self.error(raw.line_of("max_length"), f"{where} : « max_length » est une durée en secondes, de 5 à 300")
            max_length = 60
        choices = self.choices(raw.get("choices"), raw.line_of("choices"), where) if "choices" in raw else {}
        for key in ("next", "silence", "if_empty"):
            if isinstance(values[key], str):
                self.link(values[key], raw.line_of(key), where)
        branches = self.branches(raw, where) if kind == "branch" else {}
        return Node(
            name=name,
            type=kind,
            line=line,
            prompt=values["prompt"] or "",
            short=values["short"],
            hold=values["hold"],
            step=step,
            field=values["field"],
            choices=MappingProxyType(choices),
            next=values["next"],
            check=check,
            confirm=confirm,
            optional=optional,
            options=MappingProxyType(options),
            max_length=max_length,
            say_caller=self.flag(raw, "say_caller", False, where),
            guide=self.guide(raw, choices, where) if "guide" in raw else None,
            speech=MappingProxyType(self.speech(raw, choices, where)) if "speech" in raw else MappingProxyType({}),
            outcome=values["outcome"],
            reason=values["reason"],
            silence=values["silence"],
            if_empty=values["if_empty"],
            branches=MappingProxyType(branches),
            visual=values["visual"],
        )

    def branches(self, raw: LineMap, where: str) -> dict[str, str]:
        # {champ déjà répondu: étape où aller}, dans l'ordre ; sinon « next ».
        value = raw.get("branches")
        if not isinstance(value, LineMap) or not value:
            self.error(raw.line_of("branches"), f"{where} : « branches » associe un champ déjà répondu à une étape, ex. {{message_vocal: fin}}")
            return {}
        found = {}
        for field_name, target in value.items():
            if not isinstance(target, str):
                self.error(value.line_of(field_name), f"{where}, « {field_name} » : il faut le nom d'une étape")
                continue
            self.link(target, value.line_of(field_name), f"{where}, « {field_name} »")
            found[str(field_name)] = target
        return found

    def flag(self, raw: LineMap, key: str, default: bool, where: str) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            self.error(raw.line_of(key), f"{where} : « {key} » vaut true ou false")
            return default
        return value

    def options(self, raw: LineMap, where: str) -> dict[str, str]:
        # A digits node either checks a number ("check") or lets the caller pick several keys ("options").
        if ("check" in raw) == ("options" in raw):
            self.error(raw.line, f"{where} : une saisie a soit « check » (un numéro), soit « options » (plusieurs touches)")
            return {}
        options = raw.get("options")
        if "options" not in raw:
            return {}
        if not isinstance(options, LineMap) or not options:
            self.error(raw.line_of("options"), f"{where} : « options » associe des touches à des libellés")
            return {}
        found = {}
        for raw_key, label in options.items():
            key = str(raw_key)
            if len(key) != 1 or key not in "123456789":
                self.error(options.line_of(raw_key), f"{where} : « {key} » n'est pas une touche de 1 à 9")
            elif not isinstance(label, str) or not label.strip():
                self.error(options.line_of(raw_key), f"{where}, touche {key} : il faut un libellé")
            else:
                found[key] = label.strip()
        return found

    def speech(self, raw: LineMap, choices: dict, where: str) -> dict[str, tuple[str, ...]]:
        # Words a caller may say instead of pressing a key: {"1": [oui, ouais], "2": [non]}.
        value = raw.get("speech")
        if not isinstance(value, LineMap) or not value:
            self.error(raw.line_of("speech"), f"{where} : « speech » associe des touches à des mots, ex. {{\"1\": [oui], \"2\": [non]}}")
            return {}
        found = {}
        seen: dict[str, str] = {}
        for raw_key, words in value.items():
            key, line = str(raw_key), value.line_of(raw_key)
            if key not in choices:
                self.error(line, f"{where} : « speech » parle de la touche {key}, qui n'est pas un choix de cette étape")
                continue
            if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
                self.error(line, f"{where}, touche {key} : il faut une liste de mots, ex. [oui, ouais]")
                continue
            for word in words:
                if seen.setdefault(word.lower(), key) != key:
                    self.error(line, f"{where} : le mot « {word} » mène à deux touches ({seen[word.lower()]} et {key})")
            found[key] = tuple(word.strip() for word in words)
        return found

    def guide(self, raw: LineMap, choices: dict, where: str) -> Guide | None:
        value = raw.get("guide")
        line = raw.line_of("guide")
        if not isinstance(value, LineMap) or set(value) != {"key", "sms"}:
            self.error(line, f"{where} : « guide » s'écrit {{key: \"8\", sms: sms.cle_du_texte}}")
            return None
        key = str(value["key"])
        if len(key) != 1 or key not in CHOICE_KEYS or key in choices:
            self.error(line, f"{where} : la touche du guide ({key}) doit être une touche libre de 1 à 9 ou #")
            return None
        self.prompt_ref(value["sms"], line, where)
        return Guide(key, str(value["sms"]))

    def prompt_ref(self, key: object, line: int, where: str) -> None:
        if not isinstance(key, str) or key not in self.prompts:
            self.error(line, f"{where} : la phrase « {key} » n'existe pas dans {self.prompts.source}")

    def choices(self, raw: object, line: int, where: str) -> dict[str, Choice]:
        if not isinstance(raw, LineMap) or not raw:
            self.error(line, f"{where} : « choices » doit associer des touches à des étapes")
            return {}
        choices = {}
        for raw_key, target in raw.items():
            key = str(raw_key)
            key_line = raw.line_of(raw_key)
            if key in (REPEAT_KEY, AGENT_KEY):
                self.error(key_line, f"{where} : la touche {key} est réservée (étoile : réécouter, 0 : conseiller)")
                continue
            if len(key) != 1 or key not in CHOICE_KEYS:
                self.error(key_line, f"{where} : « {key} » n'est pas une touche du clavier (1 à 9 ou #)")
                continue
            answer = None
            if isinstance(target, LineMap):
                for extra in sorted(set(target) - {"goto", "answer"}, key=str):
                    self.error(target.line_of(extra), f"{where}, touche {key} : « {extra} » inconnu (possibles : goto, answer)")
                answer = target.get("answer")
                if answer is not None:
                    answer = str(answer)
                target = target.get("goto")
            if not isinstance(target, str):
                self.error(key_line, f"{where}, touche {key} : il faut dire vers quelle étape aller (goto)")
                continue
            self.link(target, key_line, f"{where}, touche {key}")
            choices[key] = Choice(key, target, answer)
        return choices

    def link(self, target: str, line: int, where: str) -> None:
        if target not in self.names:
            self.broken_links += 1
            self.error(line, f"{where} : renvoie vers « {target} », qui n'existe pas")

    def say_loops(self, nodes: dict[str, Node]) -> None:
        # Messages and branches that lead back to themselves would talk forever without listening.
        silent = {name for name, node in nodes.items() if node.type in ("say", "branch")}
        for name in sorted(silent):
            todo, seen = [name], set()
            while todo and name not in seen:
                for target in nodes[todo.pop()].exits:
                    if target in silent and target not in seen:
                        seen.add(target)
                        todo.append(target)
            if name in seen:
                self.error(nodes[name].line, f"étape « {name} » : une suite de messages revient sur elle-même sans jamais attendre de touche")

    def reachability(self, roots: list[str], nodes: dict[str, Node]) -> None:
        start = roots[0]
        seen = set(roots)
        todo = list(roots)
        while todo:
            for target in nodes[todo.pop()].exits:
                if target in nodes and target not in seen:
                    seen.add(target)
                    todo.append(target)
        for node in nodes.values():
            if node.name not in seen:
                self.error(node.line, f"étape « {node.name} » : aucun chemin n'y mène depuis « {start} »")
