"""The only module that writes TwiML: engine actions in, a <Response> document out."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from twilio.twiml.voice_response import Dial, Enqueue, Gather, VoiceResponse

from .handoff import TransferPlan
from .hours import MONTHS
from .prompts import Prompts, pronounced_parts
from .session import Action, Ask, Hangup, Listen, Say, Transfer

CONTENT_TYPE = "text/xml; charset=utf-8"
# The key the agent-unavailable sentence lives under; spoken when a transfer cannot be made.
UNAVAILABLE = "conseiller.indisponible"


@dataclass(frozen=True)
class Speech:
    """How sentences are spoken: the catalogue, the voice and the language."""

    prompts: Prompts
    voice: str
    language: str = "fr-FR"
    values: tuple[tuple[str, str], ...] = ()  # placeholders the server fills in every sentence ({jours})


def document(actions: Sequence[Action], speech: Speech, answer_url: Callable[[str, str], str], plan: TransferPlan | None = None) -> str:
    """TwiML for what the engine decided."""
    response = VoiceResponse()
    for action in actions:
        if isinstance(action, Ask):
            _ask(response, speech, action, answer_url(action.node, action.phase))
        elif isinstance(action, Listen):
            _listen(response, speech, action, answer_url(action.node, "ask"))
        elif isinstance(action, Hangup):
            _says(response, speech, action.says)
            response.hangup()
        elif isinstance(action, Transfer):
            _says(response, speech, action.says)
            _transfer(response, speech, plan or TransferPlan("none"))
    return str(response)


class Cache:
    """Documents built once: most webhooks ask a question, or play the hold message, whose TwiML
    never changes for one flow version.

    A document depends on what it says, the sentences and voice, and the URLs it points to; the key
    names all of that. For questions, `scope` names what else it depends on (the flow version, the
    URL prefix under which we are served, the call's experiment wordings)."""

    def __init__(self, limit: int = 2000):
        self.limit = limit
        self._documents: dict = {}

    def get(self, key: tuple, build: Callable[[], str]) -> str:
        """The document under `key`, built by `build()` the first time."""
        body = self._documents.get(key)
        if body is None:
            body = build()
            if len(self._documents) >= self.limit:
                self._documents.clear()
            self._documents[key] = body
        return body

    def document(self, scope: tuple, actions: Sequence[Action], speech: Speech, answer_url: Callable[[str, str], str]) -> str:
        if filled_in(actions):
            return document(actions, speech, answer_url)
        key = (scope, speech.voice, speech.language, speech.values, tuple(actions))
        return self.get(key, lambda: document(actions, speech, answer_url))


def filled_in(actions: Sequence[Action]) -> bool:
    """Whether a sentence of `actions` carries a value of this call (a number read back, a time):
    its document is built each time, never kept among the documents built once."""
    return any(say.params for action in actions for say in getattr(action, "says", ()))


def apology(speech: Speech, plan: TransferPlan | None, key: str = "transfert.erreur") -> str:
    """TwiML for when our own code failed: say sorry and put the caller through."""
    response = VoiceResponse()
    _says(response, speech, (Say(key),))
    _transfer(response, speech, plan or TransferPlan("none"))
    return str(response)


def goodbye(speech: Speech, key: str | None = None) -> str:
    """TwiML that (optionally) says one sentence and hangs up."""
    response = VoiceResponse()
    if key:
        _says(response, speech, (Say(key),))
    response.hangup()
    return str(response)


def whisper(speech: Speech, text: str) -> str:
    """What the agent hears before the caller is connected: the summary of the call."""
    response = VoiceResponse()
    _says(response, speech, (Say("conseiller.chuchotement"),))
    _say(response, speech, digit_by_digit(dates_for_the_ear(text)))
    return str(response)


def digit_by_digit(text: str) -> str:
    """Numbers of 5 digits or more (a phone number, an RPPS, a FINESS of Corsica) spaced to be read
    one character at a time, as an agent copies them down: « 1 0 1 2 3… », « plus 3 3 6 1 2… », « 2 A 0 0 1… »."""
    return re.sub(r"\+?(?:2[AB])?\d{5,}", lambda m: ("plus " if m.group().startswith("+") else "") + " ".join(m.group().lstrip("+")), text)


def dates_for_the_ear(text: str) -> str:
    """« 02/12/2026 à 03 h 41 », written for the eye, said « 2 décembre à 3 heures 41 »."""
    def spoken(match: re.Match) -> str:
        day, month, _, hour, minute = (int(group) for group in match.groups())
        clock = f"{hour} {'heure' if hour <= 1 else 'heures'}" + (f" {minute:02d}" if minute else "")
        return f"{day} {MONTHS[month - 1]} à {clock}"

    return re.sub(r"(\d{2})/(\d{2})/(\d{4}) à (\d{1,2}) h (\d{2})", spoken, text)


def hold(speech: Speech, position: int | None, minutes: int | None = None, offer_url: str = "", pause: int = 20,
         question: Ask | None = None, question_url: str = "", lead: Sequence[Say] = ()) -> str:
    """The hold message while queued: the caller's position and the expected wait when Twilio gives
    them, and after a while the offer to be called back instead (key 1). With a `question` (the
    rest of the questionnaire, asked while waiting), that question instead of the message: its
    answer goes to `question_url`; unanswered, the wait goes on and asks it again."""
    response = VoiceResponse()
    says = list(lead)
    if position:
        says.append(Say.filled("attente.position", position=str(position)))
    if minutes:
        says.append(Say.filled("attente.estimation", minutes=str(minutes)))
    if question is not None:
        _says(response, speech, says)
        gather = Gather(input="dtmf", action=question_url, method="POST", timeout=question.timeout, finish_on_key=question.finish_on_key,
                        num_digits=question.num_digits, action_on_empty_result=False)
        _says(gather, speech, question.says)
        response.append(gather)
        return str(response)
    says.append(Say("attente.message"))
    _says(response, speech, says)
    if offer_url:
        gather = Gather(input="dtmf", action=offer_url, method="POST", num_digits=1, timeout=5, finish_on_key="")
        _says(gather, speech, (Say("attente.rappel"),))
        response.append(gather)
    response.pause(length=pause)
    return str(response)


@cache
def leave() -> str:
    """Take the caller out of the queue (Twilio then reports QueueResult=leave to the Enqueue action)."""
    response = VoiceResponse()
    response.leave()
    return str(response)


@cache
def empty() -> str:
    """An empty <Response/>, for callbacks Twilio only notifies us through (built once)."""
    return str(VoiceResponse())


def _says(parent: VoiceResponse | Gather, speech: Speech, says: Sequence[Say]) -> None:
    for say in says:
        prompt = speech.prompts.entries.get(say.key)
        if prompt is not None and prompt.audio:
            parent.play(prompt.audio)
        else:
            _say(parent, speech, speech.prompts.text(say.key, {**dict(speech.values), **dict(say.params)}))


def _say(parent: VoiceResponse | Gather, speech: Speech, text: str) -> None:
    """A <Say> of `text`: the words of the prompt file's « prononciation » as SSML <sub>, written
    as they are and said as it says (Amazon Polly: <sub> is read by its neural voices,
    https://docs.aws.amazon.com/polly/latest/dg/supportedtags.html)."""
    parts = pronounced_parts(text, speech.prompts.sounds)
    if len(parts) == 1 and parts[0][1] is None:
        parent.say(text, voice=speech.voice, language=speech.language)
        return
    verb = parent.say(voice=speech.voice, language=speech.language)
    for part, alias in parts:
        if alias is None:
            verb.append(part)  # text between the <sub>s (twilio's TwiML writes it as the text or tail)
        else:
            verb.sub(part, alias=alias)


def _ask(response: VoiceResponse, speech: Speech, ask: Ask, action_url: str) -> None:
    gather = Gather(
        input="dtmf speech" if ask.hints else "dtmf",
        action=action_url,
        method="POST",
        timeout=ask.timeout,
        finish_on_key=ask.finish_on_key,
        num_digits=ask.num_digits,
        action_on_empty_result=False,
        language=speech.language if ask.hints else None,
        hints=", ".join(ask.hints) if ask.hints else None,
        speech_timeout="auto" if ask.hints else None,
    )
    _says(gather, speech, ask.says)
    if ask.pause:
        gather.pause(length=ask.pause)
    response.append(gather)
    # Twilio falls through a <Gather> that got nothing: that is silence, not the end of the call.
    response.redirect(action_url, method="POST")


def _listen(response: VoiceResponse, speech: Speech, listen: Listen, action_url: str) -> None:
    _says(response, speech, listen.says)
    response.record(action=action_url, method="POST", max_length=listen.max_length, finish_on_key="#", play_beep=True, timeout=5)
    # With nothing recorded Twilio falls through: the message is skipped.
    response.redirect(action_url, method="POST")


def _transfer(response: VoiceResponse, speech: Speech, plan: TransferPlan) -> None:
    if plan.kind == "workflow":
        enqueue = Enqueue(None, workflow_sid=plan.address, action=plan.done_url, method="POST",
                          wait_url=plan.wait_url or None, wait_url_method="POST" if plan.wait_url else None)
        enqueue.task(plan.task)
        response.append(enqueue)
    elif plan.kind in ("number", "sip", "client"):
        dial = Dial(action=plan.done_url, method="POST", timeout=plan.dial_timeout)
        if plan.kind == "number":
            dial.number(plan.address, url=plan.whisper_url or None, method="POST" if plan.whisper_url else None)
        elif plan.kind == "sip":
            dial.sip(plan.address)
        else:
            client = dial.client()
            client.identity(plan.address)
            for name, value in plan.parameters:
                client.parameter(name=name, value=value)
        response.append(dial)
    else:
        _says(response, speech, (Say(UNAVAILABLE),))
        response.hangup()
