"""The database: embedded SQLite by default, PostgreSQL when DATABASE_URL says so.

Connections opened on first use and kept (PostgreSQL: one per thread; SQLite: one per process,
shared by its threads under a lock), rows as dicts, `?` placeholders in the SQL (translated for
psycopg by `to_psycopg`), and numbered migrations that upgrade an existing database without
losing data."""

from __future__ import annotations

import logging
import os
import re
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .migrations import MIGRATIONS, TYPES

log = logging.getLogger(__name__)


def refused_for_its_data(error: Exception) -> bool:
    """Whether a statement failed for what it carries (a value the database cannot store, a
    constraint), or a fact for its shape (a field missing or of the wrong type): trying it again
    as it is changes nothing. A connection lost, a timeout or a missing table are not: they pass."""
    kinds: tuple = (sqlite3.DataError, sqlite3.IntegrityError, TypeError, ValueError, KeyError)
    try:
        import psycopg

        kinds += (psycopg.DataError, psycopg.IntegrityError)
    except ImportError:
        pass
    return isinstance(error, kinds)


def private_folder(path: Path) -> Path:
    """The server's data folder (what callers said, the spool, the cookie key): made readable by the
    server's user only, whatever the umask; an existing one open to others is named in the log."""
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
    elif path.is_dir() and path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
        log.warning("the data folder %s can be read by other users (mode %o): chmod 700 it", path, path.stat().st_mode & 0o777)
    return path


class Database:
    """What every module needs of a database; SQLite and PostgreSQL implement `_run` and `transaction`."""

    dialect = ""

    def execute(self, sql: str, params: Iterable = ()) -> int:
        """Run one statement; the number of rows it changed."""
        return self._run(sql, params, lambda cursor: cursor.rowcount)

    def query(self, sql: str, params: Iterable = ()) -> list[dict]:
        """Every row of a statement, each a dict."""
        return self._run(sql, params, lambda cursor: cursor.fetchall())

    def one(self, sql: str, params: Iterable = ()) -> dict | None:
        """The first row of a statement, or None."""
        return self._run(sql, params, lambda cursor: cursor.fetchone())

    def executemany(self, sql: str, rows: list) -> None:
        for row in rows:
            self.execute(sql, row)

    def forget_connection(self) -> None:
        """Drop the connection (after a failure, before a fork) so that the next use reconnects."""
        raise NotImplementedError

    def _run(self, sql: str, params: Iterable, read):
        """Run `sql` and return `read(cursor)`, the rows read before anyone else uses the connection."""
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        raise NotImplementedError
        yield self

    def migrate(self) -> int:
        """Bring the schema up to date (safe when several processes start together)."""
        with self.transaction():
            self._lock_schema()
            version = self._schema_version()
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.format(**TYPES[self.dialect]).split(";")):
                    self.execute(statement)
                self._set_schema_version(number)
                if version:
                    log.info("database upgraded to schema version %d", number)
        return len(MIGRATIONS)

    def _lock_schema(self) -> None:
        raise NotImplementedError

    def _schema_version(self) -> int:
        raise NotImplementedError

    def _set_schema_version(self, number: int) -> None:
        raise NotImplementedError


