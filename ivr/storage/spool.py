"""The journal of one server: every fact a call writes besides its answer (call records and events,
transfer results, helpdesk documents, callback requests, the rating SMS), kept in a local
append-only file under IVR_DATA_DIR and applied to the database by a thread of each worker, at once
when the database answers, once it answers again otherwise (docs/journal.md).

One JSON line per fact, appended under an exclusive lock (every worker of a server shares the file)
and synced to the disk by the replay thread when the database does not take them at once. A replay takes the file by renaming it to
a name of its own and holds a lock on what it took: a replay killed midway leaves its file, which
the next replay (any worker's) finds unlocked and takes over before the newer lines. Lines are
applied in their order; when the database stops answering, the rest stays where it was, in front of
anything newer. Each fact can be applied twice without changing more than once (call records merge,
events are numbered, the agents' lists are keyed by call), so a line replayed again after a kill, or
a statement that ran when a frozen database resumed and then again from the journal, counts once.

A line the database refuses for what it carries while it answers (a value it cannot store, a
constraint; or a line whose shape this release does not know), tried twice, is a poison line: it is set aside
with the reason (`set_aside`, listed, retried or dropped by `ivr journal`) and the rest flows on."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import orjson

from .. import metrics
from .db import refused_for_its_data

log = logging.getLogger(__name__)
TAKEN = ".replaying"  # the suffix of a file taken by a replay


class Spool:
    """The journal file of one server."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.lock_path = self.path.with_suffix(".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.unsynced = False  # appended by this process since the last sync to the disk

    def add(self, kind: str, args: Mapping) -> None:
        """Keep one write for later."""
        self.add_all([(kind, args)])

    def add_all(self, facts: list[tuple[str, Mapping]]) -> None:
        """Keep writes for later, in their order, in one append. The append is safe from the process's
        death at once (the kernel has it); the replay thread applies it within `Replayer.gather`
        seconds, or, when the database does not answer, syncs it to the disk (`sync`)."""
        if facts:
            data = b"".join(orjson.dumps({"kind": kind, "args": args}) + b"\n" for kind, args in facts)
            with _locked(self.lock_path):
                _append(self.path, data)
            self.unsynced = True

    def sync(self) -> None:
        """Sync what this process appended to the disk (one sync for every append since the last)."""
        if not self.unsynced:
            return
        self.unsynced = False
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:  # taken by a replay meanwhile: it is applied, or synced by it
            return
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def __len__(self) -> int:
        return sum(_count_lines(path) for path in (self.path, *self.taken()))

    def taken(self) -> list[Path]:
        """Files taken by replays (under way, or left by one that was killed), oldest first."""
        prefix, found = self.path.name + ".", []
        with os.scandir(self.path.parent) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and entry.name.endswith(TAKEN):
                    try:
                        found.append((entry.stat().st_mtime_ns, entry.name))
                    except FileNotFoundError:  # finished meanwhile
                        continue
        return [self.path.with_name(name) for _, name in sorted(found)]

    def replay(self, writers: Mapping[str, Callable[[Mapping], None]],
               set_aside: Callable[[str, str, str, str], None] | None = None,
               answers: Callable[[], bool] = lambda: False) -> tuple[int, int]:
        """Write what was kept, oldest first: (written, still waiting). `answers` says whether the
        database answers (a line refused then is a poison line, handed to `set_aside`)."""
        written, skipped = 0, False
        for path in self.taken():  # a replay killed midway, or one stopped by an outage: first
            done, stopped = self._replay_file(path, writers, set_aside, answers)
            written += done
            if stopped:
                return written, len(self)
            skipped |= path.exists()  # another replay has it
        with _locked(self.lock_path):
            if not self.path.exists():
                return written, len(self) if skipped else 0
            taken = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}{TAKEN}")
            os.replace(self.path, taken)
        done, stopped = self._replay_file(taken, writers, set_aside, answers)
        return written + done, len(self) if stopped or skipped else 0

    def _replay_file(self, path: Path, writers, set_aside, answers) -> tuple[int, bool]:
        """Replay one taken file under its own lock (skipped when another replay holds it):
        (lines written, whether the database stopped answering)."""
        try:
            descriptor = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return 0, False
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another replay has it
                return 0, False
            try:
                if os.stat(path).st_ino != os.fstat(descriptor).st_ino:  # rewritten by the replay that held it
                    return 0, False
            except FileNotFoundError:  # finished by the replay that held it
                return 0, False
            with open(descriptor, encoding="utf-8", closefd=False) as handle:
                lines = [line for line in handle if line.strip()]
            written = 0
            for index, line in enumerate(lines):
                outcome = _write_line(line, writers, set_aside, answers)
                if outcome == "waiting":
                    _rewrite(path, lines[index:])
                    if written:
                        log.info("journal: %d fact(s) applied, %d wait for the database", written, len(lines) - index)
                    return written, True
                written += outcome == "written"
            path.unlink()
            if written:
                log.debug("journal: %d fact(s) applied", written)
            return written, False
        finally:
            os.close(descriptor)


