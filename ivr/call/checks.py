"""What would break a call in a flow and its sentences that both load: errors, checked wherever an
edit comes from (the file reloaded by the server, the console, an experiment's wording, `ivr
validate`), so that the last good version keeps serving exactly as for a YAML error.

- a key a sentence announces (« tapez 3 ») that its step does not take, or a key the step takes that
  its sentence never announces: the caller presses it and hears « La touche 3 ne correspond à aucun
  choix », or never learns it exists;
- a value a sentence is there to say, removed (« Vous avez tapé votre numéro » without {chiffres});
- a value the server does not fill in that sentence ({quand} in step 1's question is read « quand »);
- characters the voice cannot read (emoji, control characters).

Style (a sentence too long, a sentence no step uses, an SMS without a link) is for `supervisor.lint`:
warnings, which never keep an edit from serving."""

from __future__ import annotations

import re
import unicodedata

from .flow import AGENT_KEY, REPEAT_KEY, SKIP_KEY, Flow, Node
from .prompts import PLACEHOLDERS, Prompts
from .yamlfile import Problem

_ANNOUNCED = re.compile(r"\btapez\s+(\d|étoile|dièse)\b", re.IGNORECASE)
_KEY_WORDS = {"étoile": "*", "dièse": "#"}
GLOBAL_KEYS = {AGENT_KEY, REPEAT_KEY}  # taken at every question: any sentence may announce them
_FIELD = re.compile(r"\{(\w+)(?::[^{}]*)?\}")

# The values the server fills into the sentences it says itself, and among them those the sentence
# exists to say (without it, it would say nothing true: « Vous avez tapé votre numéro »).
FILLED = {
    "commun.touche_invalide": {"touche"},
    "saisie.relecture": {"chiffres"},
    "saisie.relecture_courte": {"chiffres"},
    "saisie.longueur": {"attendu", "compte"},
    "saisie.autre_option": {"choix"},
    "parole.confirmation": {"mot"},
    "attente.position": {"position"},
    "attente.estimation": {"minutes"},
    "incident.annonce": {"annonce"},
    "horaires.ferme": {"quand"},
    "attente.code_ordinateur": {"adresse", "code"},
    "attente.code_ordinateur_rappel": {"adresse", "code"},
    "page.ordinateur_trop": {"minutes"},
}
# All of them but {compte} in « Il faut {attendu} chiffres, vous en avez tapé {compte} ».
REQUIRED = {**FILLED, "saisie.longueur": {"attendu"}}
EVERYWHERE = {"jours"}  # how long calls are kept: filled in every sentence
VISUAL_PREFIXES = ("visuel.", "page.")  # shown on the caller's phone, with {quand} when closed


def announced_keys(text: str) -> set[str]:
    """Keys a sentence tells the caller to press (« tapez 1 », « tapez étoile »)."""
    return {_KEY_WORDS.get(match.lower(), match) for match in _ANNOUNCED.findall(text)}


def breaking(flow: Flow, prompts: Prompts) -> list[Problem]:
    """Every problem of a loadable flow and its sentences that a caller would hear: errors."""
    found: list[Problem] = []
    for node in flow.nodes.values():
        found += _announcements(flow, prompts, node)
    found += _values(flow, prompts)
    for prompt in prompts.entries.values():
        bad = unreadable(prompt.text)
        if bad:
            found.append(Problem(prompts.source, prompt.line, f"« {prompt.key} » contient des caractères que la voix ne sait pas lire ({bad})"))
    return found


