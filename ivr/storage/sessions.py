"""Call sessions by CallSid, with expiry and compare-and-set saves: SQL (SQLite by default, or
PostgreSQL) or Redis for many servers.

Two webhooks of one call can race (a Twilio retry, a slow network): each save names the revision
it started from, and a save over a newer revision raises Conflict instead of losing a write; the
handler then replays its event on the fresh session. A session is one JSON document."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from typing import Protocol

import orjson

from ..call.session import Session
from .db import Database

log = logging.getLogger(__name__)
DEFAULT_TTL = 4 * 3600  # a session outlives any real call; expired ones are purged


class Conflict(Exception):
    """Another request saved this call's session first."""


class StoreUnavailable(Exception):
    """The session store does not answer (after its own retry): do not ask it again in this request."""


class SessionStore(Protocol):
    """Where the state of calls in progress lives between two webhooks."""

    def load(self, call_sid: str) -> Session | None: ...

    def save(self, session: Session, force: bool = False) -> int: ...

    def take(self, call_sid: str) -> Session | None: ...

    def over(self, call_sid: str) -> bool: ...

    def ping(self) -> None: ...


def encode(session: Session) -> str:
    """The session as one JSON document."""
    return orjson.dumps(session.to_dict()).decode()


def decode(data: str | bytes, revision: int) -> Session:
    """The session `encode` wrote, at the store's `revision`."""
    head, _, entries = (data.decode() if isinstance(data, bytes) else data).partition("\n")
    fields = orjson.loads(head)
    if entries:  # written by the release before this one (history on a second line): calls in progress go on
        fields["history"] = orjson.loads(entries)
    return Session.from_dict(fields, revision=revision)


@contextmanager
def _sql_unavailable():
    """The SQL store locked past its timeout, or unreachable: the store is down for this request
    (asked once, as Redis is), not a failure of our code."""
    try:
        yield
    except Exception as error:
        if type(error).__name__ != "OperationalError":
            raise
        raise StoreUnavailable(str(error)) from error


class SqlSessionStore:
    """Sessions in the SQL database."""

    PURGE_EVERY = 500  # saves between two purges of expired sessions and marks of ended calls…
    PURGE_INTERVAL = 3600  # …or seconds, whichever comes first on a server taking calls

    def __init__(self, db: Database, ttl: int = DEFAULT_TTL):
        self.db = db
        self.ttl = ttl
        self._saves = 0
        self._next_purge = time.time() + self.PURGE_INTERVAL

    def load(self, call_sid: str) -> Session | None:
        with _sql_unavailable():
            row = self.db.one("SELECT data, revision FROM sessions WHERE call_sid = ? AND expires_at > ? AND revision >= 0",
                              (call_sid, time.time()))
        return None if row is None else decode(row["data"], row["revision"])

    def save(self, session: Session, force: bool = False) -> int:
        """Store `session` if nobody saved a newer one since it was loaded at `session.revision` (in
        any case with `force`, unless the call is over); the revision it is now stored at."""
        with _sql_unavailable():
            return self._save(session, force)

    def _save(self, session: Session, force: bool) -> int:
        if session.revision < 0:  # taken at the end of the call: over for good
            raise Conflict(session.call_sid)
        now = time.time()
        data = encode(session)  # the revision is the row's, not the document's
        if force:
            row = self.db.one(
                "INSERT INTO sessions (call_sid, data, expires_at, revision) VALUES (?, ?, ?, 1) "
                "ON CONFLICT (call_sid) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, "
                "revision = sessions.revision + 1 WHERE sessions.revision >= 0 RETURNING revision",
                (session.call_sid, data, now + self.ttl),
            )
            if row is None:  # the call is over (its mark stays)
                raise Conflict(session.call_sid)
            revision = row["revision"]
        elif session.revision == 0:
            changed = self.db.execute(
                "INSERT INTO sessions (call_sid, data, expires_at, revision) VALUES (?, ?, ?, 1) ON CONFLICT (call_sid) DO NOTHING",
                (session.call_sid, data, now + self.ttl),
            )
            if not changed:
                raise Conflict(session.call_sid)
            revision = 1
        else:
            revision = session.revision + 1
            changed = self.db.execute(
                "UPDATE sessions SET data = ?, expires_at = ?, revision = ? WHERE call_sid = ? AND revision = ?",
                (data, now + self.ttl, revision, session.call_sid, session.revision),
            )
            if not changed:
                raise Conflict(session.call_sid)
        self._saves += 1
        if self._saves % self.PURGE_EVERY == 0 or now >= self._next_purge:
            self._next_purge = now + self.PURGE_INTERVAL
            self.db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        return revision

    def ping(self) -> None:
        """Raise if the sessions cannot be written (a write that changes nothing: another writer's
        lock on an SQLite file blocks writes, not reads)."""
        self.db.execute("UPDATE sessions SET expires_at = expires_at WHERE call_sid = ''")

    TAKE_GRACE = 3600  # seconds the mark of an ended call stays: a late webhook finds the call over

    def over(self, call_sid: str) -> bool:
        """Whether the call's status came (its session taken within TAKE_GRACE)."""
        return self.db.one("SELECT 1 AS over FROM sessions WHERE call_sid = ? AND revision = -1", (call_sid,)) is not None

    def take(self, call_sid: str) -> Session | None:
        """The call is over: its session is returned (None if it had none, or it had expired) and
        marked over (revision -1): no load returns it, no save overwrites it, and the mark is purged
        with the expired sessions once TAKE_GRACE has passed. The mark keeps nothing the caller said
        (the call's record has it)."""
        now = time.time()
        row = self.db.one("UPDATE sessions SET revision = -1, expires_at = ? WHERE call_sid = ? AND revision >= 0 AND expires_at > ? "
                          "RETURNING data", (now + self.TAKE_GRACE, call_sid, now))
        if row is not None:
            self.db.execute("UPDATE sessions SET data = '' WHERE call_sid = ? AND revision = -1", (call_sid,))
            return decode(row["data"], -1)
        self.db.execute("INSERT INTO sessions (call_sid, data, expires_at, revision) VALUES (?, '', ?, -1) "
                        "ON CONFLICT (call_sid) DO UPDATE SET data = '', revision = -1, expires_at = excluded.expires_at",
                        (call_sid, now + self.TAKE_GRACE))
        return None


