"""The only module that writes TwiML: engine actions in, a <Response> document out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from twilio.twiml.voice_response import Dial, Enqueue, Gather, VoiceResponse

from .engine import Action, Ask, Hangup, Say, Transfer
from .prompts import Prompts

CONTENT_TYPE = "text/xml; charset=utf-8"
# The key the agent-unavailable sentence lives under; spoken when a transfer cannot be made.
UNAVAILABLE = "conseiller.indisponible"


@dataclass(frozen=True)
class Speech:
    """How sentences are spoken: the catalogue, the voice and the language."""

    prompts: Prompts
    voice: str
    language: str = "fr-FR"


@dataclass(frozen=True)
class TransferPlan:
    """Where a transfer goes and what travels with it (decided by the handoff module)."""

    kind: str  # "workflow", "number", "sip", or "none" when nobody can be reached
    address: str = ""
    task: str = ""  # JSON context for a TaskRouter <Task>
    done_url: str = ""  # where Twilio reports how the transfer ended
    dial_timeout: int = 30


def document(actions: Sequence[Action], speech: Speech, answer_url: Callable[[str, str], str], plan: TransferPlan | None = None) -> str:
    """TwiML for what the engine decided."""
    response = VoiceResponse()
    for action in actions:
        if isinstance(action, Ask):
            _ask(response, speech, action, answer_url(action.node, action.phase))
        elif isinstance(action, Hangup):
            _says(response, speech, action.says)
            response.hangup()
        elif isinstance(action, Transfer):
            _says(response, speech, action.says)
            _transfer(response, speech, plan or TransferPlan("none"))
    return str(response)


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


def empty() -> str:
    """An empty <Response/>, for callbacks Twilio only notifies us through."""
    return str(VoiceResponse())


def _says(parent: VoiceResponse | Gather, speech: Speech, says: Sequence[Say]) -> None:
    for say in says:
        prompt = speech.prompts.entries.get(say.key)
        if prompt is not None and prompt.audio:
            parent.play(prompt.audio)
        else:
            parent.say(speech.prompts.text(say.key, say.params), voice=speech.voice, language=speech.language)


def _ask(response: VoiceResponse, speech: Speech, ask: Ask, action_url: str) -> None:
    gather = Gather(
        input="dtmf",
        action=action_url,
        method="POST",
        timeout=ask.timeout,
        finish_on_key=ask.finish_on_key,
        num_digits=ask.num_digits,
        action_on_empty_result=False,
    )
    _says(gather, speech, ask.says)
    if ask.pause:
        gather.pause(length=ask.pause)
    response.append(gather)
    # Twilio falls through a <Gather> that got nothing: that is silence, not the end of the call.
    response.redirect(action_url, method="POST")


def _transfer(response: VoiceResponse, speech: Speech, plan: TransferPlan) -> None:
    if plan.kind == "workflow":
        enqueue = Enqueue(None, workflow_sid=plan.address, action=plan.done_url, method="POST")
        enqueue.task(plan.task)
        response.append(enqueue)
    elif plan.kind in ("number", "sip"):
        dial = Dial(action=plan.done_url, method="POST", timeout=plan.dial_timeout)
        if plan.kind == "number":
            dial.number(plan.address)
        else:
            dial.sip(plan.address)
        response.append(dial)
    else:
        _says(response, speech, (Say(UNAVAILABLE),))
        response.hangup()
