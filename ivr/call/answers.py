"""How one question takes the caller's answer: keys, words, silence, a message, node by node, and
the moves along the flow they lead to (`enter`, `ask`, `transfer`). Pure: no Flask, no I/O; the
engine (`engine.py`) builds the calls' entry points on it."""

from __future__ import annotations

import re
import unicodedata

from . import devices, identifiers
from .flow import AGENT_KEY, RATINGS, REPEAT_KEY, SKIP_KEY, Flow, Node
from .session import Action, Ask, Event, GuideRequested, Hangup, Keys, Listen, NoInput, Recorded, Say, Session, Spoken, Transfer

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


_GUIDE_PROMPTS = {"sent": "sms.envoye", "sending": "sms.en_cours", "already": "sms.deja_envoye", "not_mobile": "sms.pas_mobile",
                  "unavailable": "sms.indisponible", "failed": "sms.echec"}


# ---- the logic ----------------------------------------------------------------------------------


def _last_fall_back(session: Session) -> str | None:
    return next((entry["event"] for entry in reversed(session.history) if entry.get("event") in ("closed", "unanswered")), None)


def _rated(flow: Flow, node: Node, session: Session, event: Event) -> tuple[Session, tuple[Action, ...]]:
    """One question, never repeated: a key from 1 to 5 is the rating; anything else (silence, another
    key) lets the call end as it would have."""
    lead: tuple[Say, ...] = ()
    if isinstance(event, Keys) and len(event.digits) == 1 and event.digits in RATINGS:
        session = log(session, event.at, "rating", {"rating": int(event.digits)}, rating=int(event.digits))
        lead = (Say("satisfaction.merci"),)
    else:
        session = log(session, event.at, "skip", field="note")
    if session.ended:  # after an agent: the call keeps its outcome
        after = flow.nodes.get(node.next or "")
        return session, (Hangup((*lead, Say(after.prompt if after is not None and after.type == "end" else "fin.au_revoir"))),)
    return enter(flow, session, node.next, event.at, lead)


def _infer(flow: Flow, session: Session, at: float) -> Session:
    """Answers the call already has that give others (the flow's `inferences`)."""
    for rule in flow.inferences:
        if all(session.answers.get(field) == value for field, value in rule.when.items()):
            new = {field: value for field, value in rule.then.items() if field not in session.answers}
            if new:
                session = log(session, at, "inferred", {"answers": {**session.answers, **new}, "inferred": (*session.inferred, *new)},
                               fields=sorted(new))
    return session


def answer(flow: Flow, session: Session, event: Event) -> tuple[Session, tuple[Action, ...]]:
    node = flow.nodes.get(session.node)
    if node is not None and node.type == "rating" and (event.node, event.phase) == (session.node, session.phase):
        return _rated(flow, node, session, event)  # also after an agent, once the call's outcome is set
    if session.ended:
        return session, (Hangup(),)
    if node is None:
        return technical_failure(session, event.at)
    if (event.node, event.phase) != (session.node, session.phase):
        # An answer to a question we no longer ask (a retried webhook): ask the current one again.
        return session, (ask(flow, node, session, full=False),)
    if isinstance(event, NoInput):
        return _no_input(flow, node, session, event.at)
    if isinstance(event, Spoken):
        return _heard(flow, node, session, event)
    if isinstance(event, GuideRequested):
        session = log(session, event.at, "sms", guide=event.guide, status=event.status)
        return session, (ask(flow, node, session, full=False, lead=(Say(_GUIDE_PROMPTS[event.status]),)),)
    if isinstance(event, Recorded) and node.type != "record":
        # A message posted to a question that records none (a forged or stray request): ask again.
        return session, (ask(flow, node, session, full=False),)
    if isinstance(event, Recorded) and event.hung_up and event.duration == 0:
        return session, (Hangup(),)  # gone without a word: the status callback ends the call as hung up
    if isinstance(event, Recorded) and event.duration == 0:
        return _no_message(flow, node, session, event.at)
    if isinstance(event, Recorded):
        session = log(session, event.at, "answer", {"answers": {**session.answers, node.field: event.url}}, field=node.field,
                       duration=event.duration)
        if event.hung_up:  # the message is kept and followed up; what comes next (a transfer…) never happened
            return log(session, event.at, "end", {"outcome": "voicemail", "outcome_step": session.step}, outcome="voicemail"), (Hangup(),)
        return enter(flow, session, node.next, event.at)
    digits = event.digits
    if REPEAT_KEY in digits:
        session = log(session, event.at, "repeat")
        return session, (ask(flow, node, session, full=True),)
    if digits == AGENT_KEY:
        session = log(session, event.at, "agent")
        return transfer(session, "caller_request", event.at)
    if session.phase == "confirm":
        return _confirm(flow, node, session, digits, event.at)
    if session.phase == "speech":
        return _confirm_speech(flow, node, session, digits, event.at)
    if node.type == "digits" and node.options:
        return _picked(flow, node, session, digits, event.at)
    if node.type == "digits":
        return _keyed_number(flow, node, session, digits, event.at)
    return choose(flow, node, session, digits, event.at)


