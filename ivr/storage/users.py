"""Console users: hashed passwords and two roles (viewer reads, editor also changes prompts)."""

from __future__ import annotations

import logging
import time

from werkzeug.security import check_password_hash, generate_password_hash

from .db import Database

log = logging.getLogger(__name__)

ROLES = ("viewer", "editor")
MIN_PASSWORD = 10
LOGIN_MAX_SECONDS = 12 * 3600  # a console login lasts 12 hours at most, however active
FAILURES_WINDOW = 15 * 60  # seconds: passwords tried, counted over this window…
# …from one address for one account; from one address, any account; for one account from anywhere
# (then the account is locked for everyone: an alert in the log, and `ivr user unlock` opens it).
FAILURES_ALLOWED = {"pair": 10, "addr": 30, "user": 100}


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

    def login_try(self, username: str, address: str, now: float) -> float:
        """Count one password tried (before it is checked: a burst cannot get past the limit, each
        count is taken in one statement); seconds before this one may be tried (0: now)."""
        wait = 0.0
        for kind, what in _login_keys(username, address):
            row = count_try(self.db, what, now, FAILURES_WINDOW)
            if row["count"] > FAILURES_ALLOWED[kind]:
                wait = max(wait, row["since"] + FAILURES_WINDOW - now)
            if kind == "user" and row["count"] == FAILURES_ALLOWED[kind] + 1:
                log.error("console: the account %r is locked for everyone after %d passwords tried in %d minutes: an attack? "
                          "(ivr user unlock %s to open it)", username, FAILURES_ALLOWED[kind], FAILURES_WINDOW // 60, username)
        return wait

    def login_succeeded(self, username: str, address: str) -> None:
        """The password tried was right: it does not count against anyone."""
        for _, what in _login_keys(username, address):
            self.db.execute("UPDATE login_attempts SET count = count - 1 WHERE what = ? AND count > 0", (what,))

    def unlock(self, username: str) -> bool:
        """Open an account locked by too many passwords tried (its addresses stay counted)."""
        return bool(self.db.execute("DELETE FROM login_attempts WHERE what = ?", (f"user:{username.lower()}",)))


def count_try(db: Database, what: str, now: float, window: float) -> dict:
    """Count one try of `what` (an account, an address…) in one statement, so that a burst cannot
    get past a limit: {count, since}, the tries since the window `since` started (a window older than
    `window` seconds starts again at this try)."""
    return db.one(
        "INSERT INTO login_attempts (what, since, count) VALUES (?, ?, 1) "
        "ON CONFLICT (what) DO UPDATE SET "
        "count = CASE WHEN login_attempts.since <= ? THEN 1 ELSE login_attempts.count + 1 END, "
        "since = CASE WHEN login_attempts.since <= ? THEN excluded.since ELSE login_attempts.since END "
        "RETURNING count, since",
        (what, now, now - window, now - window))


def _login_keys(username: str, address: str) -> tuple[tuple[str, str], ...]:
    name = username.lower()
    return (("pair", f"pair:{address}|{name}"), ("addr", f"addr:{address}"), ("user", f"user:{name}"))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"mot de passe trop court : {MIN_PASSWORD} caractères au moins")


_DUMMY_HASH = generate_password_hash("not-a-real-password")
