"""Console users: hashed passwords and two roles (viewer reads, editor also changes prompts)."""

from __future__ import annotations

import time

from werkzeug.security import check_password_hash, generate_password_hash

from .db import SQLite

ROLES = ("viewer", "editor")
MIN_PASSWORD = 10


class UserError(ValueError):
    """A user cannot be created or changed; the message says why (in French, for the CLI)."""


class Users:
    """The console's accounts."""

    def __init__(self, db: SQLite):
        self.db = db

    def add(self, username: str, password: str, role: str) -> None:
        if role not in ROLES:
            raise UserError(f"rôle inconnu « {role} » (possibles : {', '.join(ROLES)})")
        if not username or not username.replace(".", "").replace("-", "").replace("_", "").isalnum():
            raise UserError("identifiant vide ou avec des caractères autres que lettres, chiffres, . - _")
        _check_password(password)
        conn = self.db.connection()
        if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
            raise UserError(f"l'utilisateur « {username} » existe déjà")
        conn.execute("INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
                     (username, generate_password_hash(password), role, time.time()))

    def set_password(self, username: str, password: str) -> None:
        _check_password(password)
        changed = self.db.connection().execute("UPDATE users SET password_hash = ? WHERE username = ?",
                                                (generate_password_hash(password), username)).rowcount
        if not changed:
            raise UserError(f"aucun utilisateur « {username} »")

    def remove(self, username: str) -> None:
        if not self.db.connection().execute("DELETE FROM users WHERE username = ?", (username,)).rowcount:
            raise UserError(f"aucun utilisateur « {username} »")

    def authenticate(self, username: str, password: str) -> str | None:
        """The user's role if the password is right, else None."""
        row = self.db.connection().execute("SELECT password_hash, role FROM users WHERE username = ?", (username,)).fetchone()
        if row is None:
            check_password_hash(_DUMMY_HASH, password)  # same time whether or not the user exists
            return None
        return row["role"] if check_password_hash(row["password_hash"], password) else None

    def role(self, username: str) -> str | None:
        row = self.db.connection().execute("SELECT role FROM users WHERE username = ?", (username,)).fetchone()
        return row["role"] if row else None

    def all(self) -> list[dict]:
        return [dict(row) for row in self.db.connection().execute("SELECT username, role, created_at FROM users ORDER BY username")]


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"mot de passe trop court : {MIN_PASSWORD} caractères au moins")


_DUMMY_HASH = generate_password_hash("not-a-real-password")