def spoken_key(key: str) -> str:
    """How a key is named aloud in French."""
    return _SPOKEN_KEYS.get(key, key)


def enter(flow: Flow, session: Session, name: str, at: float, lead: tuple[Say, ...] = ()) -> tuple[Session, tuple[Action, ...]]:
    says = list(lead)
    if flow.inferences:
        session = _infer(flow, session, at)
    for _ in range(_MAX_CHAINED):
        node = flow.nodes.get(name)
        if node is None:
            return technical_failure(session, at)
        device_value = from_device(node, session)
        if device_value is not None:
            # Sent by the caller's phone or computer: not asked (« relevé sur l'appareil »).
            session = session.evolve(answers={**session.answers, node.field: device_value}, from_device=(*session.from_device, node.field))
        if (node.field in session.inferred or device_value is not None) and node.type in ("menu", "digits"):
            # Already known from another answer or from a device: not asked; the flow goes on as if it had been.
            value = session.answers.get(node.field)
            session = log(session.evolve(node=name, step=node.step or session.step), at, "skip", field=node.field,
                          **({"device": True} if device_value is not None else {"inferred": True}))
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
            session = log(session, at, "end", {"outcome": outcome, "outcome_step": session.step}, outcome=outcome)
            return session, (Hangup((*says, Say(node.prompt))),)
        if node.type == "transfer":
            return transfer(session, node.reason, at, (*says, Say(node.prompt)))
        return session, (ask(flow, node, session, full=True, lead=tuple(says)),)
    return technical_failure(session, at)


def from_device(node: Node, session: Session) -> str | None:
    """The answer the caller's devices give to this question, if it has none yet and that answer is
    one the question takes (a choice's answer, one of its options, a version its check accepts)."""
    if not session.devices or not node.field or node.field in session.answers or node.type not in ("menu", "digits"):
        return None
    value = devices.answers(session.devices).get(node.field)
    if value is None:
        return None
    if node.type == "menu":
        return value if any(choice.answer == value for choice in node.choices.values()) else None
    if node.options:
        return value if value in node.options.values() else None
    return value if not node.check or identifiers.check(node.check, value).ok else None


def ask(flow: Flow, node: Node, session: Session, full: bool, lead: tuple[Say, ...] = ()) -> Ask | Listen:
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
        return log(session, at, "wait"), (Ask(node.name, "ask", (hold,), settings.menu_timeout, pause=settings.wait_pause),)
    if node.type == "record":  # Twilio fell through its <Record>: nothing was recorded
        return _no_message(flow, node, session, at)
    if session.phase == "more":  # no other key: the keys pressed so far are the answer
        return _accept_number(flow, node, session, _labels(node, session.pending or ""), at)
    if node.type == "digits" and node.optional and session.phase == "ask":
        # Silence, or # alone, at a question the caller may skip: go on without an answer (an
        # identifier passed so is said to be asked by the agent).
        lead = (Say("saisie.passee"),) if node.check in identifiers.IDENTIFIERS else ()
        return enter(flow, log(session, at, "skip", field=node.field), node.next, at, lead)
    if node.silence and session.phase == "ask":  # a question where silence is an answer
        return enter(flow, log(session, at, "skip", field=node.field), node.silence, at)
    return _failed(flow, node, session, at, "silence", "no_input", Say("commun.silence"))


def _failed(flow: Flow, node: Node, session: Session, at: float, event: str, reason: str, why: Say, **extra) -> tuple[Session, tuple[Action, ...]]:
    session = log(session, at, event, {"failures": session.failures + 1}, **extra)
    if session.failures >= flow.settings.max_attempts and node.type == "digits" and node.optional:
        # A number the caller cannot give (forgotten, with letters…): the question is passed, the
        # rest of the questionnaire goes on, and the agent asks for it.
        return enter(flow, log(session, at, "skip", field=node.field), node.next, at, (why, Say("saisie.passee")))
    if session.failures >= flow.settings.max_attempts:
        return transfer(session, reason, at)
    return session, (ask(flow, node, session, full=False, lead=(why,)),)


def choose(flow: Flow, node: Node, session: Session, key: str, at: float) -> tuple[Session, tuple[Action, ...]]:
    choice = node.choices.get(key)
    if choice is None:
        why = Say.filled("commun.touche_invalide", touche=spoken_key(key))
        return _failed(flow, node, session, at, "invalid", "invalid_input", why, key=key)
    changes = {"answers": {**session.answers, node.field: choice.answer}} if node.field and choice.answer is not None else None
    session = log(session, at, "answer", changes, key=key, field=node.field, answer=choice.answer)
    return enter(flow, session, choice.goto, at)


def _keyed_number(flow: Flow, node: Node, session: Session, digits: str, at: float) -> tuple[Session, tuple[Action, ...]]:
    verdict = identifiers.check(node.check, digits)
    if not verdict.ok:
        why = _number_problem(verdict, digits)
        return _failed(flow, node, session, at, "invalid", "invalid_input", why, problem=verdict.problem, length=len(digits))
    if not node.confirm:
        return _accept_number(flow, node, session, verdict.value, at)
    session = session.evolve(phase="confirm", pending=verdict.value)
    return session, (ask(flow, node, session, full=True),)


