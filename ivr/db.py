"""The embedded SQLite database: one connection per thread, versioned migrations."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

# Each entry upgrades the schema by one version; never edit one that has shipped, add another.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        call_sid TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX sessions_expiry ON sessions (expires_at);
    CREATE TABLE calls (
        call_sid TEXT PRIMARY KEY,
        caller TEXT,
        started_at REAL NOT NULL,
        ended_at REAL,
        duration_s INTEGER,
        call_status TEXT,
        outcome TEXT,
        outcome_step INTEGER,
        last_node TEXT,
        last_step INTEGER,
        transfer_reason TEXT,
        transfer_result TEXT,
        flow_version TEXT,
        context TEXT
    );
    CREATE INDEX calls_started ON calls (started_at);
    """,
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        idempotency_key TEXT NOT NULL UNIQUE,
        call_sid TEXT NOT NULL,
        url TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        locked_until REAL NOT NULL DEFAULT 0,
        delivered_at REAL,
        failed_at REAL,
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox (delivered_at, failed_at, next_attempt_at);
    """,
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_sid TEXT NOT NULL,
        at REAL NOT NULL,
        node TEXT,
        step INTEGER,
        event TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX events_call ON events (call_sid, at);
    CREATE INDEX events_at ON events (at);
    ALTER TABLE calls ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0;
    """,
    """
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE prompt_overrides (
        key TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        updated_at REAL NOT NULL,
        updated_by TEXT NOT NULL
    );
    CREATE TABLE prompt_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        before TEXT,
        after TEXT NOT NULL,
        who TEXT NOT NULL,
        at REAL NOT NULL,
        action TEXT NOT NULL
    );
    CREATE TABLE revisions (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO revisions (name, value) VALUES ('prompts', 0);
    """,
)


class SQLite:
    """A SQLite file shared by the sessions store and the call records."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._open() as conn:
            migrate(conn)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use and kept (no per-request connect)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; safe when several workers start at once. Returns the version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
