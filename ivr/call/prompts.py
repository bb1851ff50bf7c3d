"""Prompt catalogue: key → French sentence (and optional recorded audio), loaded from YAML."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from . import yamlfile
from .yamlfile import Problem

# Twilio refuses a <Say> body longer than this many characters.
SAY_MAX_CHARS = 4096
# The only values the server fills into a sentence.
PLACEHOLDERS = frozenset({"touche", "chiffres", "attendu", "compte", "position", "quand", "numero", "minutes", "mot", "jours", "choix",
                          "annonce", "lien", "adresse", "code"})
# Those that are numbers: a noun after one agrees with it, written {minutes:minute} (« 1 minute »,
# « 5 minutes ») or {n:singulier/pluriel} when the plural is not the singular with an s.
NUMBERS = frozenset({"compte", "attendu", "position", "minutes", "jours"})
_AGREEMENT = re.compile(r"^[^\W\d_][\w'’-]*(/[^\W\d_][\w'’-]*)?$")
_NOUN_AFTER_NUMBER = re.compile(r"\{(" + "|".join(sorted(NUMBERS)) + r")\}\s+([^\W\d_]+s)\b")
_NOT_PLURALS = frozenset({"dans", "plus", "moins", "sous", "vers", "après", "depuis", "puis", "mais", "pas", "sans", "très", "fois", "alors"})
# The section of the prompt file that says how words are to be pronounced, not a sentence.
PRONUNCIATION = "prononciation"
_AUDIO_URL = re.compile(r"^https://\S+$")


@dataclass(frozen=True)
class Prompt:
    """One sentence a caller hears."""

    key: str
    text: str
    line: int
    audio: str | None = None


@dataclass(frozen=True)
class Prompts:
    """All sentences of one language, by key."""

    language: str
    source: str
    entries: Mapping[str, Prompt]
    # Written word → how the voice should say it (« e-CPS » → « é C P S »), from the file's
    # « prononciation » section: applied to what is spoken, not to what is shown or sent by SMS.
    sounds: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def text(self, key: str, params: Mapping[str, str] | None = None) -> str:
        """The sentence for `key` with its placeholders filled."""
        return fill(self.entries[key].text, params)

    def with_texts(self, texts: Mapping[str, str]) -> Prompts:
        """The catalogue with some sentences worded otherwise (a call's experiment arms)."""
        if not texts:
            return self
        entries = dict(self.entries)
        for key, text in texts.items():
            if key in entries:
                entries[key] = Prompt(key, text, entries[key].line)
        return Prompts(self.language, self.source, MappingProxyType(entries), self.sounds)


def edited_in_file(replaced: str | None, now: str | None, console: str) -> bool:
    """Whether the file's wording of a sentence the console changed was edited since (`replaced`:
    the file's wording the console's change replaced; `now`: the file's wording today): callers do
    not hear that edit. One rule for the server's warning and the supervisors' tools."""
    return now is not None and replaced is not None and now != replaced and now != console


def fill(text: str, params: Mapping[str, str] | None) -> str:
    """`text` with its {placeholders} filled from `params` (an unknown one is left as written) and
    the nouns after numbers agreeing with them."""
    if "{" not in text:
        return text
    return _Filler().vformat(text, (), _Missing(params or {}))


def pronounce(text: str, sounds: Mapping[str, str]) -> str:
    """`text` with each written word replaced by how it is said (for a voice that reads plain text:
    espeak-ng's previews)."""
    return "".join(alias or part for part, alias in pronounced_parts(text, sounds))


def pronounced_parts(text: str, sounds: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """`text` cut into what is read as written (alias None) and the words of the « prononciation »
    section with how to say them: the TwiML writes these as SSML <sub alias="é-C-P-S">e-CPS</sub>
    (Amazon Polly's neural voices read <sub>), so the text a supervisor or an agent reads keeps the
    written word."""
    if not sounds:
        return [(text, None)]
    pattern = re.compile("|".join(rf"(?<![\w-]){re.escape(word)}(?![\w-])" for word in sorted(sounds, key=len, reverse=True)))
    parts, at = [], 0
    for match in pattern.finditer(text):
        if match.start() > at:
            parts.append((text[at:match.start()], None))
        parts.append((match.group(), sounds[match.group()]))
        at = match.end()
    if at < len(text):
        parts.append((text[at:], None))
    return parts


class _Filler(string.Formatter):
    def format_field(self, value: object, format_spec: str) -> str:
        if not format_spec:
            return str(value)
        singular, _, plural = format_spec.partition("/")
        number = str(value)
        return f"{number} {singular if number in ('0', '1') else plural or singular + 's'}"


class _Missing(dict):
    """Leave an unknown {placeholder} as written rather than fail mid-call."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class PromptsError(Exception):
    """The prompt file cannot be used; `problems` says where and why."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def path_for(directory: Path | str, language: str = "fr-FR") -> Path:
    """Where the prompts of `language` live."""
    return Path(directory) / f"{language}.yaml"


def parse(directory: Path | str, language: str = "fr-FR", overrides: Mapping[str, str] | None = None,
          text: str | None = None) -> tuple[Prompts | None, list[Problem]]:
    """Read (or take as `text`) and check the prompt file, with the console's `overrides` on top;
    return the catalogue (None on errors) and every problem."""
    catalogue, problems = parse_all(directory, language, overrides, text)
    if catalogue is None or any(p.severity == "error" for p in problems):
        return None, problems
    return catalogue, problems


def parse_all(directory: Path | str, language: str = "fr-FR", overrides: Mapping[str, str] | None = None,
              text: str | None = None) -> tuple[Prompts | None, list[Problem]]:
    """Like `parse`, but the catalogue of the sentences that could be read even when others have
    errors (None only if the file cannot be read at all): the flow is checked against it, so that
    one run lists every problem of every file."""
    path = path_for(directory, language)
    data, problems = yamlfile.load(path, text=text)
    name = str(path)
    if data is None:
        return None, problems or [Problem(name, 0, "le fichier est vide")]
    if not isinstance(data, yamlfile.LineMap):
        return None, [*problems, Problem(name, 1, "le fichier doit être une liste « clé: phrase »")]
    entries: dict[str, Prompt] = {}
    sounds = _sounds(data.get(PRONUNCIATION), data, name, problems) if PRONUNCIATION in data else {}
    _flatten(data, "", name, entries, problems)
    for key, text in (overrides or {}).items():
        base = entries.get(key)
        where = f"{name} (modifié dans la console)"
        if base is None:
            problems.append(Problem(where, 0, f"« {key} » n'existe plus dans le fichier : la modification est ignorée", "warning"))
            continue
        text = " ".join(text.split())
        if not text:
            problems.append(Problem(where, base.line, f"« {key} » : la phrase est vide"))
            continue
        problems.extend(replace_problem(p, where) for p in _check_text(name, base.line, key, text))
        entries[key] = Prompt(key, text, base.line, base.audio)
    return Prompts(language, name, MappingProxyType(entries), MappingProxyType(sounds)), problems


def load(directory: Path | str, language: str = "fr-FR") -> Prompts:
    """The catalogue, or PromptsError listing every problem."""
    prompts, problems = parse(directory, language)
    if prompts is None:
        raise PromptsError([p for p in problems if p.severity == "error"])
    return prompts


def _sounds(raw: object, data: yamlfile.LineMap, name: str, problems: list) -> dict[str, str]:
    if not isinstance(raw, yamlfile.LineMap):
        problems.append(Problem(name, data.line_of(PRONUNCIATION), f"« {PRONUNCIATION} » associe un mot écrit à sa prononciation, ex. KO: K O"))
        return {}
    sounds = {}
    for written, said in raw.items():
        if not isinstance(said, str) or not said.strip():
            problems.append(Problem(name, raw.line_of(written), f"« {PRONUNCIATION} », « {written} » : il faut la façon de le dire"))
        else:
            sounds[str(written)] = " ".join(said.split())
    return sounds


def _flatten(mapping: yamlfile.LineMap, prefix: str, name: str, out: dict, problems: list) -> None:
    for raw_key, value in mapping.items():
        if not prefix and raw_key == PRONUNCIATION:
            continue
        key = f"{prefix}{raw_key}"
        line = mapping.line_of(raw_key)
        if isinstance(value, yamlfile.LineMap) and "text" not in value:
            _flatten(value, key + ".", name, out, problems)
            continue
        audio = None
        if isinstance(value, yamlfile.LineMap):
            audio = value.get("audio")
            unknown = sorted(set(value) - {"text", "audio"})
            if unknown:
                listed = ", ".join(map(str, unknown))
                problems.append(Problem(name, line, f"« {key} » : champ inconnu {listed} (seuls « text » et « audio » existent)"))
            if audio is not None and not (isinstance(audio, str) and _AUDIO_URL.match(audio)):
                problems.append(Problem(name, value.line_of("audio"), f"« {key} » : l'audio doit être une adresse https://"))
                audio = None
            value = value.get("text")
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(name, line, f"« {key} » : la phrase est vide ou n'est pas du texte"))
            continue
        text = " ".join(value.split())
        problems.extend(_check_text(name, line, key, text))
        out[key] = Prompt(key, text, line, audio)


def replace_problem(problem: Problem, file: str) -> Problem:
    return Problem(file, problem.line, problem.message, problem.severity)


def check_text(name: str, line: int, key: str, text: str) -> list[Problem]:
    """Whether Twilio can read `text` (its length, placeholders, characters): the problems."""
    return _check_text(name, line, key, text)


def _check_text(name: str, line: int, key: str, text: str) -> list[Problem]:
    found = []
    if len(text) > SAY_MAX_CHARS:
        found.append(Problem(name, line, f"« {key} » : {len(text)} caractères, Twilio n'en lit pas plus de {SAY_MAX_CHARS}"))
    try:
        parsed = [(f, spec) for _, f, spec, _ in string.Formatter().parse(text) if f is not None]
    except ValueError:
        found.append(Problem(name, line, f"« {key} » : accolade { '{' } ou { '}' } mal fermée"))
        return found
    fields = {f for f, _ in parsed}
    for placeholder, spec in parsed:
        if spec and (placeholder not in NUMBERS or not _AGREEMENT.match(spec)):
            found.append(Problem(name, line, f"« {key} » : {{{placeholder}:{spec}}} : seul un nombre ({', '.join(sorted(NUMBERS))}) "
                                             "prend un mot accordé, écrit {minutes:minute} ou {n:singulier/pluriel}"))
    for match in _NOUN_AFTER_NUMBER.finditer(text):
        number, noun = match.groups()
        if noun.lower() in _NOT_PLURALS:
            continue
        found.append(Problem(name, line, f"« {key} » : « {{{number}}} {noun} » sera lu « 1 {noun} » quand {number} vaut 1 ; "
                                         f"écrivez {{{number}:{noun[:-1]}}} pour l'accord", "warning"))
    for unknown in sorted(fields - PLACEHOLDERS):
        found.append(Problem(name, line, f"« {key} » : {{{unknown}}} n'est pas une valeur connue (possibles : {', '.join(sorted(PLACEHOLDERS))})"))
    if "<" in text or ">" in text:
        found.append(Problem(name, line, f"« {key} » : les signes < et > ne sont pas lus par la voix ; écrivez-les en toutes lettres"))
    return found
