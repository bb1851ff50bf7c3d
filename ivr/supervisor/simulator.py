"""A simulated caller that follows our TwiML the way Twilio does: signed requests, <Gather action>,
<Redirect>, fall-through on silence, and the end of the call at <Hangup>, <Enqueue> or <Dial>."""

from __future__ import annotations

import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs, urljoin, urlparse

from twilio.request_validator import RequestValidator

SILENCE = "."  # in a key script: let the question time out
SPEECH = "dit:"  # in a key script: "dit:oui" says "oui" (confidence 0.9), "dit:oui:0.3" less surely
MAX_REQUESTS = 500  # a call that needs more webhooks than this is stuck in a loop


def said_text(say: ET.Element) -> str:
    """The text of a <Say> as written: with the words an SSML <sub> says otherwise (« e-CPS »), as a
    transcript shows them."""
    return "".join(say.itertext())


class Transport(Protocol):
    """Sends one webhook and returns (HTTP status, body)."""

    def post(self, url: str, params: dict, headers: dict) -> tuple[int, str]: ...


class FlaskTransport:
    """Webhooks through a Flask test client (tests, in-process benchmarks)."""

    def __init__(self, client):
        self.client = client

    def post(self, url: str, params: dict, headers: dict) -> tuple[int, str]:
        response = self.client.post(url, data=params, headers=headers)
        return response.status_code, response.get_data(as_text=True)


class HttpTransport:
    """Webhooks over real HTTP to a running server."""

    def __init__(self, timeout: float = 10.0):
        import urllib.request

        self._request = urllib.request
        self.timeout = timeout

    def post(self, url: str, params: dict, headers: dict) -> tuple[int, str]:
        from urllib.error import HTTPError
        from urllib.parse import urlencode

        request = self._request.Request(url, data=urlencode(params).encode(), headers=headers, method="POST")
        try:
            with self._request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read().decode("utf-8")
        except HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")


@dataclass
class Question:
    """A <Gather> the caller is facing: what was said and what it accepts."""

    action: str
    said: list[str]
    num_digits: int | None
    finish_on_key: str
    record: bool = False  # a <Record>: any key but "." leaves a message
    heard: list[str] = field(default_factory=list)  # every sentence since the previous question

    @property
    def node(self) -> str:
        """The flow node this question belongs to (from its action URL)."""
        return parse_qs(urlparse(self.action).query).get("node", ["?"])[0]


@dataclass
class CallResult:
    """Everything a simulated call heard and did."""

    call_sid: str
    said: list[str] = field(default_factory=list)  # every sentence, in order
    questions: list[Question] = field(default_factory=list)
    end: str = ""  # "hangup", "enqueue", "dial", "caller_hung_up"
    task: dict | None = None  # the <Task> JSON of an <Enqueue>
    enqueue: dict = field(default_factory=dict)  # attributes of the <Enqueue>
    dial: dict = field(default_factory=dict)  # {"number"| "sip" | "client": address, attributes…}
    statuses: list[int] = field(default_factory=list)
    timings: list[float] = field(default_factory=list)  # seconds per webhook
    documents: list[str] = field(default_factory=list)
    heard_up_to: int = 0  # sentences already handed to a question's `heard`
    wait_url: str = ""  # while queued: the <Enqueue>'s waitUrl, which Twilio requests again and again
    said_before_queue: int = 0  # sentences heard before the <Enqueue> (the rest were heard while waiting)

    def hear(self, question: Question) -> Question:
        question.heard = self.said[self.heard_up_to :]
        self.heard_up_to = len(self.said)
        self.questions.append(question)
        return question

    @property
    def last_heard(self) -> list[str]:
        """Sentences after the last question (the goodbye or the transfer announcement)."""
        return self.said[self.heard_up_to :]

    @property
    def requests(self) -> int:
        return len(self.statuses)


KeySource = Iterable[str] | Callable[[Question], str | None]


