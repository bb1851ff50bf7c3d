"""The database: embedded SQLite by default, PostgreSQL when DATABASE_URL says so.

Connections opened on first use and kept (PostgreSQL: one per thread; SQLite: one per process,
shared by its threads under a lock), rows as dicts, `?` placeholders everywhere,
and numbered migrations that upgrade an existing database without losing data."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

# Column types that differ between the two engines.
_TYPES = {
    "sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL"},
    "postgres": {"id": "BIGSERIAL PRIMARY KEY", "real": "DOUBLE PRECISION"},
}

# Each entry upgrades the schema by one version; never edit one that has shipped, add another.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        call_sid TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        expires_at {real} NOT NULL
    );
    CREATE INDEX sessions_expiry ON sessions (expires_at);
    CREATE TABLE calls (
        call_sid TEXT PRIMARY KEY,
        caller TEXT,
        started_at {real} NOT NULL,
        ended_at {real},
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
        id {id},
        idempotency_key TEXT NOT NULL UNIQUE,
        call_sid TEXT NOT NULL,
        url TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at {real} NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at {real} NOT NULL,
        locked_until {real} NOT NULL DEFAULT 0,
        delivered_at {real},
        failed_at {real},
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox (delivered_at, failed_at, next_attempt_at);
    """,
    """
    CREATE TABLE events (
        id {id},
        call_sid TEXT NOT NULL,
        at {real} NOT NULL,
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
        created_at {real} NOT NULL
    );
    CREATE TABLE prompt_overrides (
        key TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        updated_at {real} NOT NULL,
        updated_by TEXT NOT NULL
    );
    CREATE TABLE prompt_history (
        id {id},
        key TEXT NOT NULL,
        before TEXT,
        after TEXT NOT NULL,
        who TEXT NOT NULL,
        at {real} NOT NULL,
        action TEXT NOT NULL
    );
    CREATE TABLE revisions (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO revisions (name, value) VALUES ('prompts', 0);
    """,
    """
    ALTER TABLE sessions ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    """,
    """
    CREATE TABLE callbacks (
        id {id},
        call_sid TEXT NOT NULL UNIQUE,
        requested_at {real} NOT NULL,
        number TEXT NOT NULL,
        kind TEXT NOT NULL,
        message_url TEXT,
        context TEXT,
        status TEXT NOT NULL DEFAULT 'pending',
        done_at {real},
        done_by TEXT
    );
    CREATE INDEX callbacks_pending ON callbacks (status, requested_at);
    """,
    """
    CREATE TABLE sms (
        call_sid TEXT NOT NULL,
        guide TEXT NOT NULL,
        number TEXT NOT NULL,
        sent_at {real} NOT NULL,
        status TEXT NOT NULL,
        message_sid TEXT,
        PRIMARY KEY (call_sid, guide)
    );
    """,
    # Every webhook rewrites its call's session: an index on its expiry doubled the cost of that
    # write, for a purge that runs once every 500 saves (a scan of the calls in progress does).
    # No query reads events by time alone: that index only slowed every event written.
    """
    DROP INDEX sessions_expiry;
    DROP INDEX events_at;
    """,
)


class Database:
    """What every module needs of a database; SQLite and PostgreSQL implement it."""

    dialect = ""

    # -- to implement --------------------------------------------------------------------------
    def connection(self):
        """The connection to use now, opened on first use and kept (no per-request connect)."""
        raise NotImplementedError

    def forget_connection(self) -> None:
        """Drop the connection (after a failure) so that the next use reconnects."""
        raise NotImplementedError

    def _cursor(self, sql: str, params: Iterable = ()):
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        raise NotImplementedError
        yield self

    # -- shared --------------------------------------------------------------------------------
    def execute(self, sql: str, params: Iterable = ()) -> int:
        """Run one statement; the number of rows it changed."""
        return self._cursor(sql, params).rowcount

    def executemany(self, sql: str, rows: list) -> None:
        if rows:
            self._many(sql, rows)

    # Both engines' connections make each row a new dict (their row factories): returned as they come.
    def query(self, sql: str, params: Iterable = ()) -> list[dict]:
        return self._cursor(sql, params).fetchall()

    def one(self, sql: str, params: Iterable = ()) -> dict | None:
        return self._cursor(sql, params).fetchone()

    def migrate(self) -> int:
        """Bring the schema up to date (safe when several processes start together)."""
        with self.transaction():
            self._lock_schema()
            version = self._schema_version()
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.format(**_TYPES[self.dialect]).split(";")):
                    self.execute(statement)
                self._set_schema_version(number)
                if version:
                    log.info("database upgraded to schema version %d", number)
        return len(MIGRATIONS)


