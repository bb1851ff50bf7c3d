"""Guides by SMS: only to a number that can receive one, at most once per guide per call,
through Twilio's Messages API (the twilio REST client)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, TimeoutError

from twilio.base.exceptions import TwilioException, TwilioRestException

from .. import metrics
from ..call.identifiers import can_receive
from ..storage.db import Database
from ..storage.records import SIMULATED_PREFIX
from .twilio_rest import client as rest_client

log = logging.getLogger(__name__)
CALLER_WAIT = 0.5  # seconds a caller's answer waits for an SMS to go (Twilio's API hanging must not hold the line)
SENDERS = 8  # SMS sent at once by a process; more wait their turn, the callers answered meanwhile


class Guides:
    """Sends guides; remembers in the database what each call received (shared by every server)."""

    def __init__(self, db: Database, account_sid: str, auth_token: str, sender: str, timeout: float = 5.0):
        self.db = db
        self.sender = sender
        # A short timeout: the caller is on the line, and Twilio gives up on our answer after 15 s.
        self.client = rest_client(account_sid, auth_token, timeout) if sender else None
        self._senders = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="ivr-sms")

    def send_for_caller(self, call_sid: str, number: str, guide: str, text: str, wait: float = CALLER_WAIT) -> str:
        """Send, waiting `wait` seconds at most for the database and Twilio's API: the caller is on
        the line. Still on its way then: "sending" (it goes on in the background), else as `send`."""
        if not can_receive(number) or self.client is None:
            status = "not_mobile" if not can_receive(number) else "unavailable"
            if not call_sid.startswith(SIMULATED_PREFIX):
                metrics.SMS.labels(metrics.sms_kind(guide), status).inc()
            return status
        future = self._senders.submit(self.send, call_sid, number, guide, text)
        try:
            return future.result(timeout=wait)
        except TimeoutError:
            log.warning("[%s] SMS guide %s still on its way after %.1f s: the caller is told it comes in a moment", call_sid, guide, wait)
            return "sending"

    def close(self) -> None:
        """No more sends from this process (those not started are dropped; one under way ends by itself)."""
        self._senders.shutdown(wait=False, cancel_futures=True)

    def send(self, call_sid: str, number: str, guide: str, text: str) -> str:
        """Send once; the status: "sent", "already", "not_mobile", "unavailable" or "failed" (counted
        for the operators' metrics, but for the console's test calls)."""
        status = self._send(call_sid, number, guide, text)
        if not call_sid.startswith(SIMULATED_PREFIX):
            metrics.SMS.labels(metrics.sms_kind(guide), status).inc()
        return status

    def _send(self, call_sid: str, number: str, guide: str, text: str) -> str:
        if not can_receive(number):
            return "not_mobile"
        if self.client is None:
            return "unavailable"
        if call_sid.startswith(SIMULATED_PREFIX):  # a test call (console, ivr simulate --url): heard as sent, never sent
            log.info("[%s] simulated call: SMS %s not sent", call_sid, guide)
            return "sent"
        # Claim first: two servers handling the same key press cannot both send.
        try:
            claimed = self.db.execute(
                "INSERT INTO sms (call_sid, guide, number, sent_at, status) VALUES (?, ?, ?, ?, 'sending') ON CONFLICT (call_sid, guide) DO NOTHING",
                (call_sid, guide, number, time.time()),
            )
        except Exception as error:  # the database is down: without a claim, no send (it could go twice); the call goes on
            log.warning("[%s] SMS guide %s not sent, the database does not answer: %s", call_sid, guide, error)
            return "failed"
        if not claimed:
            return "already"
        try:
            message = self.client.messages.create(to=number, from_=self.sender, body=text)
        except (TwilioException, OSError) as error:
            self.db.execute("DELETE FROM sms WHERE call_sid = ? AND guide = ?", (call_sid, guide))  # may be tried again
            log.warning("[%s] SMS guide %s not sent: %s", call_sid, guide, error)
            return "failed"
        try:
            self.db.execute("UPDATE sms SET status = 'sent', message_sid = ? WHERE call_sid = ? AND guide = ?", (message.sid, call_sid, guide))
        except Exception:  # sent all the same: the claim keeps it from going twice
            log.warning("[%s] SMS guide %s sent, its status not written", call_sid, guide)
        log.info("[%s] SMS guide %s sent", call_sid, guide)
        return "sent"


def recording_deleter(account_sid: str, auth_token: str, timeout: float = 5.0) -> Callable[[str], bool] | None:
    """Deletes a voice message at Twilio from its RecordingUrl (True when it is gone, already gone
    included); None without Twilio's credentials."""
    client = rest_client(account_sid, auth_token, timeout)
    if client is None:
        return None

    def forget(url: str) -> bool:
        sid = url.rstrip("/").rsplit("/", 1)[-1].split(".")[0]
        if not sid.startswith("RE"):
            log.warning("not a Twilio recording, left alone: %s", url[:120])
            return True
        try:
            client.recordings(sid).delete()
        except TwilioRestException as error:
            if error.status == 404:
                return True
            log.warning("recording %s not deleted at Twilio: %s", sid, error)
            return False
        except (TwilioException, OSError) as error:
            log.warning("recording %s not deleted at Twilio: %s", sid, error)
            return False
        return True

    return forget