class Caller:
    """Plays one call against the webhooks."""

    def __init__(self, transport: Transport, base_url: str, auth_token: str | None, caller: str = "+33612345678",
                 called: str = "+33900000000", call_sid: str | None = None):
        self.transport = transport
        self.base_url = base_url.rstrip("/")
        self.validator = RequestValidator(auth_token) if auth_token else None
        self.caller = caller
        self.called = called
        self.call_sid = call_sid or "CA" + uuid.uuid4().hex

    def params(self, **extra) -> dict:
        """The parameters of every voice webhook, as Twilio sends them: the call, both numbers under
        their two names (From/Caller, To/Called) and the geographic fields of each (empty for a
        French number but the country), then what the request adds (Digits…)."""
        params = {
            "AccountSid": "AC" + "0" * 32,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid,
            "CallStatus": "in-progress",
            "Direction": "inbound",
        }
        for name, number in (("From", self.caller), ("Caller", self.caller), ("To", self.called), ("Called", self.called)):
            params[name] = number
            params.update({f"{name}City": "", f"{name}State": "", f"{name}Zip": "", f"{name}Country": _country(number)})
        params.update(extra)
        return params

    def headers(self, url: str, params: dict) -> dict:
        """The headers Twilio would send: its signature of this URL and these parameters, and the
        idempotency token every webhook carries (the same only on a retry, which a Caller never makes)."""
        headers = {"I-Twilio-Idempotency-Token": uuid.uuid4().hex}
        if self.validator is not None:
            headers["X-Twilio-Signature"] = self.validator.compute_signature(url, params)  # twilio's own signature, as Twilio computes it
        return headers

    def post(self, url: str, params: dict, result: CallResult | None = None) -> tuple[int, str]:
        """One signed webhook."""
        began = time.perf_counter()
        status, body = self.transport.post(url, params, self.headers(url, params))
        if result is not None:
            result.timings.append(time.perf_counter() - began)
            result.statuses.append(status)
            result.documents.append(body)
        return status, body

    def call(self, keys: KeySource, hang_up_status: bool = True) -> CallResult:
        """Dial in, answer each question from `keys` ("." for silence), and follow TwiML to the end."""
        conversation = self.conversation(keys, hang_up_status)
        request = next(conversation)
        while True:
            url, params = request
            began = time.perf_counter()
            answer = self.transport.post(url, params, self.headers(url, params))
            try:
                request = conversation.send((*answer, time.perf_counter() - began))
            except StopIteration as stop:
                return stop.value

    def conversation(self, keys: KeySource, hang_up_status: bool = True):
        """The call as a generator: yields each (url, params) to send, receives (status, body, seconds),
        returns the CallResult. Lets a driver (the sync `call`, an async benchmark) own the I/O."""
        next_key = keys if callable(keys) else _script(keys)
        result = CallResult(self.call_sid)
        url = self.base_url + "/voice"
        params = self.params(CallStatus="ringing")
        while url is not None:
            if result.requests >= MAX_REQUESTS:
                raise RuntimeError(f"more than {MAX_REQUESTS} webhooks: the call is looping")
            status, body, seconds = yield url, params
            result.timings.append(seconds)
            result.statuses.append(status)
            result.documents.append(body)
            if status != 200:
                raise RuntimeError(f"{url} answered HTTP {status}: {body[:200]}")
            url, params = self._follow(url, body, result, next_key)
        if hang_up_status:
            ended = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
            yield self.base_url + "/voice/status", self.params(CallStatus="completed", CallDuration="120", Duration="2",
                                                               CallbackSource="call-progress-events", SequenceNumber="0", Timestamp=ended)
        return result

    def _follow(self, url: str, body: str, result: CallResult, next_key) -> tuple[str | None, dict]:
        root = ET.fromstring(body)
        for verb in root:
            if verb.tag == "Say":
                result.said.append(said_text(verb))
            elif verb.tag == "Play":
                result.said.append(f"[audio {verb.text}]")
            elif verb.tag == "Gather":
                question = Question(
                    action=urljoin(url, verb.get("action") or url),
                    said=[said_text(child) for child in verb if child.tag == "Say"],
                    num_digits=int(verb.get("numDigits")) if verb.get("numDigits") else None,
                    finish_on_key=verb.get("finishOnKey", "#"),
                )
                result.said.extend(question.said)
                key = next_key(result.hear(question))
                if key is None:
                    if not result.wait_url:  # in the queue, no more keys: the agent takes the call
                        result.end = "caller_hung_up"
                    return None, {}
                if key.startswith(SPEECH):
                    words, _, confidence = key[len(SPEECH):].partition(":")
                    return question.action, self.params(SpeechResult=words, Confidence=confidence or "0.9", msg="Gather End")
                digits, finished = twilio_digits(key, question)
                if digits:
                    return question.action, self.params(Digits=digits, FinishedOnKey=finished, msg="Gather End")
            elif verb.tag == "Record":
                question = Question(urljoin(url, verb.get("action") or url), [], None, verb.get("finishOnKey", "#"), record=True)
                key = next_key(result.hear(question))
                if key is None:
                    result.end = "caller_hung_up"
                    return None, {}
                if key != SILENCE:  # "rec" (or any key): a 12-second message; "rec:0" an empty one
                    seconds = key.partition(":")[2] if key.startswith("rec:") else "12"
                    recording = f"https://api.twilio.com/2010-04-01/Accounts/AC{'0' * 32}/Recordings/RE{uuid.uuid4().hex}"
                    return question.action, self.params(RecordingUrl=recording, RecordingDuration=seconds, Digits="#")
            elif verb.tag == "Redirect":
                return urljoin(url, verb.text), self.params()
            elif verb.tag == "Hangup":
                result.end = "hangup"
                return None, {}
            elif verb.tag == "Enqueue":
                result.end = "enqueue"
                result.enqueue = dict(verb.attrib)
                task = verb.find("Task")
                result.task = json.loads(task.text) if task is not None else None
                result.said_before_queue = len(result.said)
                if verb.get("waitUrl"):  # Twilio plays the wait URL while the caller waits for an agent
                    result.wait_url = urljoin(url, verb.get("waitUrl"))
                    return result.wait_url, self.params(QueuePosition="1", QueueTime="0", AvgQueueTime="0", CurrentQueueSize="1",
                                                        QueueSid="QU" + "0" * 32)
                return None, {}
            elif verb.tag == "Dial":
                result.end = "dial"
                result.dial = dict(verb.attrib)
                for child in verb:
                    result.dial[child.tag.lower()] = (child.text or "").strip()
                    result.dial[child.tag.lower() + "_attributes"] = dict(child.attrib)
                return None, {}
        if result.wait_url:
            # A wait document that ran out: after a question left unanswered Twilio plays the wait URL
            # again; after the hold message, the simulated agent takes the call.
            if any(verb.tag == "Gather" for verb in root):
                return result.wait_url, self.params(QueuePosition="1", QueueTime="30", AvgQueueTime="0", CurrentQueueSize="1",
                                                    QueueSid="QU" + "0" * 32)
            return None, {}
        result.end = "hangup"  # Twilio hangs up when a document runs out of verbs
        return None, {}


def twilio_digits(keys: str, question: Question) -> tuple[str, str]:
    """What Twilio posts for keys pressed at a <Gather>: no more than its numDigits, without the key
    that ends the entry (« 10123456781# » gives « 10123456781 »), and nothing at all for silence or
    that key alone (Twilio then goes on to the next verb, as for silence)."""
    if keys == SILENCE:
        return "", ""
    finish = question.finish_on_key
    finished = ""
    if finish and finish in keys:
        keys, finished = keys[: keys.index(finish)], finish
    if question.num_digits:
        keys = keys[: question.num_digits]
    return keys, finished


def _country(number: str) -> str:
    """The country Twilio names for a number (the geographic fields); only what our tests dial."""
    return "FR" if number.startswith("+33") else ("US" if number.startswith("+1") else "")


def _script(keys: Iterable[str]) -> Callable[[Question], str | None]:
    """Keys from a list ("1", "10012345673", "." for silence); None when the caller has no more."""
    iterator = iter(keys)
    return lambda question: next(iterator, None)