def _dict_row(cursor: sqlite3.Cursor, row: tuple) -> dict:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class SQLite(Database):
    """A SQLite file (WAL, busy timeout): the embedded default.

    One connection per process, shared by its threads under a lock: with one per thread, threads
    fought for SQLite's write lock and each write emptied the others' page cache."""

    dialect = "sqlite"

    def __init__(self, path: Path | str, timeout: float = 3.0):
        self.path = Path(path)
        self.timeout = timeout  # seconds a statement waits for another writer's lock (a backup, an open sqlite3 shell)
        if not self.path.parent.exists():
            private_folder(self.path.parent)
        if not self.path.exists():  # what callers said: readable by the server's user only (SQLite gives its -wal and -shm the same)
            self.path.touch(mode=0o600)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        _SQLITE_DATABASES.add(self)
        self.migrate()

    def connection(self) -> sqlite3.Connection:
        """This process's connection, opened on first use."""
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.row_factory = _dict_row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            # Fewer, larger WAL checkpoints: every webhook rewrites its call's session, and a
            # checkpoint every 1,000 pages (the default) cost ~13 % of the server's CPU under load.
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            self._conn = conn
        return self._conn

    def forget_connection(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def _run(self, sql: str, params: Iterable, read):
        with self._lock:
            return read(self.connection().execute(sql, tuple(params)))

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
        return self.one("PRAGMA user_version")["user_version"]

    def _set_schema_version(self, number: int) -> None:
        self.execute(f"PRAGMA user_version = {int(number)}")


# What psycopg must see differently from SQLite: `?` outside quotes and comments becomes `%s`, and
# every `%` (psycopg reads them everywhere, literals included) is doubled. A `?` inside a string, a
# quoted name or a comment is left as written. An unquoted `?` is always a parameter: for a jsonb
# key test write jsonb_exists(value, 'key'), not value ? 'key'.
_SQL_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|[?%]", re.DOTALL)


def to_psycopg(sql: str) -> str:
    """A statement written with `?` placeholders, in psycopg's `%s` style."""

    def swap(match: re.Match) -> str:
        token = match.group(0)
        return "%s" if token == "?" else token.replace("%", "%%")

    return _SQL_TOKENS.sub(swap, sql)


class Postgres(Database):
    """PostgreSQL through psycopg 3, for many servers sharing records: one connection per thread."""

    dialect = "postgres"

    def __init__(self, url: str, timeout: float = 3.0):
        import psycopg  # only needed when DATABASE_URL points at PostgreSQL

        self._psycopg = psycopg
        self.url = url
        self.timeout = timeout  # seconds to connect, and for any statement: a stuck server fails the request, not the worker
        self._local = threading.local()
        self._opened: weakref.WeakSet = weakref.WeakSet()  # every thread's connection, to close them all at the end
        self._watchdog = _Watchdog(timeout + 1)  # past statement_timeout: the server does not answer at all
        self._schema_lock = threading.Lock()
        self._schema_ready = False  # migrated at first use, not at start-up: a worker starts with the database down

    def _ensure_schema(self) -> None:
        with self._schema_lock:
            if self._schema_ready:
                return
            self._local.migrating = True
            try:
                self.migrate()
                self._schema_ready = True
            finally:
                self._local.migrating = False

    def connection(self):
        """This thread's connection, opened on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            from psycopg.rows import dict_row

            conn = self._psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=max(1, round(self.timeout)))
            conn.execute(f"SET statement_timeout = {int(self.timeout * 1000)}")
            self._local.conn = conn
            self._opened.add(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection (threads that ended leave theirs open until collected)."""
        for conn in list(self._opened):
            try:
                conn.close()
            except self._psycopg.Error:
                pass
        self._local.conn = None

    def forget_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except self._psycopg.Error:
                pass

    def _run(self, sql: str, params: Iterable, read):
        if not self._schema_ready and not getattr(self._local, "migrating", False):
            self._ensure_schema()
        kept = getattr(self._local, "conn", None) is not None and not getattr(self._local, "in_transaction", False)
        try:
            return self._statement(sql, params, read)
        except self._psycopg.OperationalError:
            broken = kept and self._local.conn is not None and self._local.conn.broken and not self._watchdog.cut(self._local.conn)
            self.forget_connection()  # the server went away: reconnect
            if not broken:
                raise
        # The connection this thread kept was cut (a restart of the server): the statement never ran
        # on it; once more on a new connection.
        return self._statement(sql, params, read)

    def _statement(self, sql: str, params: Iterable, read):
        conn = self.connection()
        with self._watchdog.watching(conn), conn.cursor() as cursor:
            cursor.execute(to_psycopg(sql), tuple(params))
            return read(cursor)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        with self.connection().transaction():
            self._local.in_transaction = True  # a statement that fails in it is not tried again alone
            try:
                yield self
            finally:
                self._local.in_transaction = False

    def _lock_schema(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(4242)")
        self.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")

    def _schema_version(self) -> int:
        row = self.one("SELECT version FROM schema_version")
        return row["version"] if row else 0

    def _set_schema_version(self, number: int) -> None:
        self.execute("DELETE FROM schema_version")
        self.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))


class _Watchdog:
    """Cuts the connection of a statement that has waited past `seconds` for a server that does not
    answer at all (stopped, or its host gone): statement_timeout is the server's own and cannot act
    then, and psycopg's blocking calls have no timeout of their own. One thread per process, started
    at the first statement; watching a statement is two dictionary operations."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._watched: dict[int, tuple[object, float]] = {}
        self._cut: set[int] = set()
        self._started = threading.Lock()
        self._pid = 0  # the process whose thread watches (a forked worker starts its own)

    @contextmanager
    def watching(self, conn):
        if self._pid != os.getpid():
            with self._started:
                if self._pid != os.getpid():
                    threading.Thread(target=self._run, name="ivr-db-watchdog", daemon=True).start()
                    self._pid = os.getpid()
        key = id(conn)
        self._watched[key] = (conn, time.monotonic() + self.seconds)
        try:
            yield
        finally:
            self._watched.pop(key, None)

    def cut(self, conn) -> bool:
        """Whether the watchdog cut this connection (then the statement is not tried again)."""
        if id(conn) in self._cut:
            self._cut.discard(id(conn))
            return True
        return False

    def _run(self) -> None:
        while True:
            time.sleep(min(0.25, self.seconds / 4))
            now = time.monotonic()
            for key, (conn, deadline) in list(self._watched.items()):
                if now < deadline or self._watched.pop(key, None) is None:
                    continue
                log.error("PostgreSQL has not answered a statement in %.0f s: its connection is cut", self.seconds)
                self._cut.add(key)
                try:
                    with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
                        sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns; psycopg raises OperationalError
                except OSError:
                    pass


# A SQLite connection must not cross a fork (gunicorn --preload): each child opens its own, and
# leaves the parent's alone (never used nor closed there).
_SQLITE_DATABASES: weakref.WeakSet[SQLite] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for database in list(_SQLITE_DATABASES):
        database._conn = None
        database._lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def connect(database_url: str, data_dir: Path, timeout: float = 3.0) -> Database:
    """PostgreSQL for a postgres:// URL, else the SQLite file in `data_dir`."""
    if database_url.startswith(("postgres://", "postgresql://")):
        return Postgres(database_url, timeout)
    if database_url.startswith("sqlite:///"):
        return SQLite(database_url[len("sqlite:///"):], timeout)
    if database_url:
        raise ValueError(f"DATABASE_URL must start with postgresql:// or sqlite:/// (got {database_url.split(':')[0]}:…)")
    return SQLite(Path(data_dir) / "ivr.sqlite3", timeout)
