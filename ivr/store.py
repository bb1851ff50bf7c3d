"""Call sessions by CallSid, with expiry and compare-and-set saves: SQL (SQLite by default, or
PostgreSQL) or Redis for many servers.

Two webhooks of one call can race (a Twilio retry, a slow network): each save names the revision
it started from, and a save over a newer revision raises Conflict instead of losing a write; the
handler then replays its event on the fresh session."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

import orjson

from .db import Database
from .engine import Session

DEFAULT_TTL = 4 * 3600  # a session outlives any real call; expired ones are purged


class Conflict(Exception):
    """Another request saved this call's session first."""


class SessionStore(Protocol):
    """Where the state of calls in progress lives between two webhooks."""

    def load(self, call_sid: str) -> Session | None: ...

    def save(self, session: Session, force: bool = False) -> Session: ...

    def take(self, call_sid: str) -> Session | None: ...


class History(Sequence):
    """A call's history as read back from the store: the stored entries stay one JSON text until
    something reads them (a transfer's context, the records at the call's end). Most webhooks only
    count them and append one or two (`history + (entry,)`): parsing them back at every webhook,
    then writing them out again, cost 45,000 instructions a webhook (bench/instructions.py)."""

    __slots__ = ("_raw", "_count", "_added", "_stored")

    def __init__(self, raw: str | bytes, count: int, added: tuple[Mapping, ...] = (), stored: tuple | None = None):
        self._raw = raw  # the stored entries: a JSON array
        self._count = count  # how many it holds
        self._added = added  # entries appended since
        self._stored = stored  # the stored entries, once parsed

    def entries(self) -> tuple[Mapping, ...]:
        if self._stored is None:
            self._stored = tuple(orjson.loads(self._raw))
        return self._stored + self._added

    def __len__(self) -> int:
        return self._count + len(self._added)

    def __getitem__(self, index):
        return self.entries()[index]

    def __iter__(self) -> Iterator[Mapping]:
        return iter(self.entries())

    def __add__(self, other: tuple) -> History:
        return History(self._raw, self._count, self._added + tuple(other), self._stored)

    def __eq__(self, other) -> bool:
        if isinstance(other, (tuple, History)):
            return self.entries() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like a tuple of dicts

    def __repr__(self) -> str:
        return f"History({self.entries()!r})"

    def json(self, start: int = 0) -> str:
        """The entries from `start` on as a JSON array, the stored ones copied as they were read."""
        if start >= self._count:
            return orjson.dumps(self._added[start - self._count:]).decode()
        if start or self._count == 0:
            return orjson.dumps(self.entries()[start:]).decode()
        raw = self._raw if isinstance(self._raw, str) else self._raw.decode()
        if not self._added:
            return raw
        return raw[:-1] + "," + orjson.dumps(self._added).decode()[1:]  # [stored…] + [added…]


def history_json(history: Sequence[Mapping], start: int = 0) -> str:
    """The entries of a session's history from `start` on, as a JSON array."""
    if isinstance(history, History):
        return history.json(start)
    return orjson.dumps(tuple(history[start:])).decode()


def _encode(session: Session) -> str:
    """The session's fields as one line of JSON, its history's count in place of the entries, then
    the entries (a JSON array) on a second line, read back only when needed (`History`).

    Compact JSON through orjson: the session is read and rewritten at every webhook, and the
    standard json module was a fifth of a webhook's CPU time (bench/wsgi_cost.py --profile)."""
    fields = session.to_dict()
    history = fields["history"]
    fields["history"] = len(history)
    return orjson.dumps(fields).decode() + "\n" + history_json(history)


def _decode(data: str | bytes, revision: int) -> Session:
    newline = "\n" if isinstance(data, str) else b"\n"
    head, separated, entries = data.partition(newline)  # compact JSON holds no raw newline
    fields = orjson.loads(head)
    if not separated:  # saved before the history had a line of its own: one JSON object
        return Session.from_dict(fields, revision=revision)
    count = fields.pop("history")
    return Session.from_dict(fields, revision=revision, history=History(entries, count))


class SqlSessionStore:
    """Sessions in the SQL database."""

    PURGE_EVERY = 500  # saves between two purges of expired sessions

    def __init__(self, db: Database, ttl: int = DEFAULT_TTL):
        self.db = db
        self.ttl = ttl
        self._saves = 0

    def load(self, call_sid: str) -> Session | None:
        row = self.db.one("SELECT data, revision FROM sessions WHERE call_sid = ? AND expires_at > ?", (call_sid, time.time()))
        if row is None:
            return None
        return _decode(row["data"], row["revision"])

    def save(self, session: Session, force: bool = False) -> Session:
        """Store `session` if nobody saved a newer one since it was loaded; the saved session."""
        now = time.time()
        saved = session.evolve(revision=session.revision + 1)
        data = _encode(saved)
        if force:
            self.db.execute(
                "INSERT INTO sessions (call_sid, data, expires_at, revision) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (call_sid) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, "
                "revision = sessions.revision + 1",
                (session.call_sid, data, now + self.ttl, saved.revision),
            )
        elif session.revision == 0:
            changed = self.db.execute(
                "INSERT INTO sessions (call_sid, data, expires_at, revision) VALUES (?, ?, ?, 1) ON CONFLICT (call_sid) DO NOTHING",
                (session.call_sid, data, now + self.ttl),
            )
            if not changed:
                raise Conflict(session.call_sid)
        else:
            changed = self.db.execute(
                "UPDATE sessions SET data = ?, expires_at = ?, revision = ? WHERE call_sid = ? AND revision = ?",
                (data, now + self.ttl, saved.revision, session.call_sid, session.revision),
            )
            if not changed:
                raise Conflict(session.call_sid)
        self._saves += 1
        if self._saves % self.PURGE_EVERY == 0:
            self.db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        return saved

    def take(self, call_sid: str) -> Session | None:
        """Remove the call's session and return it (None if it had none or it had expired), in one
        statement: the call is over."""
        rows = self.db.query("DELETE FROM sessions WHERE call_sid = ? RETURNING data, revision, expires_at", (call_sid,))
        if not rows or rows[0]["expires_at"] <= time.time():
            return None
        return _decode(rows[0]["data"], rows[0]["revision"])