def unreadable(text: str) -> str:
    """The characters of `text` the voice cannot read (emoji, control and invisible characters), as
    « U+1F600, U+200B »; empty when there are none."""
    bad = sorted({c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs") or ord(c) > 0xFFFF})
    return ", ".join(f"U+{ord(c):04X}" for c in bad)


def accepted_keys(node: Node) -> set[str] | None:
    """The keys a step takes (None: a step that takes no key of its own)."""
    if node.type in ("menu", "wait"):
        return set(node.choices) | ({node.guide.key} if node.guide else set())
    if node.type == "digits" and node.options:  # 9 passes an optional one; else dièse alone does
        return set(node.options) | ({SKIP_KEY} if node.optional and SKIP_KEY not in node.options else {"#"})
    return None


def _announcements(flow: Flow, prompts: Prompts, node: Node) -> list[Problem]:
    accepted = accepted_keys(node)
    if accepted is None:
        return []
    found = []
    full = prompts.entries.get(node.prompt)
    if full is not None:
        for key in sorted(accepted - announced_keys(full.text)):
            found.append(Problem(prompts.source, full.line,
                                 f"« {full.key} » n'annonce pas la touche {key}, que l'étape « {node.name} » ({flow.source}:{node.line}) "
                                 f"accepte : l'appelant ne saurait pas qu'elle existe ; ajoutez « tapez {_said(key)} … » à la phrase"))
    for variant in flow.variants.get(node.prompt, ()):  # said instead of the step's sentence: it announces the keys as well
        said = prompts.entries.get(variant.say or "")
        if said is None:
            continue
        # A guide by SMS is not offered where it cannot arrive.
        excused = {node.guide.key} if node.guide and {"sans_sms", "fixe"} & set(variant.when) else set()
        for key in sorted(accepted - announced_keys(said.text) - excused):
            found.append(Problem(prompts.source, said.line,
                                 f"« {said.key} » (dite à la place de « {node.prompt} » quand {', '.join(variant.when)}) n'annonce pas la "
                                 f"touche {key}, que l'étape « {node.name} » ({flow.source}:{node.line}) accepte ; ajoutez « tapez {_said(key)} … »"))
    shown = [node.prompt, node.short, node.hold, *(v.say for key in (node.prompt, node.short, node.hold) for v in flow.variants.get(key or "", ()))]
    for key_name in shown:
        prompt = prompts.entries.get(key_name or "")
        if prompt is None:
            continue
        for key in sorted(announced_keys(prompt.text) - accepted - GLOBAL_KEYS):
            found.append(Problem(prompts.source, prompt.line,
                                 f"« {prompt.key} » annonce la touche {key}, que l'étape « {node.name} » ({flow.source}:{node.line}) n'accepte pas : "
                                 f"l'appelant entendrait « La touche {_said(key)} ne correspond à aucun choix » ; "
                                 f"touches possibles : {', '.join(_said(k) for k in sorted(accepted))}"))
    return found


def _said(key: str) -> str:
    return {"*": "étoile", "#": "dièse"}.get(key, key)


def allowed_values(flow: Flow) -> dict[str, set[str]]:
    """The values the server fills into each sentence (beyond {jours}, filled everywhere)."""
    allowed = {key: set(values) for key, values in FILLED.items()}
    for usual, variants in flow.variants.items():  # a variant is filled as the sentence it replaces, with {quand} while closed
        for variant in variants:
            if variant.say:
                allowed.setdefault(variant.say, set()).update(allowed.get(usual, set()) | ({"quand"} if "ferme" in variant.when else set()))
    for node in flow.nodes.values():
        if node.say_caller:
            for key in (node.prompt, node.short):
                if key:
                    allowed.setdefault(key, set()).add("numero")
        if node.guide:
            allowed.setdefault(node.guide.sms, set()).add("lien")
        if node.visual:
            allowed.setdefault(node.visual, set()).add("quand")
    return allowed


def _values(flow: Flow, prompts: Prompts) -> list[Problem]:
    allowed = allowed_values(flow)
    found = []
    for prompt in prompts.entries.values():
        used = set(_FIELD.findall(prompt.text))
        here = allowed.get(prompt.key, set()) | EVERYWHERE | ({"quand"} if prompt.key.startswith(VISUAL_PREFIXES) else set())
        for value in sorted((used & PLACEHOLDERS) - here):
            found.append(Problem(prompts.source, prompt.line,
                                 f"« {prompt.key} » : {{{value}}} n'est pas rempli dans cette phrase (l'appelant entendrait « {value} ») ; "
                                 + (f"valeurs possibles ici : {', '.join('{' + v + '}' for v in sorted(here))}" if here else "retirez-le")))
        for value in sorted(REQUIRED.get(prompt.key, set()) - used):
            found.append(Problem(prompts.source, prompt.line,
                                 f"« {prompt.key} » doit contenir {{{value}}} : c'est ce que cette phrase est là pour dire "
                                 f"(sans lui, l'appelant entendrait une phrase vide de sens)"))
    return found