# Compare-and-set in one round trip: write only if the stored revision is the one we loaded. The
# same save sent again (redis-py retries a command whose reply was lost) finds its own write and
# succeeds, rather than replaying the caller's key press on top of it.
_SAVE = """
local current = redis.call('HGET', KEYS[1], 'rev')
if redis.call('HEXISTS', KEYS[1], 'over') == 1 then
  return 0
end
if ARGV[4] == '1' or (current == false and ARGV[1] == '0') or current == ARGV[1] then
  local rev = tonumber(ARGV[1]) + 1
  if ARGV[4] == '1' and current then rev = tonumber(current) + 1 end
  redis.call('HSET', KEYS[1], 'rev', rev, 'data', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return rev
end
if current and tonumber(current) == tonumber(ARGV[1]) + 1 and redis.call('HGET', KEYS[1], 'data') == ARGV[2] then
  return tonumber(current)
end
return 0
"""
# The call is over: its session is returned and marked over by this request's token (no load finds
# it, no save changes it), a call without a session too (its first webhook may be saving it now).
# The mark stays a short while: the same command sent again after a lost reply (the same token)
# returns the session again; any other request gets nothing.
_TAKE = """
local over = redis.call('HGET', KEYS[1], 'over')
if over and over ~= ARGV[2] then
  return {false, false}
end
local found = redis.call('HMGET', KEYS[1], 'data', 'rev')
if not over then
  redis.call('HSET', KEYS[1], 'over', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return found
"""

