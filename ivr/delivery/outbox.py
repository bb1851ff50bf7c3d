"""Durable delivery of call contexts to a helpdesk webhook: an outbox table, retries with backoff.

Run inside the web process (a background thread per worker) or as its own process:
    python -m ivr.delivery.outbox
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time

import requests

from ..storage.db import Database

log = logging.getLogger(__name__)


def signature(body: bytes, secret: str) -> str:
    """The X-IVR-Signature of a body: hex HMAC-SHA256 under the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Outbox:
    """Documents waiting to be POSTed to the helpdesk; a restart loses nothing."""

    def __init__(self, db: Database, url: str, secret: str, timeout: float = 10.0, max_attempts: int = 15,
                 base_delay: float = 5.0, max_delay: float = 3600.0, claim_seconds: float = 60.0):
        self.db = db
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.claim_seconds = claim_seconds
        self.http = requests.Session()

    def add(self, call_sid: str, document: dict, now: float | None = None, version: str = "") -> str:
        """Queue a document; the same call is delivered once (same idempotency key on every retry),
        and once more per `version` (the document completed with the answers given in the queue)."""
        now = time.time() if now is None else now
        key = f"{call_sid}:transfer" + (f":{version}" if version else "")
        body = json.dumps(document, ensure_ascii=False, sort_keys=True)
        self.db.execute(
            "INSERT INTO outbox (idempotency_key, call_sid, url, body, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (idempotency_key) DO NOTHING",
            (key, call_sid, self.url, body, now, now),
        )
        return key

    def backlog(self) -> tuple[int, float | None, int]:
        """Documents not delivered yet (nor abandoned), when the oldest was queued (None: none), and
        the documents abandoned after their last try (kept until the purge)."""
        row = self.db.one("SELECT COUNT(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL) AS n, "
                          "MIN(created_at) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL) AS oldest, "
                          "COUNT(*) FILTER (WHERE failed_at IS NOT NULL) AS failed FROM outbox")
        return row["n"], row["oldest"], row["failed"]

    def deliver_due(self, now: float | None = None, limit: int = 20) -> tuple[int, int]:
        """Try every due document once; return (delivered, failed attempts)."""
        now = time.time() if now is None else now
        rows = self.db.query(
            "SELECT id FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ? AND locked_until <= ? "
            "ORDER BY id LIMIT ?",
            (now, now, limit),
        )
        delivered = failed = 0
        for row in rows:
            # Claim it, so that another worker does not send it at the same time.
            claimed = self.db.execute(
                "UPDATE outbox SET locked_until = ? WHERE id = ? AND locked_until <= ? AND delivered_at IS NULL",
                (now + self.claim_seconds, row["id"], now),
            )
            if not claimed:
                continue
            if self._send(row["id"], now):
                delivered += 1
            else:
                failed += 1
        return delivered, failed

    def _send(self, row_id: int, now: float) -> bool:
        item = self.db.one("SELECT * FROM outbox WHERE id = ?", (row_id,))
        body = item["body"].encode("utf-8")
        attempt = item["attempts"] + 1
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-IVR-Signature": signature(body, self.secret),
            "Idempotency-Key": item["idempotency_key"],
            "X-IVR-Attempt": str(attempt),
        }
        try:
            response = self.http.post(item["url"], data=body, headers=headers, timeout=self.timeout)
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        if error is None:
            self.db.execute("UPDATE outbox SET delivered_at = ?, attempts = ?, last_error = NULL WHERE id = ?", (now, attempt, row_id))
            log.info("[%s] context delivered to the helpdesk (attempt %d)", item["call_sid"], attempt)
            return True
        if attempt >= self.max_attempts:
            self.db.execute("UPDATE outbox SET failed_at = ?, attempts = ?, last_error = ? WHERE id = ?", (now, attempt, error, row_id))
            log.error("[%s] helpdesk delivery abandoned after %d attempts: %s", item["call_sid"], attempt, error)
            return False
        delay = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        self.db.execute(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, locked_until = 0, last_error = ? WHERE id = ?",
            (attempt, now + delay, error, row_id),
        )
        log.warning("[%s] helpdesk delivery failed (attempt %d, next in %.0f s): %s", item["call_sid"], attempt, delay, error)
        return False

    def items(self) -> list[dict]:
        """Every queued document with its delivery state (oldest first)."""
        return self.db.query("SELECT * FROM outbox ORDER BY id")


class Deliverer(threading.Thread):
    """A background thread that delivers due documents, woken at once when one is added."""

    def __init__(self, outbox: Outbox, interval: float = 5.0):
        super().__init__(name="ivr-outbox", daemon=True)
        self.outbox = outbox
        self.interval = interval
        self.wake = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.outbox.deliver_due()
            except Exception:
                log.exception("outbox delivery round failed")
            self.wake.wait(self.interval)
            self.wake.clear()

    def nudge(self) -> None:
        self.wake.set()

    def stop(self) -> None:
        self.stopped.set()
        self.wake.set()


def main() -> None:
    """Deliver the outbox forever, in its own process (the Procfile's worker)."""
    from .. import create_app

    app = create_app({"IVR_OUTBOX_THREAD": "0"})
    outbox = app.extensions["ivr"].outbox
    if outbox is None:
        raise SystemExit("HANDOFF_WEBHOOK_URL n'est pas donné : le worker n'a rien à livrer.")
    log.info("outbox worker delivering to %s", outbox.url)
    Deliverer(outbox).run()


if __name__ == "__main__":
    main()
