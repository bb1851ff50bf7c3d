"""One truth for what callers hear, shown the same by every tool.

The rule: a sentence is the file's (`prompts/fr-FR.yaml`), unless the console changed it; then it is
the console's, until that change is withdrawn (a rollback to the file's wording, « Reprendre le texte
du fichier », `ivr prompts reset`, `ivr prompts export --write --clear`). A running experiment gives
a share of new calls its wording B on top. A change back to the file's own wording is no change: it
withdraws the console's, so that the file speaks again and its later edits reach callers.

What a supervisor must be told: a sentence edited in the file while the console has its own wording
(callers hear the console's), and a console copy identical to the file (a later file edit would not
be heard)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..call.prompts import Prompts, edited_in_file
from ..call.yamlfile import Problem
from ..storage.overrides import PromptOverrides

FILE = "fichier"
CONSOLE = "console"


@dataclass(frozen=True)
class Origin:
    """Where the wording callers hear for one sentence comes from."""

    key: str
    source: str  # FILE or CONSOLE
    heard: str
    file_text: str | None  # the file's wording now (None: the sentence is not in the file any more)
    changed_by: str | None = None
    changed_at: float | None = None
    file_edited: bool = False  # the file's wording changed since the console changed it: not heard
    same_as_file: bool = False  # the console's wording is the file's: a later file edit would not be heard

    @property
    def needs_action(self) -> bool:
        return self.source == CONSOLE and (self.file_edited or self.same_as_file)

    def advice(self) -> str:
        """What the supervisor reads, and the one action that resolves it."""
        if self.file_edited:
            return (f"« {self.key} » a été modifiée dans le fichier depuis sa modification dans la console ({self.changed_by}) : "
                    "les appelants entendent toujours la version de la console. Pour faire entendre celle du fichier : "
                    f"« ivr prompts reset {self.key} » (ou « Reprendre le texte du fichier » sur la page de la phrase).")
        if self.same_as_file:
            return (f"« {self.key} » : la console en garde une copie identique au fichier ; une modification du fichier ne "
                    f"serait pas entendue. Retirez-la : « ivr prompts reset {self.key} » (ou « Reprendre le texte du fichier »).")
        return ""


def origins(file: Prompts | None, rows: list[Mapping]) -> dict[str, Origin]:
    """The origin of every sentence the console changed (`rows`: PromptOverrides.rows()), against
    the file's catalogue `file`."""
    found = {}
    for row in rows:
        entry = file.entries.get(row["key"]) if file is not None else None
        now = entry.text if entry else None
        edited = edited_in_file(row.get("file_text"), now, row["text"])
        found[row["key"]] = Origin(row["key"], CONSOLE, row["text"], now, row.get("updated_by"), row.get("updated_at"),
                                   file_edited=edited, same_as_file=now == row["text"])
    return found


def origin_of(key: str, file: Prompts | None, rows: list[Mapping]) -> Origin:
    """The origin of `key`, changed in the console or not."""
    found = origins(file, [row for row in rows if row["key"] == key])
    if key in found:
        return found[key]
    entry = file.entries.get(key) if file is not None else None
    return Origin(key, FILE, entry.text if entry else "", entry.text if entry else None)


def problems(file: Prompts | None, rows: list[Mapping]) -> list[Problem]:
    """What `ivr validate` says of the console's changes: each one that needs an action, at its line
    in the file."""
    found = []
    for origin in origins(file, rows).values():
        if origin.needs_action:
            entry = file.entries.get(origin.key) if file is not None else None
            found.append(Problem(file.source if file is not None else "console", entry.line if entry else 0, origin.advice(), "warning"))
    return found


def publish(overrides: PromptOverrides, file: Prompts | None, key: str, text: str, who: str, before: str | None,
            action: str = "edit") -> str:
    """Make `text` what callers hear for `key`, as `who`: a console change, or the console's change
    withdrawn when `text` is the file's own wording. Returns FILE or CONSOLE (where it now comes from)."""
    entry = file.entries.get(key) if file is not None else None
    if entry is not None and entry.text == text:
        overrides.remove(key, who, before, text, f"{action} : retour au texte du fichier")
        return FILE
    overrides.set(key, text, who, before, action, entry.text if entry else None)
    return CONSOLE


def reset(overrides: PromptOverrides, file: Prompts, key: str, who: str, before: str | None) -> bool:
    """Withdraw the console's change of `key`: the file's wording is heard again. False if the console
    had none (or the file has no such sentence)."""
    entry = file.entries.get(key)
    if entry is None:
        return False
    return overrides.remove(key, who, before, entry.text, "retour au texte du fichier") is not None
