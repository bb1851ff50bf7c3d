"""What the caller's devices sent of themselves (issue 36), and the short codes that tie a computer's
page to its call. In the records' database: kept like the answers, purged with them (`ivr purge`,
IVR_RETENTION_DAYS), read by the agent's page, the API and the call's final document."""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Mapping

from .db import Database
from .users import count_try

CODE_SECONDS = 15 * 60  # a code said in the queue stays valid this long (the caller may be slow to reach the computer)
TRIES_PER_ADDRESS = 5  # wrong codes one address may type in TRIES_WINDOW
TRIES_IN_ALL = 200  # wrong codes from everyone in TRIES_WINDOW past which new codes have 6 digits (a guess spread over many addresses)
TRIES_WINDOW = 15 * 60


def _network(address: str) -> str:
    """Who is counted for wrong codes: an IPv4 address, or an IPv6 address's /64."""
    try:
        found = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    return str(ipaddress.ip_network(f"{found}/64", strict=False)) if found.version == 6 else str(found)


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
        valid, else a new one: 4 digits, 6 while many wrong codes are being typed (someone guessing)."""
        valid = self.valid_code(call_sid, now + 60)  # one still valid a minute from now: the caller has time to type it
        if valid is not None:
            return valid
        self.db.execute("DELETE FROM device_codes WHERE expires_at <= ?", (now,))
        guessed = self.db.one("SELECT since, count FROM login_attempts WHERE what = 'code:all'")
        length = 6 if guessed is not None and guessed["count"] >= TRIES_IN_ALL and guessed["since"] > now - TRIES_WINDOW else 4
        for attempt in range(60):
            digits = length if attempt < 20 else length + 1 if attempt < 40 else 6
            code = "".join(secrets.choice("0123456789") for _ in range(min(digits, 6)))
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
        address (an IPv6 address by its /64, which one subscriber holds whole); past the limit,
        TooManyTries and the code is not even looked at. Wrong codes are counted in all too: many
        of them make new codes longer (`code_for`), without refusing anyone a right code."""
        what = f"code:addr:{_network(address)}"
        row = self.db.one("SELECT since, count FROM login_attempts WHERE what = ?", (what,))
        if row is not None and row["count"] >= TRIES_PER_ADDRESS and row["since"] > now - TRIES_WINDOW:
            raise TooManyTries(row["since"] + TRIES_WINDOW - now)
        row = self.db.one("SELECT call_sid FROM device_codes WHERE code = ? AND expires_at > ?", (code, now)) \
            if code.isdigit() and len(code) <= 6 else None
        if row is None:
            count_try(self.db, what, now, TRIES_WINDOW)
            count_try(self.db, "code:all", now, TRIES_WINDOW)
            return None
        return row["call_sid"]

    def used(self, code: str) -> None:
        """A code whose computer sent its facts: it cannot be used again."""
        self.db.execute("DELETE FROM device_codes WHERE code = ?", (code,))

    def purge_codes(self, now: float) -> int:
        return self.db.execute("DELETE FROM device_codes WHERE expires_at <= ?", (now,))
