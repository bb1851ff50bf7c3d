"""How long what callers said is kept: `purge` deletes calls, their events, delivered helpdesk
documents, callback requests, SMS records and console traces older than a period (`ivr purge`,
or IVR_RETENTION_DAYS applied once a day by each server)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable

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
    ("set_aside", "DELETE FROM set_aside WHERE at < ?"),
    ("login_attempts", "DELETE FROM login_attempts WHERE since < ?"),
    ("device_facts", "DELETE FROM device_facts WHERE at < ?"),
    ("device_codes", "DELETE FROM device_codes WHERE expires_at < ?"),
)


# What each table holds, as the person who purges reads it.
LABELS = {"events": "événements d'appel", "calls": "appels", "outbox": "fiches remises au helpdesk", "callbacks": "demandes de rappel",
          "sms": "SMS", "console_logins": "connexions à la console", "login_failures": "échecs de connexion",
          "set_aside": "écritures mises de côté", "login_attempts": "compteurs d'essais de connexion",
          "device_facts": "informations envoyées par les appareils", "device_codes": "codes de la page ordinateur"}


def purge(db: Database, before: float, forget_recording: Callable[[str], bool] | None = None) -> dict[str, int]:
    """Delete what is older than `before` (a Unix time); how many rows went, by table. Helpdesk
    documents not yet delivered stay until delivered or abandoned.

    Voice messages live at Twilio: `forget_recording(url)` deletes one there (True when it is gone).
    A call whose message could not be deleted (or cannot be: no `forget_recording`, TWILIO_ACCOUNT_SID
    not set) keeps its record and callback until a purge can, so that the link to delete it is not lost."""
    kept: set[str] = set()
    for call_sid, url in _recordings(db, before):
        if forget_recording is None or not forget_recording(url):
            kept.add(call_sid)
    if forget_recording is None and kept:  # their record holds the only link to delete them: kept until it can be used
        log.warning("%d voice message(s) past the retention period stay at Twilio, and their calls here until they can be deleted "
                    "there: set TWILIO_ACCOUNT_SID (and TWILIO_AUTH_TOKEN)", len(kept))
    removed = {}
    for table, sql in _PURGES:
        if table in ("calls", "callbacks") and kept:
            marks = ", ".join("?" for _ in kept)
            removed[table] = db.execute(f"{sql} AND call_sid NOT IN ({marks})", (before, *sorted(kept)))
        else:
            removed[table] = db.execute(sql, (before,))
    return removed


def _recordings(db: Database, before: float) -> list[tuple[str, str]]:
    """(call, recording URL) of the voice messages of what is about to go."""
    found = {(row["call_sid"], row["message_url"])
             for row in db.query("SELECT call_sid, message_url FROM callbacks WHERE requested_at < ? AND message_url IS NOT NULL", (before,))}
    for row in db.query("SELECT call_sid, context FROM calls WHERE started_at < ? AND context IS NOT NULL", (before,)):
        context = row["context"] if isinstance(row["context"], dict) else json.loads(row["context"])
        url = ((context or {}).get("questionnaire") or {}).get("voice_message_url")
        if url:
            found.add((row["call_sid"], url))
    return sorted(found)


class Housekeeper(threading.Thread):
    """Applies the retention period once a day (every server does it; the deletes are idempotent)."""

    def __init__(self, db: Database, days: float, forget_recording: Callable[[str], bool] | None = None):
        super().__init__(name="ivr-retention", daemon=True)
        self.db, self.days, self.forget_recording = db, days, forget_recording
        self.stopped = threading.Event()

    def run(self) -> None:
        self.stopped.wait(random.uniform(60, 600))  # servers started together do not purge together
        while not self.stopped.is_set():
            try:
                removed = purge(self.db, time.time() - self.days * DAY, self.forget_recording)
                log.info("retention (%g days): removed %s", self.days, removed)
            except Exception:
                log.exception("retention purge failed; tried again tomorrow")
            self.stopped.wait(DAY)