def _dict_row(cursor: sqlite3.Cursor, row: tuple) -> dict:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class SQLite(Database):
    """A SQLite file (WAL, busy timeout): the embedded default.

    One connection per process, shared by its threads under a lock. With a connection per thread,
    every write by one thread emptied the page cache of the others (each statement read its pages
    again) and threads fighting for the write lock slept in SQLite's busy handler: 46 system calls
    a webhook besides the GIL's, 38 with one connection, 18 for the fixed-TwiML ceiling (strace -c)."""

    dialect = "sqlite"

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._kept: sqlite3.Cursor | None = None  # the connection's cursor for every statement
        _SQLITE_DATABASES.add(self)
        self.migrate()

    def connection(self) -> sqlite3.Connection:
        """This process's connection, opened on first use."""
        if self._conn is None:
            self._conn = self._open()
            self._kept = self._conn.cursor()
        return self._conn

    def forget_connection(self) -> None:
        with self._lock:
            conn, self._conn, self._kept = self._conn, None, None
            if conn is not None:
                conn.close()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        conn.row_factory = _dict_row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        # Fewer, larger WAL checkpoints: every webhook rewrites its call's session, and a
        # checkpoint every 1,000 pages (the default) cost ~13 % of the server's CPU under load.
        conn.execute("PRAGMA wal_autocheckpoint=10000")
        return conn

    # Every use of the shared connection, statement and reading of its rows, holds the lock.
    def execute(self, sql: str, params: Iterable = ()) -> int:
        with self._lock:
            return super().execute(sql, params)

    def executemany(self, sql: str, rows: list) -> None:
        with self._lock:
            super().executemany(sql, rows)

    def query(self, sql: str, params: Iterable = ()) -> list[dict]:
        with self._lock:
            return super().query(sql, params)

    def one(self, sql: str, params: Iterable = ()) -> dict | None:
        with self._lock:
            return super().one(sql, params)

    def _cursor(self, sql: str, params: Iterable = ()):
        """Each statement on the connection's kept cursor, its rows read under the lock before the
        next statement, rather than a new cursor per statement (Connection.execute): with the
        rows no longer copied (Database.one, query), 1.5 % fewer cache lines fetched from memory
        a webhook (bench/instructions.py --cold: 11,972 → 11,780)."""
        self.connection()  # opened, with its kept cursor, on first use
        cursor = self._kept
        cursor.execute(sql, tuple(params))
        return cursor

    def _many(self, sql: str, rows: list) -> None:
        self.connection().executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        with self._lock:  # the other threads wait for the whole transaction, not just a statement
            conn = self.connection()
            if conn.in_transaction:  # nested: join the outer one
                yield self
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _lock_schema(self) -> None:
        pass  # BEGIN IMMEDIATE already holds the write lock

    def _schema_version(self) -> int:
        return self.connection().execute("PRAGMA user_version").fetchone()["user_version"]

    def _set_schema_version(self, number: int) -> None:
        self.connection().execute(f"PRAGMA user_version = {int(number)}")


class Postgres(Database):
    """PostgreSQL through psycopg 3, for many servers sharing records."""

    dialect = "postgres"

    def __init__(self, url: str):
        import psycopg  # only needed when DATABASE_URL points at PostgreSQL

        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        self._translated: dict[str, str] = {}  # `?` placeholders → psycopg's, by statement
        self.migrate()

    def connection(self):
        """This thread's connection: each thread talks to the server on its own."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            from psycopg.rows import dict_row

            conn = self._local.conn = self._psycopg.connect(self.url, autocommit=True, row_factory=dict_row)
            self._local.cursor = conn.cursor()
        return conn

    def forget_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = self._local.cursor = None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _translate(self, sql: str) -> str:
        translated = self._translated.get(sql)
        if translated is None:
            translated = self._translated[sql] = sql.replace("%", "%%").replace("?", "%s")
        return translated

    def _cursor(self, sql: str, params: Iterable = ()):
        """Each statement on this thread's kept cursor (its rows are read before the next one):
        a new cursor per statement was a third of psycopg's 93,000 instructions a statement."""
        try:
            self.connection()
            cursor = self._local.cursor
            cursor.execute(self._translate(sql), tuple(params))
            return cursor
        except self._psycopg.OperationalError:
            self.forget_connection()  # the server went away: reconnect on the next use
            raise

    def _many(self, sql: str, rows: list) -> None:
        with self.connection().cursor() as cursor:
            cursor.executemany(self._translate(sql), rows)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        with self.connection().transaction():
            yield self

    def _lock_schema(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(4242)")
        self.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")

    def _schema_version(self) -> int:
        row = self.one("SELECT version FROM schema_version")
        return row["version"] if row else 0

    def _set_schema_version(self, number: int) -> None:
        self.execute("DELETE FROM schema_version")
        self.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))


# A SQLite connection must not cross a fork (gunicorn --preload): each child opens its own, and
# leaves the parent's alone (never used nor closed there).
_SQLITE_DATABASES: weakref.WeakSet[SQLite] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for database in list(_SQLITE_DATABASES):
        database._conn = database._kept = None
        database._lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def connect(database_url: str, data_dir: Path) -> Database:
    """PostgreSQL for a postgres:// URL, else the SQLite file in `data_dir`."""
    if database_url.startswith(("postgres://", "postgresql://")):
        return Postgres(database_url)
    if database_url.startswith("sqlite:///"):
        return SQLite(database_url[len("sqlite:///"):])
    if database_url:
        raise ValueError(f"DATABASE_URL must start with postgresql:// or sqlite:/// (got {database_url.split(':')[0]}:…)")
    return SQLite(Path(data_dir) / "ivr.sqlite3")