class Breaker:
    """After a command that failed or took longer than `slow` seconds, this process stops asking
    the store: each request fails at once (its caller is put through with what the request says)
    instead of holding a thread for the timeout, so the threads stay free for the fallback and for
    what can still be served. A thread of its own asks the store (`probe`) every `every` seconds;
    as soon as it answers in time, requests ask it again."""

    def __init__(self, slow: float, probe: Callable[[], None], every: float = 0.25):
        self.slow, self.probe, self.every = slow, probe, every
        self._open = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    def check(self) -> None:
        if self._open.is_set():
            raise StoreUnavailable("the session store failed or was slow a moment ago: not asked until it answers again")

    def record(self, seconds: float, failed: bool) -> None:
        if not (failed or seconds > self.slow):
            return
        with self._lock:
            if self._open.is_set():
                return
            self._open.set()
        log.warning("session store %s (%.1f s): not asked again by this process until it answers in time",
                    "failed" if failed else "slow", seconds)
        threading.Thread(target=self._wait_for_store, name="ivr-store-probe", daemon=True).start()

    def stop(self) -> None:
        """No more probes (the store is closed with its process's services)."""
        self._stopped.set()

    def _wait_for_store(self) -> None:
        while not self._stopped.wait(self.every):
            began = time.monotonic()
            try:
                self.probe()
            except Exception:  # still down: asked again
                continue
            if time.monotonic() - began <= self.slow:
                self._open.clear()
                log.warning("session store answers again: asked by this process's requests")
                return


class RedisSessionStore:
    """Sessions in Redis (REDIS_URL): shared by every server, expiring on their own.

    Each thread has its own client holding one connection (redis-py's `single_connection_client`):
    a webhook's two commands then skip the pool's checkout, which polls the socket at every
    command. Short socket timeouts and one retry (a dropped idle connection, a restarted Redis):
    a Redis that does not answer fails the request within seconds, and the caller is put through."""

    TAKE_GRACE = 3600  # seconds a taken session stays, marked over: a late webhook finds the call over

    def __init__(self, url: str, ttl: int = DEFAULT_TTL, prefix: str = "ivr:", timeout: float = 2.0):
        import redis  # only needed when REDIS_URL is set
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        self._connect = lambda: redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, single_connection_client=True,
                                                     retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1))
        self.ttl = ttl
        self.prefix = prefix
        self._local = threading.local()
        self._errors = (redis.ConnectionError, redis.TimeoutError, OSError)
        self.breaker = Breaker(slow=timeout / 2, probe=self._ping_fresh)

    @property
    def redis(self):
        """This thread's client, made (and connected) at its first command: a server whose Redis is
        down still starts, and each request fails to a human until Redis is back."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._connect()
            self._local.save, self._local.take = client.register_script(_SAVE), client.register_script(_TAKE)
        return client

    def key(self, call_sid: str) -> str:
        """The Redis key of a call's session."""
        return f"{self.prefix}session:{call_sid}"

    def load(self, call_sid: str) -> Session | None:
        with self._unavailable():
            data, revision, over = self.redis.hmget(self.key(call_sid), "data", "rev", "over")
        return None if data is None or over else decode(data, int(revision or 0))

    def save(self, session: Session, force: bool = False) -> int:
        with self._unavailable():  # the document does not hold the revision: the script keeps it
            client = self.redis
            revision = self._local.save(keys=[self.key(session.call_sid)], args=[session.revision, encode(session), self.ttl, int(force)],
                                        client=client)
        if not revision:
            raise Conflict(session.call_sid)
        return int(revision)

    def ping(self) -> None:
        self.redis.ping()

    def close(self) -> None:
        """Stop the breaker's probe (its process's services stop)."""
        self.breaker.stop()

    def _ping_fresh(self) -> None:
        """A ping on a connection of its own (the breaker's probe)."""
        client = self._connect()
        try:
            client.ping()
        finally:
            client.close()

    def over(self, call_sid: str) -> bool:
        """Whether the call's status came (its session taken within TAKE_GRACE)."""
        with self._unavailable():
            return bool(self.redis.hexists(self.key(call_sid), "over"))

    def take(self, call_sid: str) -> Session | None:
        with self._unavailable():
            client = self.redis
            data, revision = self._local.take(keys=[self.key(call_sid)], args=[self.TAKE_GRACE, uuid.uuid4().hex], client=client)
        return None if data is None else decode(data, int(revision or 0))

    @contextmanager
    def _unavailable(self):
        self.breaker.check()
        began = time.monotonic()
        try:
            yield
        except self._errors as error:
            self._local.client = None  # a new connection next time
            self.breaker.record(time.monotonic() - began, failed=True)
            raise StoreUnavailable(str(error)) from error
        self.breaker.record(time.monotonic() - began, failed=False)
