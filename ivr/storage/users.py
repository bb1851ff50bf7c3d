"""Console users: hashed passwords and two roles (viewer reads, editor also changes prompts)."""

from __future__ import annotations

import time

from werkzeug.security import check_password_hash, generate_password_hash

from .db import Database

ROLES = ("viewer", "editor")
MIN_PASSWORD = 10


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


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"mot de passe trop court : {MIN_PASSWORD} caractères au moins")


_DUMMY_HASH = generate_password_hash("not-a-real-password")
