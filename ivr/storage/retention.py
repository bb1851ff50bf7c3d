"""How long what callers said is kept: `purge` deletes calls, their events, delivered helpdesk
documents, callback requests, SMS records and console traces older than a period (`ivr purge`,
or IVR_RETENTION_DAYS applied once a day by each server)."""

from __future__ import annotations

import logging
import random
import threading
import time

from .db import Database

log = logging.getLogger(__name__)
DAY = 86400

# What goes, table by table, and the time it is judged by.
_PURGES = (
    ("events", "DELETE FROM events WHERE at < ?"),
    ("calls", "DELETE FROM calls WHERE started_at < ?"),
    ("outbox", "DELETE FROM outbox WHERE created_at < ? AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL)"),
    ("callbacks", "DELETE FROM callbacks WHERE requested_at < ?"),
    ("sms", "DELETE FROM sms WHERE sent_at < ?"),
    ("console_logins", "DELETE FROM console_logins WHERE seen_at < ?"),
    ("login_failures", "DELETE FROM login_failures WHERE at < ?"),
)


def purge(db: Database, before: float) -> dict[str, int]:
    """Delete what is older than `before` (a Unix time); how many rows went, by table. Helpdesk
    documents not yet delivered stay until delivered or abandoned."""
    return {table: db.execute(sql, (before,)) for table, sql in _PURGES}


class Housekeeper(threading.Thread):
    """Applies the retention period once a day (every server does it; the deletes are idempotent)."""

    def __init__(self, db: Database, days: float):
        super().__init__(name="ivr-retention", daemon=True)
        self.db, self.days = db, days
        self.stopped = threading.Event()

    def run(self) -> None:
        self.stopped.wait(random.uniform(60, 600))  # servers started together do not purge together
        while not self.stopped.is_set():
            try:
                removed = purge(self.db, time.time() - self.days * DAY)
                log.info("retention (%g days): removed %s", self.days, removed)
            except Exception:
                log.exception("retention purge failed; tried again tomorrow")
            self.stopped.wait(DAY)
