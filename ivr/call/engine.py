"""The call logic: a pure `step(flow, session, event, conditions) -> (session, actions)`, no Flask, no I/O."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import replace

from . import identifiers
from .flow import AGENT_KEY, RATINGS, REPEAT_KEY, Flow, Guide, Node
from .session import (
    OPEN,
    Action,
    Ask,
    Conditions,
    Event,
    Experiment,
    GuideRequested,
    Hangup,
    Keys,
    Listen,
    NoInput,
    Recorded,
    Say,
    Session,
    Spoken,
    Transfer,
)

# Why a caller was put through to a person; each reason has the sentence that announces it.
REASON_PROMPTS = {
    "caller_request": "transfert.demande",
    "no_input": "transfert.silence",
    "invalid_input": "transfert.touches",
    "technical_error": "transfert.erreur",
}
_SPOKEN_KEYS = {"*": "étoile", "#": "dièse"}
CALLER_FIELD = "numero_appelant"  # in a branch: the caller's own number, when the network gives it
_MAX_CHAINED = 50  # say-nodes followed in one turn before we call the flow broken
_GUIDE_PROMPTS = {"sent": "sms.envoye", "already": "sms.deja_envoye", "not_mobile": "sms.pas_mobile",
                  "unavailable": "sms.indisponible", "failed": "sms.echec"}


# ---- the logic ----------------------------------------------------------------------------------
def start(flow: Flow, call_sid: str, caller: str, at: float, conditions: Conditions = OPEN) -> tuple[Session, tuple[Action, ...]]:
    """A new call: its session and what it hears first (after the welcome, the incident announced
    if there is one); it gets an arm of each sentence experiment running, for its whole length."""
    session = Session(call_sid=call_sid, caller=caller, started_at=at, flow_version=flow.version)
    for experiment in conditions.experiments:
        arm = arm_of(call_sid, experiment)
        session = _log(session, at, "experiment", {"arms": {**session.arms, experiment.key: arm}}, key=experiment.key, arm=arm,
                       experiment=experiment.id)
        if arm == "B":
            session = session.evolve(variants={**session.variants, experiment.key: experiment.text_b})
    session, actions = _served(flow, *_enter(flow, session, flow.start, at), at, conditions)
    if conditions.incident is not None and actions and actions[0].says:
        number, text = conditions.incident
        first = actions[0]
        says = (first.says[0], Say.filled("incident.annonce", annonce=text), Say("incident.suite"), *first.says[1:])
        session = _log(session, at, "incident", {"incident": number}, incident=number)
        actions = (replace(first, says=says), *actions[1:])
    return session, actions


def arm_of(call_sid: str, experiment: Experiment) -> str:
    """The arm a call gets: the same on every server, `share` % of calls in "B"."""
    digest = hashlib.sha256(f"{experiment.id}:{experiment.key}:{call_sid}".encode()).digest()
    return "B" if int.from_bytes(digest[:4], "big") % 100 < experiment.share else "A"


def step(flow: Flow, session: Session, event: Event, conditions: Conditions = OPEN) -> tuple[Session, tuple[Action, ...]]:
    """Apply one caller event to the session; return the new session and what to do next."""
    return _served(flow, *_step(flow, session, event), event.at, conditions)


def requested_guide(flow: Flow, session: Session, event: Event) -> Guide | None:
    """The guide the caller asks for by SMS with this event (its key at the question they are at)."""
    node = flow.nodes.get(session.node)
    if (isinstance(event, Keys) and node is not None and node.guide is not None and event.digits == node.guide.key
            and not session.ended and (event.node, event.phase) == (session.node, session.phase) == (node.name, "ask")):
        return node.guide
    return None


def resume(flow: Flow, session: Session, conditions: Conditions = OPEN) -> tuple[Session, tuple[Action, ...]]:
    """Say the current question again (Twilio asked for the call's first document twice)."""
    node = flow.nodes.get(session.node)
    if session.ended:
        return session, (Hangup(),)
    if node is None:
        return fail(flow, session, session.entered_at, conditions)
    return session, (_ask(flow, node, session, full=True),)


def fail(flow: Flow, session: Session, at: float, conditions: Conditions = OPEN) -> tuple[Session, tuple[Action, ...]]:
    """Something went wrong on our side: apologise and put the caller through."""
    return _served(flow, *_fail(session, at), at, conditions)


def _served(flow: Flow, session: Session, actions: tuple[Action, ...], at: float, conditions: Conditions) -> tuple[Session, tuple[Action, ...]]:
    """A transfer while no agent can answer becomes the flow's after-hours part (callback, message);
    failing there ends the call (it would start the same menu again, forever). While the service is
    closed, the flow's `closed_prompts` are said instead of their usual sentences."""
    ask = actions[-1] if actions else None
    if (flow.while_queued and conditions.queue and conditions.service_open and conditions.agents and isinstance(ask, Ask)
            and ask.node == flow.while_queued[0] and session.queue_next is None and not session.ended):
        # The rest of the questions will be asked while the caller waits for an agent: to the queue now.
        session = session.evolve(queue_next=ask.node, queue_phase="ask")
        session, actions = _transfer(session, "diagnostic_complete", at, (*ask.says[:-1], Say("etape6.transfert_file")))
        return session, _as_heard_now(flow, actions, conditions)
    transfer = next((action for action in actions if isinstance(action, Transfer)), None)
    if transfer is not None:
        if transfer.reason in ("no_input", "invalid_input") and _fell_back(session):
            session, actions = _give_up(session, transfer.reason, at, conditions)
        elif not conditions.service_open or not conditions.agents:
            return unanswered(flow, session, at, conditions)
    return session, _as_heard_now(flow, actions, conditions)


def unanswered(flow: Flow, session: Session, at: float, conditions: Conditions = OPEN) -> tuple[Session, tuple[Action, ...]]:
    """No agent can take the call (the service is closed, none is configured, or the one put
    through did not answer): say why and offer what the flow's after-hours part offers (callback,
    message) rather than just goodbye."""
    if conditions.service_open:
        return _fall_back(flow, session, at, (Say("conseiller.aucun"),), "unanswered")
    session, actions = _fall_back(flow, session, at, (Say.filled("horaires.ferme", quand=conditions.reopening),), "closed")
    return session, _as_heard_now(flow, actions, conditions)


def _as_heard_now(flow: Flow, actions: tuple[Action, ...], conditions: Conditions) -> tuple[Action, ...]:
    if conditions.service_open or not flow.closed_prompts:
        return actions
    return tuple(_closed_sentences(flow, action, conditions.reopening) for action in actions)


def hung_up(flow: Flow, session: Session, at: float) -> Session:
    """The caller hung up mid-call: at a question whose `outcome` says what hanging up there means
    (« Bravo, you may hang up »), the call ends with it; elsewhere it stays without one."""
    node = flow.nodes.get(session.node)
    if session.ended or node is None or node.type == "end" or not node.outcome:
        return session
    return _log(session, at, "end", {"outcome": node.outcome, "outcome_step": session.step}, outcome=node.outcome)


def _last_fall_back(session: Session) -> str | None:
    return next((entry["event"] for entry in reversed(session.history) if entry.get("event") in ("closed", "unanswered")), None)


def rate_after_agent(flow: Flow, session: Session, at: float) -> tuple[Session, tuple[Action, ...]]:
    """The agent hung up and Twilio hands the caller back: the flow's rating question, once."""
    node = flow.nodes.get(flow.satisfaction or "")
    if node is None or flow.ratings_off or session.rating is not None or _asked_rating(session):
        return session, (Hangup((Say("fin.au_revoir"),)),)
    session = session.evolve(node=node.name, phase="ask", entered_at=at, failures=0, pending=None)
    session = _log(session, at, "rating_offer")
    return session, (_ask(flow, node, session, full=True),)


def _asked_rating(session: Session) -> bool:
    return any(entry.get("event") == "rating_offer" for entry in session.history)


def wants_rating_by_sms(flow: Flow, session: Session) -> bool:
    """Whether a caller put through to an agent should be asked for a rating by SMS: they were not
    asked on the line (gone when the agent hung up, or a conference that ended the call)."""
    return (flow.satisfaction is not None and not flow.ratings_off and session.outcome == "transferred" and session.rating is None
            and not _asked_rating(session))


def _rated(flow: Flow, node: Node, session: Session, event: Event) -> tuple[Session, tuple[Action, ...]]:
    """One question, never repeated: a key from 1 to 5 is the rating; anything else (silence, another
    key) lets the call end as it would have."""
    lead: tuple[Say, ...] = ()
    if isinstance(event, Keys) and len(event.digits) == 1 and event.digits in RATINGS:
        session = _log(session, event.at, "rating", {"rating": int(event.digits)}, rating=int(event.digits))
        lead = (Say("satisfaction.merci"),)
    else:
        session = _log(session, event.at, "skip", field="note")
    if session.ended:  # after an agent: the call keeps its outcome
        after = flow.nodes.get(node.next or "")
        return session, (Hangup((*lead, Say(after.prompt if after is not None and after.type == "end" else "fin.au_revoir"))),)
    return _enter(flow, session, node.next, event.at, lead)


def queued_question(flow: Flow, session: Session, at: float) -> tuple[Session, Ask | None]:
    """The question to ask now, while the caller waits for an agent (None when there is none left).
    A question asked at the last turn of the wait and left unanswered is silence, as on the line:
    skipped if it may be, else asked again, shorter, until `max_attempts`."""
    if session.queue_next is None or session.queue_next not in flow.nodes:
        return session, None
    if session.queue_asked:
        return queued_answer(flow, session, NoInput(session.queue_next, session.queue_phase, at))
    node = flow.nodes[session.queue_next]
    ask = _ask(flow, node, session.evolve(node=node.name, phase=session.queue_phase), full=True)
    return session.evolve(queue_asked=True), ask if isinstance(ask, Ask) else None


def queued_answer(flow: Flow, session: Session, event: Event) -> tuple[Session, Ask | None]:
    """An answer given while waiting in the queue: kept at once; the next question (or None)."""
    if event.node != session.queue_next or event.phase != session.queue_phase:
        return session, None  # a stray or repeated answer: the wait goes on
    kept = (session.node, session.outcome, session.outcome_step, session.transfer_reason)
    probe = session.evolve(node=event.node, phase=event.phase, outcome=None)
    after, actions = _step(flow, probe, event)
    node, outcome, outcome_step, reason = kept
    ask = actions[-1] if actions else None
    stop = flow.while_queued[1] if flow.while_queued else None
    if isinstance(ask, Ask) and ask.node != stop and flow.nodes[ask.node].type in ("menu", "digits"):
        following, phase = ask.node, ask.phase
    else:
        following, phase, ask = None, "ask", None
    after = after.evolve(node=node, outcome=outcome, outcome_step=outcome_step, transfer_reason=reason, queue_next=following,
                         queue_phase=phase, queue_asked=ask is not None)
    return _log(after, event.at, "queued_answer", field=flow.nodes[event.node].field), ask


def _infer(flow: Flow, session: Session, at: float) -> Session:
    """Answers the call already has that give others (the flow's `inferences`)."""
    for rule in flow.inferences:
        if all(session.answers.get(field) == value for field, value in rule.when.items()):
            new = {field: value for field, value in rule.then.items() if field not in session.answers}
            if new:
                session = _log(session, at, "inferred", {"answers": {**session.answers, **new}, "inferred": (*session.inferred, *new)},
                               fields=sorted(new))
    return session


def _fell_back(session: Session) -> bool:
    """Whether the call is already in the part for when no agent can answer."""
    return any(entry.get("event") in ("closed", "unanswered") for entry in session.history)


def _give_up(session: Session, reason: str, at: float, conditions: Conditions) -> tuple[Session, tuple[Action, ...]]:
    why = Say("commun.silence") if reason == "no_input" else Say("parole.pas_compris")
    if conditions.service_open:
        says, outcome = (why, Say("conseiller.indisponible")), "unanswered"
    else:
        says, outcome = (why, Say.filled("horaires.ferme", quand=conditions.reopening), Say("horaires.au_revoir")), "closed"
    return _log(session, at, "end", {"outcome": outcome}, outcome=outcome), (Hangup(says),)


def _closed_sentences(flow: Flow, action: Action, reopening: str) -> Action:
    says = getattr(action, "says", ())
    if not any(say.key in flow.closed_prompts for say in says):
        return action
    changed = tuple(Say.filled(flow.closed_prompts[say.key], **dict(say.params), quand=reopening) if say.key in flow.closed_prompts else say
                    for say in says)
    return replace(action, says=changed)


def _step(flow: Flow, session: Session, event: Event) -> tuple[Session, tuple[Action, ...]]:
    node = flow.nodes.get(session.node)
    if node is not None and node.type == "rating" and (event.node, event.phase) == (session.node, session.phase):
        return _rated(flow, node, session, event)  # also after an agent, once the call's outcome is set
    if session.ended:
        return session, (Hangup(),)
    if node is None:
        return _fail(session, event.at)
    if (event.node, event.phase) != (session.node, session.phase):
        # An answer to a question we no longer ask (a retried webhook): ask the current one again.
        return session, (_ask(flow, node, session, full=False),)
    if isinstance(event, NoInput):
        return _no_input(flow, node, session, event.at)
    if isinstance(event, Spoken):
        return _heard(flow, node, session, event)
    if isinstance(event, GuideRequested):
        session = _log(session, event.at, "sms", guide=event.guide, status=event.status)
        return session, (_ask(flow, node, session, full=False, lead=(Say(_GUIDE_PROMPTS[event.status]),)),)
    if isinstance(event, Recorded) and node.type != "record":
        # A message posted to a question that records none (a forged or stray request): ask again.
        return session, (_ask(flow, node, session, full=False),)
    if isinstance(event, Recorded) and event.duration == 0:
        return _no_message(flow, node, session, event.at)
    if isinstance(event, Recorded):
        session = _log(session, event.at, "answer", {"answers": {**session.answers, node.field: event.url}}, field=node.field,
                       duration=event.duration)
        return _enter(flow, session, node.next, event.at)
    digits = event.digits
    if REPEAT_KEY in digits:
        session = _log(session, event.at, "repeat")
        return session, (_ask(flow, node, session, full=True),)
    if digits == AGENT_KEY:
        session = _log(session, event.at, "agent")
        return _transfer(session, "caller_request", event.at)
    if session.phase == "confirm":
        return _confirm(flow, node, session, digits, event.at)
    if session.phase == "speech":
        return _confirm_speech(flow, node, session, digits, event.at)
    if node.type == "digits" and node.options:
        return _picked(flow, node, session, digits, event.at)
    if node.type == "digits":
        return _keyed_number(flow, node, session, digits, event.at)
    return _choose(flow, node, session, digits, event.at)


def preview(flow: Flow, name: str) -> tuple[Action, ...]:
    """What a caller hears on arriving at node `name` (supervisors' previews)."""
    session = Session(call_sid="CApreview", caller="", started_at=0.0, flow_version=flow.version)
    return _enter(flow, session, name, 0.0)[1]


def _fall_back(flow: Flow, session: Session, at: float, lead: tuple[Say, ...], event: str) -> tuple[Session, tuple[Action, ...]]:
    """The caller needs an agent but none can answer (`event`: "closed" or "unanswered"): say why
    (`lead`) and offer what the flow's `after_hours` part offers (callback, message), or say goodbye."""
    session = _log(session, at, event, {"outcome": None}, reason=session.transfer_reason)
    if flow.after_hours:
        return _enter(flow, session, flow.after_hours, at, lead)
    outcome, bye = ("closed", Say("horaires.au_revoir")) if event == "closed" else ("unanswered", Say("conseiller.indisponible"))
    if event != "closed":
        lead = ()
    return _log(session, at, "end", {"outcome": outcome}, outcome=outcome), (Hangup((*lead, bye)),)


_CALLBACK_WHILE_WAITING = ("rappel", "pendant l'attente")  # the answer recorded, as the agent reads it


def wants_callback(session: Session, at: float) -> Session:
    """The caller, waiting for an agent, asked to be called back instead."""
    field, answer = _CALLBACK_WHILE_WAITING
    return _log(session, at, "callback_offer", {"answers": {**session.answers, field: answer}})


def waiting_for_callback(session: Session) -> bool:
    """Whether the caller left the queue because they asked to be called back."""
    field, answer = _CALLBACK_WHILE_WAITING
    return session.answers.get(field) == answer


def called_back_later(session: Session, at: float) -> tuple[Session, tuple[Action, ...]]:
    """The caller left the queue to be called back: that is how the call ends."""
    session = _log(session, at, "end", {"outcome": "callback", "outcome_step": session.step}, outcome="callback")
    return session, (Hangup((Say("fin.rappel"),)),)


def spoken_key(key: str) -> str:
    """How a key is named aloud in French."""
    return _SPOKEN_KEYS.get(key, key)


def _enter(flow: Flow, session: Session, name: str, at: float, lead: tuple[Say, ...] = ()) -> tuple[Session, tuple[Action, ...]]:
    says = list(lead)
    if flow.inferences:
        session = _infer(flow, session, at)
    for _ in range(_MAX_CHAINED):
        node = flow.nodes.get(name)
        if node is None:
            return _fail(session, at)
        if node.field in session.inferred and node.type in ("menu", "digits"):
            # Already known from another answer: not asked; the flow goes on as if it had been.
            value = session.answers.get(node.field)
            session = _log(session.evolve(node=name, step=node.step or session.step), at, "skip", field=node.field, inferred=True)
            name = next((choice.goto for choice in node.choices.values() if choice.answer == value), None) or node.next or \
                next(iter(node.choices.values())).goto
            continue
        step = node.step or session.step
        # One copy for the new position and its "enter" event (this runs at every question).
        session = session.evolve(
            node=name,
            phase="ask",
            entered_at=at,
            failures=0,
            pending=None,
            step=step,
            history=session.history + ({"at": round(at, 3), "node": name, "step": step, "event": "enter"},),
        )
        if node.type == "say":
            says.append(Say(node.prompt))
            name = node.next
            continue
        if node.type == "rating" and flow.ratings_off:  # the flow asks no rating: the step is passed
            name = node.next
            continue
        if node.type == "branch":  # an answer the call already has (or the caller's number) decides where to go
            known = {**session.answers, CALLER_FIELD: session.caller}
            name = next((target for field, target in node.branches.items() if known.get(field)), node.next)
            continue
        if node.type == "end":
            outcome = node.outcome
            if outcome == "closed" and _last_fall_back(session) == "unanswered":
                outcome = "unanswered"  # the after-hours part served because no agent answered, not because it was closed
            session = _log(session, at, "end", {"outcome": outcome, "outcome_step": session.step}, outcome=outcome)
            return session, (Hangup((*says, Say(node.prompt))),)
        if node.type == "transfer":
            return _transfer(session, node.reason, at, (*says, Say(node.prompt)))
        return session, (_ask(flow, node, session, full=True, lead=tuple(says)),)
    return _fail(session, at)


def _ask(flow: Flow, node: Node, session: Session, full: bool, lead: tuple[Say, ...] = ()) -> Ask | Listen:
    settings = flow.settings
    if session.phase == "speech":
        word = (node.speech.get(session.pending or "") or ("",))[0]
        return Ask(node.name, "speech", (*lead, Say.filled("parole.confirmation", mot=word)), settings.menu_timeout)
    if session.phase == "confirm":
        key = "saisie.relecture" if full else "saisie.relecture_courte"
        pending = session.pending or ""
        spoken = identifiers.spoken_phone(pending) if node.check == "telephone" else identifiers.spoken_groups(pending)
        read_back = Say.filled(key, chiffres=spoken)
        return Ask(node.name, "confirm", (*lead, read_back), settings.menu_timeout)
    prompt = Say(node.prompt if full or not node.short else node.short)
    if node.say_caller:
        prompt = Say.filled(prompt.key, numero=identifiers.spoken_phone(session.caller))
    if node.type == "record":
        return Listen(node.name, (*lead, prompt), node.max_length)
    if node.type == "digits" and node.options:
        # One key is taken at once; more are asked for after it (a single answer waits for nothing).
        if session.phase == "more":
            more = Say.filled("saisie.autre_option", choix=", ".join(node.options[key] for key in session.pending or ""))
            return Ask(node.name, "more", (*lead, more), settings.menu_timeout, 1, "#")
        return Ask(node.name, "ask", (*lead, prompt), settings.menu_timeout, 1, "#")
    if node.type == "digits":
        return Ask(node.name, "ask", (*lead, prompt), settings.digits_timeout, None, "#")
    hints = tuple(word for words in node.speech.values() for word in words)
    if node.type == "wait":
        return Ask(node.name, "ask", (*lead, prompt), settings.menu_timeout, pause=settings.wait_pause, hints=hints)
    return Ask(node.name, "ask", (*lead, prompt), settings.menu_timeout, hints=hints)


def _no_input(flow: Flow, node: Node, session: Session, at: float) -> tuple[Session, tuple[Action, ...]]:
    settings = flow.settings
    if node.type == "wait" and session.phase == "ask" and at - session.entered_at < settings.wait_max:
        # The caller is doing what we asked: a gentle reminder, not a failed answer.
        hold = Say(node.hold or "commun.attente")
        return _log(session, at, "wait"), (Ask(node.name, "ask", (hold,), settings.menu_timeout, pause=settings.wait_pause),)
    if node.type == "record":  # Twilio fell through its <Record>: nothing was recorded
        return _no_message(flow, node, session, at)
    if session.phase == "more":  # no other key: the keys pressed so far are the answer
        return _accept_number(flow, node, session, _labels(node, session.pending or ""), at)
    if node.type == "digits" and node.optional and session.phase == "ask":
        # Silence, or # alone, at a question the caller may skip: go on without an answer (an
        # identifier passed so is said to be asked by the agent).
        lead = (Say("saisie.passee"),) if node.check in identifiers.IDENTIFIERS else ()
        return _enter(flow, _log(session, at, "skip", field=node.field), node.next, at, lead)
    if node.silence and session.phase == "ask":  # a question where silence is an answer
        return _enter(flow, _log(session, at, "skip", field=node.field), node.silence, at)
    return _failed(flow, node, session, at, "silence", "no_input", Say("commun.silence"))


def _failed(flow: Flow, node: Node, session: Session, at: float, event: str, reason: str, why: Say, **extra) -> tuple[Session, tuple[Action, ...]]:
    session = _log(session, at, event, {"failures": session.failures + 1}, **extra)
    if session.failures >= flow.settings.max_attempts and node.type == "digits" and node.optional:
        # A number the caller cannot give (forgotten, with letters…): the question is passed, the
        # rest of the questionnaire goes on, and the agent asks for it.
        return _enter(flow, _log(session, at, "skip", field=node.field), node.next, at, (why, Say("saisie.passee")))
    if session.failures >= flow.settings.max_attempts:
        return _transfer(session, reason, at)
    return session, (_ask(flow, node, session, full=False, lead=(why,)),)


def _choose(flow: Flow, node: Node, session: Session, key: str, at: float) -> tuple[Session, tuple[Action, ...]]:
    choice = node.choices.get(key)
    if choice is None:
        why = Say.filled("commun.touche_invalide", touche=spoken_key(key))
        return _failed(flow, node, session, at, "invalid", "invalid_input", why, key=key)
    changes = {"answers": {**session.answers, node.field: choice.answer}} if node.field and choice.answer is not None else None
    session = _log(session, at, "answer", changes, key=key, field=node.field, answer=choice.answer)
    return _enter(flow, session, choice.goto, at)


def _keyed_number(flow: Flow, node: Node, session: Session, digits: str, at: float) -> tuple[Session, tuple[Action, ...]]:
    verdict = identifiers.check(node.check, digits)
    if not verdict.ok:
        why = _number_problem(verdict, digits)
        return _failed(flow, node, session, at, "invalid", "invalid_input", why, problem=verdict.problem, length=len(digits))
    if not node.confirm:
        return _accept_number(flow, node, session, verdict.value, at)
    session = session.evolve(phase="confirm", pending=verdict.value)
    return session, (_ask(flow, node, session, full=True),)


def _heard(flow: Flow, node: Node, session: Session, event: Spoken) -> tuple[Session, tuple[Action, ...]]:
    """A spoken answer: sure enough, it counts as the key; unsure, it is read back; else not understood."""
    text = _plain(event.text)
    keys = [key for key, words in node.speech.items() if any(re.search(rf"\b{re.escape(_plain(w))}\b", text) for w in words)]
    if len(keys) != 1 or session.phase != "ask":
        return _failed(flow, node, session, event.at, "invalid", "invalid_input", Say("parole.pas_compris"),
                       heard=identifiers.masked(event.text[:60]))
    if event.confidence * 100 >= flow.settings.speech_confidence:
        session = _log(session, event.at, "spoken", key=keys[0], confidence=round(event.confidence, 2))
        return _choose(flow, node, session, keys[0], event.at)
    session = _log(session, event.at, "spoken_unsure", {"phase": "speech", "pending": keys[0]}, key=keys[0],
                   confidence=round(event.confidence, 2))
    return session, (_ask(flow, node, session, full=True),)


def _confirm_speech(flow: Flow, node: Node, session: Session, key: str, at: float) -> tuple[Session, tuple[Action, ...]]:
    if key == "1":
        return _choose(flow, node, session.evolve(phase="ask"), session.pending or "", at)
    if key == "2":
        session = session.evolve(phase="ask", pending=None)
        return session, (_ask(flow, node, session, full=True),)
    why = Say.filled("commun.touche_invalide", touche=spoken_key(key))
    return _failed(flow, node, session, at, "invalid", "invalid_input", why, key=key)


def _plain(text: str) -> str:
    """Lower case without accents or punctuation, for matching what was said."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return re.sub(r"[^a-z0-9 ]+", " ", "".join(c for c in decomposed if not unicodedata.combining(c)))


def _picked(flow: Flow, node: Node, session: Session, digits: str, at: float) -> tuple[Session, tuple[Action, ...]]:
    unknown = [key for key in digits if key not in node.options]
    if unknown:
        why = Say.filled("commun.touche_invalide", touche=spoken_key(unknown[0]))
        return _failed(flow, node, session, at, "invalid", "invalid_input", why, key=unknown[0])
    keys = "".join(dict.fromkeys((session.pending or "") + digits))
    if len(digits) == 1 and len(keys) < len(node.options):  # one key: ask whether there are more
        session = _log(session, at, "option", {"phase": "more", "pending": keys}, key=digits)
        return session, (_ask(flow, node, session, full=True),)
    return _accept_number(flow, node, session, _labels(node, keys), at)


def _labels(node: Node, keys: str) -> str:
    return ", ".join(node.options[key] for key in keys)


def _no_message(flow: Flow, node: Node, session: Session, at: float) -> tuple[Session, tuple[Action, ...]]:
    """An empty recording is no message: said so, and the flow goes where it says (`if_empty`)."""
    session = _log(session, at, "skip", field=node.field)
    return _enter(flow, session, node.if_empty or node.next, at, (Say("commun.message_vide"),))


def _number_problem(verdict: identifiers.Verdict, digits: str) -> Say:
    if verdict.problem == "length":
        return Say.filled("saisie.longueur", compte=str(len(digits)), attendu=verdict.expected)
    if verdict.problem == "prefix":
        return Say("saisie.prefixe")
    if verdict.problem == "corsica":
        return Say("saisie.corse")
    if verdict.problem == "checksum":
        return Say("saisie.cle")
    return Say("saisie.chiffres")


def _confirm(flow: Flow, node: Node, session: Session, key: str, at: float) -> tuple[Session, tuple[Action, ...]]:
    if key == "1":
        return _accept_number(flow, node, session, session.pending or "", at)
    if key == "2":
        session = _log(session, at, "correct", {"phase": "ask", "pending": None, "failures": 0})
        return session, (_ask(flow, node, session, full=True),)
    why = Say.filled("commun.touche_invalide", touche=spoken_key(key))
    return _failed(flow, node, session, at, "invalid", "invalid_input", why, key=key)


def _accept_number(flow: Flow, node: Node, session: Session, value: str, at: float) -> tuple[Session, tuple[Action, ...]]:
    session = _log(session, at, "answer", {"answers": {**session.answers, node.field: value}}, field=node.field, length=len(value))
    return _enter(flow, session, node.next, at)


def _fail(session: Session, at: float) -> tuple[Session, tuple[Action, ...]]:
    return _transfer(_log(session, at, "error"), "technical_error", at)


def _transfer(session: Session, reason: str, at: float, says: tuple[Say, ...] | None = None) -> tuple[Session, tuple[Action, ...]]:
    if says is None:
        says = (Say(REASON_PROMPTS.get(reason, "transfert.erreur")),)
    return _log(session, at, "transfer", {"outcome": "transferred", "transfer_reason": reason}, reason=reason), (Transfer(reason, says),)


def _log(session: Session, at: float, event: str, changes: dict | None = None, **details) -> Session:
    """The session with `changes` and one more history entry (at the node it was at): one copy."""
    entry = {"at": round(at, 3), "node": session.node, "step": session.step, "event": event}
    entry.update({k: v for k, v in details.items() if v is not None})
    return session.evolve(**(changes or {}), history=session.history + (entry,))
