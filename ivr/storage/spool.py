"""What could not be written while the database was down (call records and events, transfer results,
helpdesk documents, callback requests), kept in a local append-only file under IVR_DATA_DIR and
written once the database answers again.

One JSON line per write, appended under an exclusive lock (every worker of a server shares the file).
A replay takes the whole file at once (renamed away under the lock), writes each line, and puts back
the lines that still fail: each write is replayed once."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)


class Spool:
    """The spool file of one server."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.lock_path = self.path.with_suffix(".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, kind: str, args: Mapping) -> None:
        """Keep one write for later."""
        line = json.dumps({"kind": kind, "args": args}, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._locked():
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, line.encode("utf-8"))
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def __len__(self) -> int:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return sum(1 for _ in handle)
        except FileNotFoundError:
            return 0

    def replay(self, writers: Mapping[str, Callable[[Mapping], None]]) -> tuple[int, int]:
        """Write what was kept; (written, still waiting)."""
        with self._locked():
            if not self.path.exists():
                return 0, 0
            taken = self.path.with_suffix(".replaying")
            os.replace(self.path, taken)
        written, waiting = 0, []
        with open(taken, encoding="utf-8") as handle:
            lines = [line for line in handle if line.strip()]
        for index, line in enumerate(lines):
            try:
                item = json.loads(line)
            except ValueError:
                log.error("spool: an unreadable line was dropped: %r", line[:200])
                continue
            try:
                writers[item["kind"]](item["args"])
                written += 1
            except Exception as error:
                log.warning("spool: %s still cannot be written (%s); kept for later", item["kind"], error)
                waiting = lines[index:]
                break
        if waiting:
            with self._locked():
                descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(descriptor, "".join(waiting).encode("utf-8"))
                finally:
                    os.close(descriptor)
        taken.unlink()
        if written:
            log.info("spool: %d write(s) made after the outage, %d still waiting", written, len(waiting))
        return written, len(waiting)

    def _locked(self):
        return _FileLock(self.lock_path)


class _FileLock:
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
    """Tries the spool every `interval` seconds while it holds anything."""

    def __init__(self, spool: Spool, writers: Mapping[str, Callable[[Mapping], None]], interval: float = 10.0):
        super().__init__(name="ivr-spool", daemon=True)
        self.spool, self.writers, self.interval = spool, writers, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            if self.spool.path.exists():
                try:
                    self.spool.replay(self.writers)
                except Exception:
                    log.exception("spool replay failed; tried again later")
