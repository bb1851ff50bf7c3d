"""Console users: hashed passwords and two roles (viewer reads, editor also changes prompts)."""

from __future__ import annotations

import time

from werkzeug.security import check_password_hash, generate_password_hash

from .db import Database

ROLES = ("viewer", "editor")
MIN_PASSWORD = 10
LOGIN_MAX_SECONDS = 12 * 3600  # a console login lasts 12 hours at most, however active
FAILURES_ALLOWED = 10  # wrong passwords, by account and by address, within…
FAILURES_WINDOW = 15 * 60  # …this many seconds; then logins from there wait for the window to pass


class UserError(ValueError):
    """A user cannot be created or changed; the message says why (in French, for the CLI)."""


class Users:
    """The console's accounts."""

    def __init__(self, db: Database):
        self.db = db

    def add(self, username: str, password: str, role: str) -> None:
        if role not in ROLES:
            raise UserError(f"rôle inconnu « {role} » (possibles : {', '.join(ROLES)})")
        if not username or not username.replace(".", "").replace("-", "").replace("_", "").isalnum():
            raise UserError("identifiant vide ou avec des caractères autres que lettres, chiffres, . - _")
        _check_password(password)
        if self.db.one("SELECT 1 AS found FROM users WHERE username = ?", (username,)):
            raise UserError(f"l'utilisateur « {username} » existe déjà")
        self.db.execute("INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
                     (username, generate_password_hash(password), role, time.time()))

    def set_password(self, username: str, password: str) -> None:
        _check_password(password)
        changed = self.db.execute("UPDATE users SET password_hash = ? WHERE username = ?", (generate_password_hash(password), username))
        if not changed:
            raise UserError(f"aucun utilisateur « {username} »")

    def remove(self, username: str) -> None:
        if not self.db.execute("DELETE FROM users WHERE username = ?", (username,)):
            raise UserError(f"aucun utilisateur « {username} »")

    def authenticate(self, username: str, password: str) -> str | None:
        """The user's role if the password is right, else None."""
        row = self.db.one("SELECT password_hash, role FROM users WHERE username = ?", (username,))
        if row is None:
            check_password_hash(_DUMMY_HASH, password)  # same time whether or not the user exists
            return None
        return row["role"] if check_password_hash(row["password_hash"], password) else None

    def role(self, username: str) -> str | None:
        row = self.db.one("SELECT role FROM users WHERE username = ?", (username,))
        return row["role"] if row else None

    def all(self) -> list[dict]:
        return self.db.query("SELECT username, role, created_at FROM users ORDER BY username")

    # -- logins kept on the server ---------------------------------------------------------------
    def open_login(self, username: str, token: str, now: float) -> None:
        self.db.execute("INSERT INTO console_logins (token, username, created_at, seen_at) VALUES (?, ?, ?, ?)", (token, username, now, now))

    def login_of(self, token: str, now: float, idle: float) -> tuple[str, str] | None:
        """(user, role) of a live login: not logged out, active within `idle`, under 12 hours old,
        and its account still there. Its activity is noted."""
        row = self.db.one(
            "SELECT l.username, u.role, l.created_at, l.seen_at FROM console_logins l JOIN users u ON u.username = l.username WHERE l.token = ?",
            (token,))
        if row is None or now - row["seen_at"] > idle or now - row["created_at"] > LOGIN_MAX_SECONDS:
            return None
        if now - row["seen_at"] > 30:  # a write at most every 30 s of activity
            self.db.execute("UPDATE console_logins SET seen_at = ? WHERE token = ?", (now, token))
        return row["username"], row["role"]

    def close_login(self, token: str) -> None:
        self.db.execute("DELETE FROM console_logins WHERE token = ?", (token,))

    def login_wait(self, username: str, address: str, now: float) -> float:
        """Seconds before this account or this address may try a password again (0: now)."""
        since = now - FAILURES_WINDOW
        waits = []
        for what in (f"user:{username.lower()}", f"addr:{address}"):
            rows = self.db.query("SELECT at FROM login_failures WHERE what = ? AND at > ? ORDER BY at DESC LIMIT ?",
                                 (what, since, FAILURES_ALLOWED))
            if len(rows) >= FAILURES_ALLOWED:
                waits.append(rows[-1]["at"] - since)
        return max(waits, default=0.0)

    def login_failed(self, username: str, address: str, now: float) -> None:
        for what in (f"user:{username.lower()}", f"addr:{address}"):
            self.db.execute("INSERT INTO login_failures (what, at) VALUES (?, ?)", (what, now))
        self.db.execute("DELETE FROM login_failures WHERE at <= ?", (now - FAILURES_WINDOW,))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"mot de passe trop court : {MIN_PASSWORD} caractères au moins")


_DUMMY_HASH = generate_password_hash("not-a-real-password")