# Compare-and-set in one round trip: write only if the stored revision is the one we loaded.
_SAVE = """
local current = redis.call('HGET', KEYS[1], 'rev')
if ARGV[4] == '1' or (current == false and ARGV[1] == '0') or current == ARGV[1] then
  local rev = tonumber(ARGV[1]) + 1
  if ARGV[4] == '1' and current then rev = tonumber(current) + 1 end
  redis.call('HSET', KEYS[1], 'rev', rev, 'data', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return rev
end
return 0
"""


# Forks of this process so far, as seen from the child: a connection never crosses a fork.
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class _Wire:
    """One thread's connection to Redis. redis-py opens it (the URL, TLS, AUTH, the database,
    timeouts); commands then go out packed by hiredis and replies come back through hiredis's reader:
    redis-py's per-command layers cost 49,000 instructions a round trip, this 15,000 (callgrind)."""

    def __init__(self, pool):
        import hiredis

        self.connection = pool.connection_class(**pool.connection_kwargs)
        self.connection.connect()
        self.socket = self.connection._sock  # redis-py's connected (and, for rediss://, TLS) socket
        self.reader = hiredis.Reader()
        self.pack = hiredis.pack_command
        self.forks = _forks  # a child process (gunicorn --preload) opens its own

    def exchange(self, commands: tuple[tuple, ...]) -> list:
        """Send the commands together, read their replies (error replies as hiredis.ReplyError)."""
        self.socket.sendall(b"".join([self.pack(command) for command in commands]))
        replies = []
        while len(replies) < len(commands):
            reply = self.reader.gets()
            if reply is not False:
                replies.append(reply)
                continue
            data = self.socket.recv(65536)
            if not data:
                raise ConnectionResetError("Redis closed the connection")
            self.reader.feed(data)
        return replies

    def close(self) -> None:
        self.connection.disconnect()


class RedisSessionStore:
    """Sessions in Redis (REDIS_URL): shared by every server, expiring on their own.

    The commands of every webhook (load, compare-and-set save) go over one connection per thread,
    kept open (`_Wire`): redis-py's per-command client path (pool checkout, liveness poll, hooks,
    packing and parsing layers) cost more than the round trip itself."""

    def __init__(self, url: str, ttl: int = DEFAULT_TTL, prefix: str = "ivr:"):
        import hiredis
        import redis  # only needed when REDIS_URL is set

        self.redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.ttl = ttl
        self.prefix = prefix
        self._errors = (OSError, hiredis.ProtocolError, redis.ConnectionError, redis.TimeoutError)
        self._reply_error = hiredis.ReplyError
        self._response_error = redis.ResponseError
        self._sha = hashlib.sha1(_SAVE.encode()).hexdigest()  # loaded into Redis on first NOSCRIPT
        self._local = threading.local()

    def _key(self, call_sid: str) -> str:
        return f"{self.prefix}session:{call_sid}"

    def _command(self, *args):
        return self._pipeline(args)[0]

    def _pipeline(self, *commands: tuple) -> list:
        """Commands sent together on this thread's connection, their answers read together (one
        round trip); once more on a new connection if it broke (Redis restarted, an idle connection
        dropped). A save sent twice is harmless: the second finds the revision moved and the
        request replays its event on the fresh session."""
        for attempt in (1, 2):
            wire = getattr(self._local, "wire", None)
            if wire is not None and wire.forks != _forks:
                wire = None  # the parent's connection, inherited by fork: left to the parent
            try:
                if wire is None:
                    wire = self._local.wire = _Wire(self.redis.connection_pool)
                replies = wire.exchange(commands)
            except self._errors:
                self._local.wire = None
                if wire is not None:
                    wire.close()
                if attempt == 2:
                    raise
                continue
            errors = [reply for reply in replies if isinstance(reply, self._reply_error)]
            if not errors:
                return replies
            if attempt == 1 and any(str(error).startswith("NOSCRIPT") for error in errors):
                # First save, or Redis restarted and forgot the script: load it, send again.
                wire.exchange((("SCRIPT", "LOAD", _SAVE),))
                continue
            raise self._response_error(str(errors[0]))
        raise AssertionError("unreachable")

    def load(self, call_sid: str) -> Session | None:
        data, revision = self._command("HMGET", self._key(call_sid), "data", "rev")
        if data is None:
            return None
        return _decode(data, int(revision or 0))

    def save(self, session: Session, force: bool = False) -> Session:
        saved = session.evolve(revision=session.revision + 1)
        data = _encode(saved)
        revision = self._command("EVALSHA", self._sha, 1, self._key(session.call_sid), session.revision, data, self.ttl, int(force))
        if not revision:
            raise Conflict(session.call_sid)
        return saved.evolve(revision=int(revision))

    def take(self, call_sid: str) -> Session | None:
        key = self._key(call_sid)
        *_, (values, _deleted) = self._pipeline(("MULTI",), ("HMGET", key, "data", "rev"), ("DEL", key), ("EXEC",))
        data, revision = values
        return None if data is None else _decode(data, int(revision or 0))
