"""What the caller's devices sent of themselves (issue 36), and the short codes that tie a computer's
page to its call. In the records' database: kept like the answers, purged with them (`ivr purge`,
IVR_RETENTION_DAYS), read by the agent's page, the API and the call's final document."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping

from .db import Database
from .users import count_try

CODE_SECONDS = 15 * 60  # a code said in the queue stays valid this long (the caller may be slow to reach the computer)
TRIES_PER_ADDRESS = 5  # wrong codes one address may type in TRIES_WINDOW
TRIES_IN_ALL = 200  # wrong codes everyone together may type in TRIES_WINDOW (a guess spread over many addresses)
TRIES_WINDOW = 15 * 60


class TooManyTries(Exception):
    """Too many wrong codes typed lately: `wait` seconds before the next one is looked at."""

    def __init__(self, wait: float):
        super().__init__(f"too many wrong codes: {wait:.0f} s to wait")
        self.wait = wait


class Devices:
    def __init__(self, db: Database):
        self.db = db

    def add(self, call_sid: str, kind: str, facts: Mapping, at: float) -> None:
        """Keep what a device sent (the latest from each kind of device of a call)."""
        self.db.execute("INSERT INTO device_facts (call_sid, kind, facts, at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (call_sid, kind) DO UPDATE SET facts = excluded.facts, at = excluded.at",
                        (call_sid, kind, json.dumps(dict(facts), ensure_ascii=False), at))

    def of_call(self, call_sid: str) -> dict[str, dict]:
        """kind → the facts that device sent, with when (`at`)."""
        return {row["kind"]: {**json.loads(row["facts"]), "at": row["at"]}
                for row in self.db.query("SELECT kind, facts, at FROM device_facts WHERE call_sid = ?", (call_sid,))}

    def code_for(self, call_sid: str, now: float) -> tuple[str, float]:
        """The call's code for the computer's page and until when it is valid: the one it has while
        valid, else a new one (4 digits, more when many calls hold one at once)."""
        valid = self.valid_code(call_sid, now + 60)  # one still valid a minute from now: the caller has time to type it
        if valid is not None:
            return valid
        self.db.execute("DELETE FROM device_codes WHERE expires_at <= ?", (now,))
        for attempt in range(60):
            digits = 4 if attempt < 20 else 5 if attempt < 40 else 6
            code = "".join(secrets.choice("0123456789") for _ in range(digits))
            if self.db.execute("INSERT INTO device_codes (code, call_sid, created_at, expires_at) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (code) DO NOTHING", (code, call_sid, now, now + CODE_SECONDS)):
                return code, now + CODE_SECONDS
        raise RuntimeError("no free code for the computer's page")

    def valid_code(self, call_sid: str, now: float) -> tuple[str, float] | None:
        """The call's code valid at `now`, and until when."""
        row = self.db.one("SELECT code, expires_at FROM device_codes WHERE call_sid = ? AND expires_at > ? ORDER BY expires_at DESC",
                          (call_sid, now))
        return None if row is None else (row["code"], row["expires_at"])

    def call_of(self, code: str, address: str, now: float) -> str | None:
        """The call a typed code belongs to (None: no such valid code). Wrong codes are counted by
        address and in all; past the limits, TooManyTries (the code is not even looked at)."""
        waits = []
        for what, allowed in ((f"code:addr:{address}", TRIES_PER_ADDRESS), ("code:all", TRIES_IN_ALL)):
            row = self.db.one("SELECT since, count FROM login_attempts WHERE what = ?", (what,))
            if row is not None and row["count"] >= allowed and row["since"] > now - TRIES_WINDOW:
                waits.append(row["since"] + TRIES_WINDOW - now)
        if waits:
            raise TooManyTries(max(waits))
        row = self.db.one("SELECT call_sid FROM device_codes WHERE code = ? AND expires_at > ?", (code, now)) if code.isdigit() else None
        if row is None:
            for what in (f"code:addr:{address}", "code:all"):
                count_try(self.db, what, now, TRIES_WINDOW)
            return None
        return row["call_sid"]

    def used(self, code: str) -> None:
        """A code whose computer sent its facts: it cannot be used again."""
        self.db.execute("DELETE FROM device_codes WHERE code = ?", (code,))

    def purge_codes(self, now: float) -> int:
        return self.db.execute("DELETE FROM device_codes WHERE expires_at <= ?", (now,))
