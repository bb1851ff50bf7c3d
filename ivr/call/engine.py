"""The call logic: a pure `step(flow, session, event, conditions) -> (session, actions)`, no Flask, no I/O."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from . import visual
from .answers import CALLER_FIELD, REASON_PROMPTS, spoken_key  # noqa: F401  (part of the engine's interface)
from .answers import answer as _step
from .answers import ask as _ask
from .answers import enter as _enter
from .answers import from_device as _from_device
from .answers import log as _log
from .answers import technical_failure as _fail
from .answers import transfer as _transfer
from .flow import SAID, Flow, Guide
from .identifiers import can_receive
from .session import (
    OPEN,
    Action,
    Ask,
    Conditions,
    Event,
    Experiment,
    Hangup,
    Keys,
    NoInput,
    PageAction,
    Say,
    Session,
    Transfer,
)


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
    if isinstance(event, PageAction):  # a button of the visual guide on the caller's phone
        return _served(flow, *visual.apply(flow, session, event), event.at, conditions)
    return _served(flow, *_step(flow, session, event), event.at, conditions)


def page_dropped(session: Session, page: PageAction) -> Session:
    """A button of the visual guide that the caller's own answer on the line made pointless: noted in the history."""
    return _log(session, page.at, "page", action=page.action, late=True, node_pressed=page.node)


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
    failing there ends the call (it would start the same menu again, forever). The flow's variants
    are said instead of their usual sentences where their conditions hold (closed, no SMS, a
    landline…)."""
    ask = actions[-1] if actions else None
    if (flow.while_queued and conditions.queue and conditions.service_open and conditions.agents and isinstance(ask, Ask)
            and ask.node == flow.while_queued[0] and session.queue_next is None and not session.ended):
        # The rest of the questions will be asked while the caller waits for an agent: to the queue now.
        session = session.evolve(queue_next=ask.node, queue_phase="ask")
        session, actions = _transfer(session, "diagnostic_complete", at, (*ask.says[:-1], Say("etape6.transfert_file")))
        return _as_heard_now(flow, session, actions, conditions)
    transfer = next((action for action in actions if isinstance(action, Transfer)), None)
    if transfer is not None:
        if transfer.reason in ("no_input", "invalid_input") and fell_back(session):
            session, actions = _give_up(session, transfer.reason, at, conditions)
        elif not conditions.service_open or not conditions.agents:
            return unanswered(flow, session, at, conditions)
    return _as_heard_now(flow, session, actions, conditions)


def unanswered(flow: Flow, session: Session, at: float, conditions: Conditions = OPEN) -> tuple[Session, tuple[Action, ...]]:
    """No agent can take the call (the service is closed, none is configured, or the one put
    through did not answer): say why and offer what the flow's after-hours part offers (callback,
    message) rather than just goodbye."""
    if conditions.service_open:
        session, actions = _fall_back(flow, session, at, (Say("conseiller.aucun"),), "unanswered")
    else:
        session, actions = _fall_back(flow, session, at, (Say.filled("horaires.ferme", quand=conditions.reopening),), "closed")
    return _as_heard_now(flow, session, actions, conditions)


def _as_heard_now(flow: Flow, session: Session, actions: tuple[Action, ...], conditions: Conditions) -> tuple[Session, tuple[Action, ...]]:
    """The sentences as this caller hears them now: each replaced by the first of the flow's variants
    whose conditions all hold (or left out), and the facts they state remembered, so that each is
    said once (« dit:fermeture » holds from the next answer on: within one answer, a sentence and
    the one after it are written to go together)."""
    if not flow.variants and not flow.facts:
        return session, actions
    before, said = session.said, list(session.said)
    heard = []
    for action in actions:
        says = getattr(action, "says", None)
        if not says:
            heard.append(action)
            continue
        changed = []
        for say in says:
            say = _variant(flow, session, say, conditions, before)
            if say is None:
                continue
            said.extend(fact for fact, keys in flow.facts.items() if say.key in keys and fact not in said)
            changed.append(say)
        heard.append(action if tuple(changed) == says else replace(action, says=tuple(changed)))
    if tuple(said) != session.said:
        session = session.evolve(said=tuple(said))
    return session, tuple(heard)


def _variant(flow: Flow, session: Session, say: Say, conditions: Conditions, said) -> Say | None:
    for variant in flow.variants.get(say.key, ()):
        if all(holds(condition, session, conditions, said, flow) for condition in variant.when):
            if variant.say is None:
                return None
            params = {**dict(say.params), **({"quand": conditions.reopening} if not conditions.service_open else {})}
            return Say(variant.say, tuple(sorted(params.items())))
    return say


def instead(flow: Flow, session: Session, conditions: Conditions) -> dict[str, str | None]:
    """Each sentence that has a variant holding now → what is said instead (None: nothing)."""
    found = {}
    for key, variants in flow.variants.items():
        chosen = next((variant for variant in variants if all(holds(c, session, conditions, session.said, flow) for c in variant.when)), None)
        if chosen is not None:
            found[key] = chosen.say
    return found


def holds(condition: str, session: Session, conditions: Conditions, said=(), flow: Flow | None = None) -> bool:
    """Whether `condition` (flow.CONDITIONS, or « dit:fait ») is true for this call now."""
    if condition.startswith(SAID):
        return condition[len(SAID):] in said
    if condition in ("ferme", "ouvert"):
        return conditions.service_open == (condition == "ouvert")
    if condition == "sans_conseiller":
        return not (conditions.service_open and conditions.agents)
    if condition == "sans_sms":
        return not conditions.sms
    if condition == "fixe":
        return not can_receive(session.caller)
    if condition == "sans_reponses":  # to the diagnosis (the after-hours menu's choice is no answer an agent reads)
        steps = {node.field: node.step for node in flow.nodes.values() if node.field} if flow is not None else {}
        return not any(field != CALLER_FIELD and field not in session.inferred and steps.get(field, 0) is not None
                       for field in session.answers)
    return conditions.queue == (condition == "file")


def hung_up(flow: Flow, session: Session, at: float) -> Session:
    """The caller hung up mid-call: at a question whose `outcome` says what hanging up there means
    (« Bravo, you may hang up »), the call ends with it; elsewhere it stays without one."""
    node = flow.nodes.get(session.node)
    if session.ended or node is None or node.type == "end" or not node.outcome:
        return session
    return _log(session, at, "end", {"outcome": node.outcome, "outcome_step": session.step}, outcome=node.outcome)


def put_through(session: Session, at: float) -> Session:
    """The caller was put through without the session (the fallback, or the store down then): the
    session says so now, as a transfer for a technical error."""
    return _transfer(session, "technical_error", at)[0]


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


def queued_question(flow: Flow, session: Session, at: float) -> tuple[Session, Ask | None]:
    """The question to ask now, while the caller waits for an agent (None when there is none left).
    A question asked at the last turn of the wait and left unanswered is silence, as on the line:
    skipped if it may be, else asked again, shorter, until `max_attempts`."""
    if session.queue_next is None or session.queue_next not in flow.nodes:
        return session, None
    if session.queue_asked:
        return queued_answer(flow, session, NoInput(session.queue_next, session.queue_phase, at))
    node = flow.nodes[session.queue_next]
    if session.queue_phase == "ask" and _from_device(node, session) is not None:
        # A device sent this answer since the question was chosen: not asked, on to the next one.
        probe = session.evolve(node=node.name, phase="ask", outcome=None)
        return _queued_next(flow, session, *_enter(flow, probe, node.name, at))
    ask = _ask(flow, node, session.evolve(node=node.name, phase=session.queue_phase), full=True)
    return session.evolve(queue_asked=True), ask if isinstance(ask, Ask) else None


def answers_queued_question(session: Session, event: Event) -> bool:
    """Whether `event` answers the question asked in the queue now (not a stray or late answer)."""
    return session.queue_next is not None and event.node == session.queue_next and event.phase == session.queue_phase


def queued_answer(flow: Flow, session: Session, event: Event) -> tuple[Session, Ask | None]:
    """An answer given while waiting in the queue: kept at once; the next question (or None)."""
    if not answers_queued_question(session, event):
        return session, None  # a stray or repeated answer: the wait goes on
    probe = session.evolve(node=event.node, phase=event.phase, outcome=None)
    after, ask = _queued_next(flow, session, *_step(flow, probe, event))
    return _log(after, event.at, "queued_answer", field=flow.nodes[event.node].field), ask


def _queued_next(flow: Flow, session: Session, after: Session, actions: tuple[Action, ...]) -> tuple[Session, Ask | None]:
    """The call after a queued question was answered or passed (`after`, `actions` as the line
    would have gone on): where it stood kept (it is with the queue, not at that question), and the
    next question of the queued part, or None when they are over."""
    node, outcome, outcome_step, reason = session.node, session.outcome, session.outcome_step, session.transfer_reason
    ask = actions[-1] if actions else None
    stop = flow.while_queued[1] if flow.while_queued else None
    if isinstance(ask, Ask) and ask.node != stop and flow.nodes[ask.node].type in ("menu", "digits"):
        following, phase = ask.node, ask.phase
    else:
        following, phase, ask = None, "ask", None
    after = after.evolve(node=node, outcome=outcome, outcome_step=outcome_step, transfer_reason=reason, queue_next=following,
                         queue_phase=phase, queue_asked=ask is not None)
    return after, ask


def fell_back(session: Session) -> bool:
    """Whether the call is already in the part for when no agent can answer."""
    return any(entry.get("event") in ("closed", "unanswered") for entry in session.history)


def _give_up(session: Session, reason: str, at: float, conditions: Conditions) -> tuple[Session, tuple[Action, ...]]:
    why = Say("commun.silence") if reason == "no_input" else Say("parole.pas_compris")
    if conditions.service_open:
        says, outcome = (why, Say("conseiller.indisponible")), "unanswered"
    else:
        says, outcome = (why, Say.filled("horaires.ferme", quand=conditions.reopening), Say("horaires.au_revoir")), "closed"
    return _log(session, at, "end", {"outcome": outcome}, outcome=outcome), (Hangup(says),)


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