def _heard(flow: Flow, node: Node, session: Session, event: Spoken) -> tuple[Session, tuple[Action, ...]]:
    """A spoken answer: sure enough, it counts as the key; unsure, it is read back; else not understood."""
    text = _plain(event.text)
    keys = [key for key, words in node.speech.items() if any(re.search(rf"\b{re.escape(_plain(w))}\b", text) for w in words)]
    if len(keys) != 1 or session.phase != "ask":
        return _failed(flow, node, session, event.at, "invalid", "invalid_input", Say("parole.pas_compris"),
                       heard=identifiers.masked(event.text[:60]))
    if event.confidence * 100 >= flow.settings.speech_confidence:
        session = log(session, event.at, "spoken", key=keys[0], confidence=round(event.confidence, 2))
        return choose(flow, node, session, keys[0], event.at)
    session = log(session, event.at, "spoken_unsure", {"phase": "speech", "pending": keys[0]}, key=keys[0],
                   confidence=round(event.confidence, 2))
    return session, (ask(flow, node, session, full=True),)


def _confirm_speech(flow: Flow, node: Node, session: Session, key: str, at: float) -> tuple[Session, tuple[Action, ...]]:
    if key == "1":
        return choose(flow, node, session.evolve(phase="ask"), session.pending or "", at)
    if key == "2":
        session = session.evolve(phase="ask", pending=None)
        return session, (ask(flow, node, session, full=True),)
    why = Say.filled("commun.touche_invalide", touche=spoken_key(key))
    return _failed(flow, node, session, at, "invalid", "invalid_input", why, key=key)


def _plain(text: str) -> str:
    """Lower case without accents or punctuation, for matching what was said."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return re.sub(r"[^a-z0-9 ]+", " ", "".join(c for c in decomposed if not unicodedata.combining(c)))


def _picked(flow: Flow, node: Node, session: Session, digits: str, at: float) -> tuple[Session, tuple[Action, ...]]:
    if digits == SKIP_KEY and SKIP_KEY not in node.options and node.optional and session.phase == "ask":
        return enter(flow, log(session, at, "skip", field=node.field, key=digits), node.next, at)  # « Pour passer, tapez 9 »
    unknown = [key for key in digits if key not in node.options]
    if unknown:
        why = Say.filled("commun.touche_invalide", touche=spoken_key(unknown[0]))
        return _failed(flow, node, session, at, "invalid", "invalid_input", why, key=unknown[0])
    keys = "".join(dict.fromkeys((session.pending or "") + digits))
    if len(digits) == 1 and len(keys) < len(node.options):  # one key: ask whether there are more
        session = log(session, at, "option", {"phase": "more", "pending": keys}, key=digits)
        return session, (ask(flow, node, session, full=True),)
    return _accept_number(flow, node, session, _labels(node, keys), at)


def _labels(node: Node, keys: str) -> str:
    return ", ".join(node.options[key] for key in keys)


def _no_message(flow: Flow, node: Node, session: Session, at: float) -> tuple[Session, tuple[Action, ...]]:
    """An empty recording is no message: said so, and the flow goes where it says (`if_empty`)."""
    session = log(session, at, "skip", field=node.field)
    return enter(flow, session, node.if_empty or node.next, at, (Say("commun.message_vide"),))


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
        session = log(session, at, "correct", {"phase": "ask", "pending": None, "failures": 0})
        return session, (ask(flow, node, session, full=True),)
    why = Say.filled("commun.touche_invalide", touche=spoken_key(key))
    return _failed(flow, node, session, at, "invalid", "invalid_input", why, key=key)


def _accept_number(flow: Flow, node: Node, session: Session, value: str, at: float) -> tuple[Session, tuple[Action, ...]]:
    session = log(session, at, "answer", {"answers": {**session.answers, node.field: value}}, field=node.field, length=len(value))
    return enter(flow, session, node.next, at)


def technical_failure(session: Session, at: float) -> tuple[Session, tuple[Action, ...]]:
    return transfer(log(session, at, "error"), "technical_error", at)


def transfer(session: Session, reason: str, at: float, says: tuple[Say, ...] | None = None) -> tuple[Session, tuple[Action, ...]]:
    if says is None:
        says = (Say(REASON_PROMPTS.get(reason, "transfert.erreur")),)
    return log(session, at, "transfer", {"outcome": "transferred", "transfer_reason": reason}, reason=reason), (Transfer(reason, says),)


def log(session: Session, at: float, event: str, changes: dict | None = None, **details) -> Session:
    """The session with `changes` and one more history entry (at the node it was at): one copy."""
    entry = {"at": round(at, 3), "node": session.node, "step": session.step, "event": event}
    entry.update({k: v for k, v in details.items() if v is not None})
    return session.evolve(**(changes or {}), history=session.history + (entry,))
