"""Supervisor lint: matters of style in a flow that serves (warnings, never a refusal). What would
break a call is an error of `call.checks`, checked wherever an edit comes from."""

from __future__ import annotations

import re

from ..call.checks import unreadable
from ..call.flow import SKIP_KEY, Flow
from ..call.prompts import Prompts, check_text
from ..call.yamlfile import Problem

# A French TTS voice speaks about 14 characters a second (≈ 150 words a minute).
CHARS_PER_SECOND = 14.0
DEFAULT_MAX_SECONDS = 30.0
# Sentences the server itself speaks, not referenced by the flow.
_SERVER_PREFIXES = (
    "commun.", "saisie.", "transfert.", "conseiller.", "attente.", "horaires.ferme", "horaires.au_revoir",
    "sms.envoye", "sms.en_cours", "sms.deja_envoye", "sms.pas_mobile", "sms.indisponible", "sms.echec", "parole.", "incident.", "satisfaction.",
    "guide_visuel.", "sms.lien_general", "page.",
)
# fin.rappel is also said by the server when a caller leaves the queue to be called back.


def spoken_seconds(text: str) -> float:
    """Estimated time to speak `text` at a French speaking rate."""
    return len(text) / CHARS_PER_SECOND


def lint(flow: Flow, prompts: Prompts, max_seconds: float = DEFAULT_MAX_SECONDS) -> list[Problem]:
    """Every warning for a flow that loads."""
    findings: list[Problem] = []
    findings += _unused_prompts(flow, prompts)
    findings += _guide_links(flow, prompts)
    findings += _no_way_out(flow)
    findings += _keys_in_order(flow, prompts)
    findings += _short_forms(flow, prompts)
    for prompt in prompts.entries.values():
        long = too_long(prompt.key, prompt.text, max_seconds)
        if long:
            findings.append(_warning(prompts.source, prompt.line, long))
    return sorted(findings)


def too_long(key: str, text: str, max_seconds: float = DEFAULT_MAX_SECONDS, advice: str = "coupez en deux étapes ou raccourcissez") -> str | None:
    """Why `text` is too long to be heard out, or None."""
    seconds = spoken_seconds(text)
    if seconds <= max_seconds:
        return None
    return f"« {key} » dure environ {seconds:.0f} secondes à l'oral (plus de {max_seconds:.0f}) : un appelant décroche ; {advice}"


def check_change(load, key: str, text: str) -> list[Problem]:
    """Exactly what `ivr validate` says of the files with sentence `key` worded `text` (`load`
    gives the bundle and problems with such changes on top), kept to what concerns it."""
    candidate, problems = load({key: text})
    if candidate is not None:
        problems = [*problems, *lint(candidate.flow, candidate.prompts)]
    return [p for p in problems if p.severity == "error" or f"« {key} »" in p.message]


ANNOUNCEMENT_LEAD = "Information importante : "


def check_announcement(text: str, max_seconds: float = DEFAULT_MAX_SECONDS) -> list[Problem]:
    """An incident announcement is checked as a sentence is: refused if Twilio cannot read it or if
    it is too long to be heard out."""
    text = " ".join(text.split())
    where = "annonce"
    if not text:
        return [Problem(where, 0, "l'annonce est vide")]
    if "{" in text or "}" in text:
        return [Problem(where, 0, "« annonce » : pas d'accolades { } dans une annonce (elles ne sont pas lues)")]
    problems = [p for p in check_text(where, 0, "annonce", text) if p.severity == "error"]
    bad = unreadable(text)
    if bad:
        problems.append(Problem(where, 0, f"« annonce » contient des caractères que la voix ne sait pas lire ({bad})"))
    # Heard with « Information importante : » before it.
    long = too_long("annonce", ANNOUNCEMENT_LEAD + text, max_seconds, "raccourcissez-la")
    if long:
        problems.append(Problem(where, 0, long))
    return problems


def _warning(file: str, line: int, message: str) -> Problem:
    return Problem(file, line, message, "warning")


_LINK = re.compile(r"https://[\w.-]+\.[a-z]{2,}(/\S*)?")


def _guide_links(flow: Flow, prompts: Prompts) -> list[Problem]:
    # A guide sent by SMS must carry its link: {lien} (the call's visual guide), or an https address a phone can open.
    findings = []
    for key in sorted({node.guide.sms for node in flow.nodes.values() if node.guide}):
        prompt = prompts.entries.get(key)
        if prompt is not None and not _LINK.search(prompt.text) and "{lien}" not in prompt.text:
            findings.append(_warning(prompts.source, prompt.line,
                                     f"« {key} » : ce SMS n'a pas de lien https:// valide (écrivez {{lien}} : le guide visuel de l'appel)"))
    return findings


def _unused_prompts(flow: Flow, prompts: Prompts) -> list[Problem]:
    used = {key for node in flow.nodes.values() for key in (node.prompt, node.short, node.hold, node.guide and node.guide.sms, node.visual)
            if key}
    used |= {variant.say for variants in flow.variants.values() for variant in variants if variant.say}
    if flow.while_queued:
        used.add("etape6.transfert_file")
    return [
        _warning(prompts.source, prompt.line, f"la phrase « {prompt.key} » n'est utilisée par aucune étape")
        for prompt in prompts.entries.values()
        if prompt.key not in used and not prompt.key.startswith(_SERVER_PREFIXES)
    ]


