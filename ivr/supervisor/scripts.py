"""The script book: what a caller hears on each main path and in each situation (open or closed,
SMS or not, a mobile or a landline, a queue or a direct line), as a supervisor reads a call-centre
script; and what it says twice (a sentence heard again on one path that the caller did not ask for).

The calls are played by `cli/parcours.py` over the real, signed webhooks of an app built for each
situation; this module says which calls, and writes what they heard."""

from __future__ import annotations

import re
from dataclasses import dataclass

RPPS = "10012345673"
IDENTIFIER = ["1", RPPS, "1", ".", "1", "1"]  # RPPS, read back and confirmed, no card, reproducible, happening now
REST = ["1", "2", "15", "1", "#", "1", "11", "2", "2"]  # phone, Android 15, Chrome only, Windows 11, no LPS, no message
MAIN = ["2", "2", "2", "1", "2", "1", "1", "1", "2", *IDENTIFIER]  # up to date, no Android browser: steps 3, 4, 5, then 6
ANDROID = ["2", "1", "1", "1", "1", "1", "1", "2", "2", "1", "2", "1", "1", "1", "2", *IDENTIFIER]
MOBILE, LANDLINE = "+33612345678", "+33140000000"


@dataclass(frozen=True)
class Situation:
    """What is true for the call: the service open or closed, SMS configured, the caller's phone, how
    an agent is reached."""

    name: str
    open: bool = True
    sms: bool = True
    caller: str = MOBILE
    queue: bool = True  # a queue (TaskRouter); else a direct line (a number)


@dataclass(frozen=True)
class Script:
    """One call to play: in a situation, the keys the caller presses."""

    title: str
    situation: Situation
    keys: tuple[str, ...]


DAY = Situation("en journée, SMS configurés, un portable, une file d'attente")
NIGHT = Situation("la nuit (service fermé)", open=False)
NIGHT_LANDLINE_NO_SMS = Situation("la nuit, d'un fixe, SMS non configurés", open=False, sms=False, caller=LANDLINE)
NO_SMS = Situation("en journée, SMS non configurés", sms=False)
LANDLINE_DAY = Situation("en journée, d'un fixe", caller=LANDLINE)
DIRECT = Situation("en journée, un conseiller joint directement (sans file)", queue=False)

SCRIPTS = (
    Script("Le parcours principal jusqu'au conseiller (étapes 1, 3, 4, 5, 6)", DAY, (*MAIN, *REST)),
    Script("Le parcours Android (étapes 1 à 6)", DAY, (*ANDROID, "1", "#", "1", "11", "2", "2")),
    Script("0 dès la première question", DAY, ("0",)),
    Script("Résolu à l'étape 1 (mise à jour)", DAY, ("1", "1", "1", "5")),
    Script("« Bravo » à l'étape 3", DAY, ("2", "2", "1", "1", "5")),
    Script("Le parcours principal, sans SMS", NO_SMS, (*MAIN, *REST)),
    Script("Le parcours principal, d'un fixe", LANDLINE_DAY, (*MAIN, *REST)),
    Script("Le parcours principal, conseiller en ligne directe", DIRECT, (*MAIN, *REST)),
    Script("La nuit : le parcours principal, puis un message et un rappel", NIGHT, (*MAIN, *REST[:-1], "1", "rec", "1", "1")),
    Script("La nuit : 0 dès la première question, puis un rappel", NIGHT, ("0", "1", "1")),
    Script("La nuit, d'un fixe, sans SMS : le parcours principal", NIGHT_LANDLINE_NO_SMS, (*MAIN, *REST[:-1], "2", "1", "1")),
)


@dataclass(frozen=True)
class Heard:
    """What one script's call heard: each question (its step) with what was said before it, and the end."""

    script: Script
    turns: tuple[tuple[str, tuple[str, ...]], ...]  # (node, sentences) in order; node "" for the end
    end: str

    def sentences(self) -> list[str]:
        return [text for _, said in self.turns for text in said]

    def said_twice(self) -> list[str]:
        """What is heard again on this path without the caller asking (a repeat, or a wrong key or a
        silence that has the question asked again, is the caller's doing): a whole sentence, or a
        part of one that states something (« un conseiller va vous répondre » in two sentences)."""
        seen: set[str] = set()
        twice: list[str] = []
        previous_node = None
        for node, said in self.turns:
            again = node == previous_node  # the same question again: asked by the caller
            for text in said:
                for part in (text, *_statements(text)):
                    if part in seen and not again and part not in twice:
                        twice.append(part)
                    seen.add(part)
            previous_node = node
        return twice


_CLAUSE = re.compile(r"([^.;:?!,]+)([.;:?!,]|$)")
_KEYS = re.compile(r"\b(tapez|touche|dièse|étoile)\b", re.IGNORECASE)


def _statements(text: str) -> list[str]:
    """The parts of a sentence that state a fact (« un conseiller va vous répondre », « le service
    client est fermé »), as compared: four words or more, lower case, without a leading « merci »; a
    question, a condition (« si … »), an instruction (« essayez … ») or a key to press are not facts
    (the same question at two steps is two questions)."""
    parts = []
    for clause, end in _CLAUSE.findall(text):
        words = clause.strip().lower().split()
        while words and words[0] in ("merci", "et", "puis", "sinon", "ensuite"):
            words = words[1:]
        if (len(words) < 4 or end == "?" or _KEYS.search(clause) or words[0] in ("si", "s'il", "pour", "quand")
                or words[0].endswith("ez")):
            continue
        parts.append(" ".join(words))
    return parts


def render(heard: list[Heard]) -> str:
    """The script book as Markdown (docs/parcours-entendus.md)."""
    lines = ["# Ce que l'appelant entend", "",
             "Généré par `ivr parcours` depuis `flows/ecps.yaml` et `prompts/fr-FR.yaml` (ne pas modifier à la main :",
             "un test vérifie que ce fichier est à jour ; une modification de phrase s'y voit en relecture).",
             "Chaque appel est joué par les vrais webhooks signés ; « [étape] » : la question à laquelle l'appelant répond ensuite.", ""]
    for item in heard:
        script = item.script
        lines += [f"## {script.title}", "", f"*Situation : {script.situation.name}. Touches : {' '.join(script.keys)}.*", ""]
        for node, said in item.turns:
            if said:
                lines.append(f"- **{node or 'fin'}**" if node else "- **fin**")
                lines += [f"  - {text}" for text in said]
        lines.append(f"- Fin : {item.end}")
        twice = item.said_twice()
        lines += ["", f"Redit sans que l'appelant le demande : {'; '.join(f'« {t} »' for t in twice)}." if twice else
                  "Rien n'est dit deux fois.", ""]
    return "\n".join(lines).rstrip() + "\n"