def _write_line(line: str, writers, set_aside, answers) -> str:
    """One line: "written", "set aside", or "waiting" (the database does not answer)."""
    try:
        item = orjson.loads(line)
        kind, args = str(item["kind"]), dict(item["args"])
    except (ValueError, KeyError, TypeError) as error:
        return _set_aside(set_aside, "?", "", line, f"ligne illisible ({type(error).__name__}: {error})")
    call_sid = str(args.get("call_sid") or (args.get("session") or {}).get("call_sid") or "")
    write = writers.get(kind)
    if write is None:
        return _set_aside(set_aside, kind, call_sid, line, f"écriture inconnue de cette version : {kind!r}")
    for attempt in (1, 2):
        try:
            write(args)
            return "written"
        except Exception as error:
            if not refused_for_its_data(error) or not answers():
                log.warning("spool: %s still cannot be written (%s: %s); kept for later", kind, type(error).__name__, str(error)[:300])
                metrics.STORE_ERRORS.labels("database").inc()
                return "waiting"
            if attempt == 2:
                return _set_aside(set_aside, kind, call_sid, line, f"{type(error).__name__}: {error}"[:500])
    return "waiting"  # not reached


def _set_aside(set_aside, kind: str, call_sid: str, line: str, reason: str) -> str:
    if set_aside is None:
        log.warning("spool: a %s line refused while the database answers is kept for later: %s", kind, reason)
        return "waiting"
    try:
        set_aside(kind, call_sid, line, reason)
    except Exception as error:
        log.warning("spool: a refused line cannot be set aside (%s); kept for later", error)
        return "waiting"
    log.error("journal: a %s fact that cannot be applied was set aside (ivr journal): %s", kind, reason)
    return "set aside"


def _append(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)


def _rewrite(path: Path, lines: list[str]) -> None:
    """The lines still waiting, in place of the taken file (whole or not at all)."""
    fresh = path.with_name(path.name + ".new")
    descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, "".join(lines).encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(fresh, path)


def _count_lines(path: Path) -> int:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return sum(1 for line in handle if line.strip())
    except FileNotFoundError:
        return 0


class _locked:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.descriptor, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.descriptor, fcntl.LOCK_UN)
        os.close(self.descriptor)


class Replayer(threading.Thread):
    """Applies the spool when nudged (a webhook appended a fact), `gather` seconds later so that one
    round applies what several webhooks appended (under load a round's own cost, a few file
    operations, is shared), and every `interval` seconds while it holds anything (after an outage)."""

    def __init__(self, spool: Spool, writers: Mapping[str, Callable[[Mapping], None]], interval: float = 10.0,
                 set_aside: Callable[[str, str, str, str], None] | None = None, answers: Callable[[], bool] = lambda: False,
                 gather: float = 0.05):
        super().__init__(name="ivr-spool", daemon=True)
        self.spool, self.writers, self.interval, self.gather = spool, writers, interval, gather
        self.set_aside, self.answers = set_aside, answers
        self.stopped = threading.Event()
        self._changed = threading.Condition()
        self._asked = self._done = 0  # nudges received; nudges whose facts a finished round has seen
        self._hurry = False  # someone waits for the round (settle): no gathering

    def nudge(self) -> None:
        with self._changed:
            self._asked += 1
            self._changed.notify_all()

    def stop(self) -> None:
        self.stopped.set()
        with self._changed:
            self._changed.notify_all()

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until a round that began after the last nudge has ended (what was appended then is
        applied, or waits for the database): False after `timeout`."""
        with self._changed:
            target = self._asked
            self._hurry = True
            self._changed.notify_all()
            return self._changed.wait_for(lambda: self._done >= target or self.stopped.is_set() or not self.is_alive(), timeout)

    def run(self) -> None:
        pause, retry = self.interval, None  # after a round that left facts waiting: soon, then less and less often
        while not self.stopped.is_set():
            with self._changed:
                self._changed.wait_for(lambda: self._asked > self._done or self.stopped.is_set(), pause)
                if self._asked > self._done and not self._hurry:  # what the next webhooks append joins this round
                    self._changed.wait_for(lambda: self._hurry or self.stopped.is_set(), self.gather)
                self._hurry = False
                target = self._asked
            if self.stopped.is_set():
                return
            waiting = 0
            if self.spool.path.exists() or self.spool.taken():
                try:
                    waiting = self.spool.replay(self.writers, self.set_aside, self.answers)[1]
                except Exception:
                    log.exception("spool replay failed; tried again later")
                    waiting = 1
            if waiting:  # applied, the facts are the database's to keep; waiting for it, they go to the disk now
                self.spool.sync()
            retry = min(retry * 2, self.interval) if waiting and retry else min(0.25, self.interval) if waiting else None
            pause = retry or self.interval
            with self._changed:
                self._done = target
                self._changed.notify_all()