_SKIP_SAID = re.compile(r"(?:pour passer(?: cette question)?|passer|ne savez pas|ne le savez pas|ne sais pas|ne le connaissez pas"
                        r"|sous la main)\s*[,:]\s*(?:tapez\s*)?"
                        r"(\d|dièse|étoile)\b", re.IGNORECASE)


_PASSED = {"ne sait pas", "non communiqué", "non fourni", "passé", "passée", "sans réponse"}


def _short_forms(flow: Flow, prompts: Prompts) -> list[Problem]:
    """A question whose long form is said otherwise in some case (a variant) and whose short form,
    said after a silence or a wrong key, still says what that variant took out: the two would
    contradict each other (« passer à la demande de rappel » then « passer au conseiller »)."""
    findings = []
    for node in flow.nodes.values():
        base, short = prompts.entries.get(node.prompt), prompts.entries.get(node.short or "")
        if base is None or short is None or flow.variants.get(short.key):
            continue
        for variant in flow.variants.get(node.prompt, ()):
            said = prompts.entries.get(variant.say or "")
            removed = _words(base.text) - _words(said.text if said else "")
            kept = sorted(removed & _words(short.text))
            if kept:
                findings.append(_warning(prompts.source, short.line,
                                         f"« {short.key} » (forme courte de « {base.key} ») dit encore « {', '.join(kept)} », que la variante "
                                         f"dite quand {', '.join(variant.when)} retire : donnez-lui la même variante"))
                break
    return findings


def _words(text: str) -> set[str]:
    return {word for word in re.findall(r"[\w'-]+", text.lower()) if len(word) >= 5}


def _keys_in_order(flow: Flow, prompts: Prompts) -> list[Problem]:
    """A caller learns the keys once: a question is passed with 9 everywhere (a number keyed in, with
    dièse alone), and a menu's choices are numbered 1, 2, 3… with no gap."""
    findings = []
    for node in flow.nodes.values():
        if node.type == "menu" or (node.type == "digits" and node.options):
            for key in (node.prompt, node.short):
                prompt = prompts.entries.get(key or "")
                for match in _SKIP_SAID.finditer(prompt.text if prompt else ""):
                    pressed = {"dièse": "#", "étoile": "*"}.get(match.group(1).lower(), match.group(1))
                    if pressed != SKIP_KEY:
                        findings.append(_warning(prompts.source, prompt.line,
                                                 f"« {prompt.key} » fait passer la question avec la touche {match.group(1)} : "
                                                 f"partout ailleurs c'est {SKIP_KEY} ; une seule touche pour passer, apprise une fois"))
        for key, choice in node.choices.items():  # the answer of a question passed, on another key than 9
            if key != SKIP_KEY and (choice.answer or "").lower() in _PASSED:
                findings.append(_warning(flow.source, node.line, f"étape « {node.name} » : la touche {key} passe la question "
                                                                 f"(« {choice.answer} ») : partout ailleurs c'est {SKIP_KEY}"))
        if node.type == "menu" or (node.type == "digits" and node.options):
            keys = node.choices if node.type == "menu" else node.options
            numbered = sorted(int(key) for key in keys if key.isdigit() and key not in (SKIP_KEY, node.guide.key if node.guide else ""))
            if numbered and numbered != list(range(1, len(numbered) + 1)):
                shown = ", ".join(map(str, numbered))
                findings.append(_warning(flow.source, node.line, f"étape « {node.name} » : les choix sont numérotés {shown} ; "
                                                                 f"numérotez-les 1, 2, 3… sans trou ({SKIP_KEY} reste la touche pour passer)"))
    return findings


def _no_way_out(flow: Flow) -> list[Problem]:
    # Nodes from which no end or transfer can be reached: only the 0 key would get the caller out.
    findings = [
        _warning(flow.source, flow.nodes[name].line, f"étape « {name} » : boucle sans issue, aucune fin ni aucun conseiller n'est atteignable")
        for name in sorted(set(flow.nodes) - _reaching(flow, {"end", "transfer"}))
    ]
    # In the part for when no agent can answer, a transfer is no way out: it leads back there.
    if flow.after_hours:
        ending = _reaching(flow, {"end"})
        for name in sorted(_reachable(flow, flow.after_hours) - ending):
            findings.append(_warning(flow.source, flow.nodes[name].line,
                                     f"étape « {name} » : quand aucun conseiller ne peut répondre (service fermé…), "
                                     "aucune fin n'est atteignable depuis cette étape : l'appelant tournerait en rond"))
    return findings


def _reaching(flow: Flow, kinds: set[str]) -> set[str]:
    """The nodes from which a node of one of these types can be reached."""
    reaches = {name for name, node in flow.nodes.items() if node.type in kinds}
    changed = True
    while changed:
        changed = False
        for name, node in flow.nodes.items():
            if name not in reaches and any(target in reaches for target in node.exits):
                reaches.add(name)
                changed = True
    return reaches


def _reachable(flow: Flow, start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        node = flow.nodes.get(todo.pop())
        for target in node.exits if node else ():
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen & set(flow.nodes)
