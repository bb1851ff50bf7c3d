"""Twilio's REST API as the server uses it while a caller is on the line: short timeouts, no retries
(Twilio gives up on a webhook's answer after 15 s), and a live call moved to another of our URLs."""

from __future__ import annotations

import logging

from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

log = logging.getLogger(__name__)


def client(account_sid: str, auth_token: str, timeout: float) -> Client | None:
    """The REST client, or None without Twilio's credentials."""
    if not (account_sid and auth_token):
        return None
    return Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout, max_retries=0))


class CallMover:
    """Moves a call in progress to a URL of ours (`calls(CallSid).update(url=…)`): Twilio then asks
    that URL for the call's next TwiML, at once."""

    def __init__(self, account_sid: str, auth_token: str, timeout: float = 5.0):
        self.client = client(account_sid, auth_token, timeout)

    def move(self, call_sid: str, url: str) -> bool:
        """Whether Twilio took the move (False without credentials, or when it failed: the call then
        notices at its next turn)."""
        if self.client is None:
            return False
        try:
            self.client.calls(call_sid).update(url=url, method="POST")
        except (TwilioException, OSError) as error:
            log.warning("[%s] the call could not be moved to %s: %s", call_sid, url, error)
            return False
        return True
