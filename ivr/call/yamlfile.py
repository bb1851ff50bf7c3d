"""Load YAML keeping the line of every mapping and key, so problems can say where they are."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True, order=True)
class Problem:
    """One finding in a supervisor's file: where it is and what is wrong, in plain French."""

    file: str
    line: int
    message: str
    severity: str = "error"  # "error" refuses the file, "warning" does not

    def __str__(self) -> str:
        label = "erreur" if self.severity == "error" else "avertissement"
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {label}: {self.message}"


class LineMap(dict):
    """A dict that remembers its own line and the line of each key."""

    line: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_lines: dict = {}

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


# libyaml's parser when PyYAML has it (its wheels do): the pure-Python scanner was nine tenths of
# the time to load a flow (bench/flow_loader.py); nodes keep their lines either way.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):
    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[tuple[object, int]] = []


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    mapping = LineMap()
    mapping.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in mapping:
            loader.duplicates.append((key, line))
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read(path: Path | str) -> tuple[str | None, list[Problem]]:
    """A supervisor's file as text (None if it cannot be read, with the problem)."""
    try:
        return Path(path).read_text(encoding="utf-8"), []
    except FileNotFoundError:
        return None, [Problem(str(path), 0, "fichier introuvable")]
    except UnicodeDecodeError as exc:
        return None, [Problem(str(path), 0, f"le fichier n'est pas en UTF-8 ({exc.reason})")]


def load(path: Path | str, label: str | None = None, text: str | None = None) -> tuple[object, list[Problem]]:
    """Parse a YAML file (or `text`, read from it before); return its data (None if unreadable) and
    the problems found."""
    name = label or str(path)
    if text is None:
        text, problems = read(path)
        if text is None:
            return None, problems
    loader = _LineLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        opened = unclosed_quote(text, mark.line if mark else None)
        if opened:
            quote, e = ("un guillemet", "") if opened[1] == '"' else ("une apostrophe", "e")
            return None, [Problem(name, opened[0], f"YAML illisible : {quote} ({opened[1]}) ouvert{e} sur cette ligne n'est pas refermé{e} "
                                                   f"(la phrase continue jusqu'à la ligne {line}) : refermez-l{e or 'e'} à la fin de la phrase")]
        lines = text.splitlines()
        if mark and mark.line < len(lines) and "\t" in lines[mark.line][: mark.column + 1]:
            return None, [Problem(name, line, "YAML illisible : une tabulation : indentez avec des espaces")]
        return None, [Problem(name, line, f"YAML illisible : {in_french(exc.problem or exc.context)}")]
    except yaml.YAMLError as exc:
        return None, [Problem(name, 0, f"YAML illisible : {exc}")]
    finally:
        loader.dispose()
    problems = [
        Problem(name, line, f"la clé « {key} » est écrite deux fois : seule la dernière compterait")
        for key, line in loader.duplicates
    ]
    return data, problems


_KEY_LINE = re.compile(r"^\s*[\w.-]+\s*:(\s|$)", re.MULTILINE)


def unclosed_quote(text: str, error_line: int | None) -> tuple[int, str] | None:
    """Where a quote was opened and never closed (its line, 1-based, and the quote), if that is what
    broke the file: PyYAML then reports the far line where the runaway quoted text ends, or the end
    of the file. A quoted text that spans lines and carries `key:` lines is one."""
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.ScalarToken) and token.style in ('"', "'"):
                start, end = token.start_mark, token.end_mark
                if error_line is not None and start.line > error_line:
                    return None
                if end.line > start.line and _KEY_LINE.search(text[start.index:end.index]):
                    return start.line + 1, token.style
    except yaml.MarkedYAMLError as exc:
        context = exc.context or ""
        if "quoted scalar" in context and exc.context_mark is not None:
            mark = exc.context_mark
            return mark.line + 1, '"' if text[mark.index:mark.index + 1] == '"' else "'"
    return None


# PyYAML's messages (English) for the mistakes supervisors make, as they would say them.
_YAML_MESSAGES = (
    ("could not find expected ':'", "il manque « : » après une clé (ou une ligne n'est pas assez indentée)"),
    ("mapping values are not allowed", "un « : » de trop (dans une phrase : mettez-la entre guillemets ; ou il manque « : » à la ligne d'avant)"),
    ("found character '\\t' that cannot start any token", "une tabulation : indentez avec des espaces"),
    ("found character '\t' that cannot start any token", "une tabulation : indentez avec des espaces"),
    ("found a tab character", "une tabulation : indentez avec des espaces"),
    ("did not find expected key", "indentation incohérente : alignez cette ligne sur ses voisines"),
    ("did not find expected node content", "une valeur manque après « - » ou « : »"),
    ("found unexpected end of stream", "le fichier s'arrête au milieu d'une phrase entre guillemets"),
    ("found undefined alias", "un « * » en début de valeur : mettez la phrase entre guillemets"),
    ("expected ',' or ']'", "une liste entre [ ] mal fermée"),
    ("expected ',' or '}'", "une liste entre { } mal fermée"),
    ("found character that cannot start any token",
     "un caractère ne peut pas commencer une valeur (« @ », « ` »…) : mettez la phrase entre guillemets"),
    ("found duplicate key", "une clé apparaît deux fois"),
)


def in_french(message: str | None) -> str:
    """PyYAML's `message` in French when it is a known one (else as it is, still with the line)."""
    text = str(message or "")
    for english, french in _YAML_MESSAGES:
        if english in text:
            return french
    return text
