"""Sentences changed in the console: the live wording on every server, with who/when/before/after.

The YAML file in the repository stays the base; an override replaces one sentence on top of it.
`ivr prompts export --write` writes the overrides back into the YAML so that it can be committed,
and `--clear` then withdraws the overrides the file now carries (each in the history)."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

from .db import Database


class PromptOverrides:
    """Overrides and their history in the database shared by every server."""

    def __init__(self, db: Database):
        self.db = db

    def revision(self) -> int:
        """Grows at every change: servers compare it to know when to reload (one cheap query)."""
        row = self.db.one("SELECT value FROM revisions WHERE name = 'prompts'")
        return row["value"] if row else 0

    def all(self) -> dict[str, str]:
        return {row["key"]: row["text"] for row in self.db.query("SELECT key, text FROM prompt_overrides ORDER BY key")}

    def rows(self) -> list[dict]:
        """Each change with who, when, and the file's wording it replaced (`file_text`; for a change
        made before that was kept, the wording before the sentence's first change in the history)."""
        rows = self.db.query("SELECT key, text, updated_at, updated_by, file_text FROM prompt_overrides ORDER BY key")
        for row in rows:
            if row["file_text"] is None:
                first = self.db.one("SELECT before FROM prompt_history WHERE key = ? ORDER BY id LIMIT 1", (row["key"],))
                row["file_text"] = first["before"] if first else None
        return rows

    def set(self, key: str, text: str, who: str, before: str | None, action: str = "edit", file_text: str | None = None) -> int:
        """Change one sentence (recorded in the history); returns the history entry's id. `file_text`:
        the file's wording it replaces, kept to notice a later edit of the file."""
        now = time.time()
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO prompt_overrides (key, text, updated_at, updated_by, file_text) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at, updated_by = excluded.updated_by, "
                "file_text = excluded.file_text",
                (key, text, now, who, file_text),
            )
            entry = self._history(key, before, text, who, now, action)
        return entry

    def remove(self, key: str, who: str, before: str | None, file_text: str, action: str) -> int | None:
        """The console's change of `key` withdrawn: the file's wording (`file_text`) is heard again,
        and a later edit of it in the file too. Recorded in the history; None if there was none."""
        now = time.time()
        with self.db.transaction():
            if self.db.one("SELECT key FROM prompt_overrides WHERE key = ?", (key,)) is None:
                return None
            self.db.execute("DELETE FROM prompt_overrides WHERE key = ?", (key,))
            return self._history(key, before, file_text, who, now, action)

    def _history(self, key: str, before: str | None, after: str, who: str, now: float, action: str) -> int:
        entry = self.db.one("INSERT INTO prompt_history (key, before, after, who, at, action) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                            (key, before, after, who, now, action))
        self.db.execute("UPDATE revisions SET value = value + 1 WHERE name = 'prompts'")
        return entry["id"]

    def history(self, key: str | None = None, limit: int = 200) -> list[dict]:
        sql = "SELECT * FROM prompt_history" + (" WHERE key = ?" if key else "") + " ORDER BY id DESC LIMIT ?"
        return self.db.query(sql, (key, limit) if key else (limit,))

    def entry(self, entry_id: int) -> dict | None:
        return self.db.one("SELECT * FROM prompt_history WHERE id = ?", (entry_id,))



def write_into_yaml(path: Path, changes: dict[str, tuple[int, str]]) -> list[str]:
    """Replace, in the YAML file, the text of each key (key → (line of the key, new text)).

    Comments and every other line are kept. Returns the keys written."""
    lines = path.read_text(encoding="utf-8").splitlines()
    written = []
    # Bottom-up, so that earlier line numbers stay right.
    for key, (line, text) in sorted(changes.items(), key=lambda item: -item[1][0]):
        index = line - 1
        head = lines[index]
        indent = len(head) - len(head.lstrip())
        end = index + 1
        while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
            end += 1
        while end > index + 1 and not lines[end - 1].strip():
            end -= 1  # keep the blank lines that separate groups
        block = lines[index:end]
        text_line = next((i for i, item in enumerate(block) if re.match(r"\s*text\s*:", item)), None)
        if text_line is not None:  # the {text, audio} form: rewrite only the text
            sub_start = index + text_line
            sub_indent = len(lines[sub_start]) - len(lines[sub_start].lstrip())
            sub_end = sub_start + 1
            while sub_end < end and len(lines[sub_end]) - len(lines[sub_end].lstrip()) > sub_indent:
                sub_end += 1
            lines[sub_start:sub_end] = _block(" " * sub_indent + "text", text, sub_indent)
        else:
            name = head.strip().split(":", 1)[0]
            lines[index:end] = _block(" " * indent + name, text, indent)
        written.append(key)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return written


def _block(head: str, text: str, indent: int) -> list[str]:
    body = textwrap.wrap(text, width=100, break_long_words=False, break_on_hyphens=False)
    return [f"{head}: >-", *(" " * (indent + 2) + part for part in body)]
