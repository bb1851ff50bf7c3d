"""The call while it waits in the queue: the turns of the wait (the questions left, then the hold
message and the callback offer), the answers given there, and leaving the queue to be called back.
Like `calls`, no Flask: the web layer gives the URLs and the event."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .. import french, metrics
from ..call import devices, engine, twiml
from ..call.flow import Flow
from ..call.library import Bundle
from ..call.session import Ask, Event, Say, Session
from ..storage.records import SIMULATED_PREFIX
from . import endings
from .calls import Urls, replayed, with_reply
from .services import Services
from .writes import write

log = logging.getLogger(__name__)
CODE_SAID = "code_ordinateur"  # in the session's `said`: the computer page's code was told


def wait(ivr: Services, call_sid: str, position: int | None, minutes: int | None, offer_url: str, question_url, urls: Urls,
         token: str = "") -> str:
    """One turn of the wait in the queue: the next question of the questionnaire while there is one
    (each answer is kept at once), else the hold message and, after a while, the callback offer."""
    session = ivr.store.load(call_sid) if call_sid else None
    if replayed(session, token):
        return session.reply
    if session is not None and position:  # the position is said when it changes, not at every turn of the wait
        said = f"position:{position}"
        if said in session.said:
            position = None
        else:
            session = session.evolve(said=(*[fact for fact in session.said if not fact.startswith("position:")], said))
            if not session.queue_next:
                ivr.store.save(session, force=True)
    if session is not None and session.queue_next:
        bundle = ivr.bundle(session.flow_version)
        before = (session.queue_next, session.queue_asked)
        session, ask = engine.queued_question(bundle.flow, endings.with_devices(ivr, session)[0], ivr.clock())
        if ask is not None:
            _count_asked(session, ask, before)
            session, lead = _with_computer_code(ivr, bundle.flow, session, ask)
            body = _hold(ivr, bundle, session.variants, position, minutes=minutes, question=ask, question_url=question_url(ask.node, ask.phase),
                         lead=lead)
            ivr.store.save(with_reply(session, token, body), force=True)
            return body
        _questions_over(ivr, session, urls)
    # The call's own flow version and experiment wording; without a session (store down, a call we
    # never saw), the words in service.
    bundle, variants = (ivr.bundle(session.flow_version), session.variants) if session is not None else (ivr.bundle(), {})
    return _hold(ivr, bundle, variants, position, minutes=minutes, offer_url=offer_url)


def wait_answer(ivr: Services, call_sid: str, event: Event, question_url, urls: Urls, token: str = "") -> str:
    """An answer given in the queue: kept at once in the session (the agents' API serves it from
    there), then the next question; the call's record and the helpdesk's document follow when the
    questions are over, or when the call ends before. An answer to no question asked now (late, or
    sent twice) changes nothing: back to the wait."""
    session = ivr.store.load(call_sid)
    if replayed(session, token):
        return session.reply
    if session is None or not engine.answers_queued_question(session, event):
        return twiml.empty()  # back to the wait
    bundle = ivr.bundle(session.flow_version)
    if not call_sid.startswith(SIMULATED_PREFIX):
        metrics.QUEUE_ANSWERED.inc()
    before = (session.queue_next, True)
    session, ask = engine.queued_answer(bundle.flow, endings.with_devices(ivr, session)[0], event)
    if ask is not None:
        _count_asked(session, ask, before)
        session, lead = _with_computer_code(ivr, bundle.flow, session, ask)
        body = _hold(ivr, bundle, session.variants, None, question=ask, question_url=question_url(ask.node, ask.phase), lead=lead)
        ivr.store.save(with_reply(session, token, body), force=True)
        return body
    body = _hold(ivr, bundle, session.variants, None, lead=(Say("attente.questions_finies"),), pause=1)
    _questions_over(ivr, with_reply(session, token, body), urls)
    return body


def _with_computer_code(ivr: Services, flow: Flow, session: Session, ask: Ask) -> tuple[Session, tuple[Say, ...]]:
    """Before the flow's first `computer_code` question: the computer page's address and a code for
    this call (issue 36); before the next ones, a reminder; unless the computer already sent its
    facts or the page cannot be reached. Said before the question, outside it: a key pressed for
    the question does not cut it off, and the code is not taken for an answer."""
    if ask.node not in flow.computer_code or not ivr.computer_address or devices.COMPUTER in session.devices:
        return session, ()
    said = f"{CODE_SAID}:{ask.node}"
    if said in session.said:
        return session, ()
    first = not any(fact.startswith(CODE_SAID) for fact in session.said)
    if not first and ask.node == flow.computer_code[0]:
        return session, ()
    try:
        code, _ = ivr.devices.code_for(session.call_sid, ivr.clock())
    except Exception:  # the database does not answer: the questions are asked, as without the page
        log.exception("[%s] no code for the computer page", session.call_sid)
        return session, ()
    key = "attente.code_ordinateur" if first else "attente.code_ordinateur_rappel"
    lead = Say.filled(key, adresse=french.spoken_address(ivr.computer_address), code=" ".join(code))
    return session.evolve(said=(*session.said, said)), (lead,)


def _count_asked(session: Session, ask: Ask, before: tuple[str | None, bool]) -> None:
    """A question asked in the queue, counted once: not again when it is asked again after a silence
    or a wrong key (the same question, asked already)."""
    if before != (ask.node, True) and not session.call_sid.startswith(SIMULATED_PREFIX):
        metrics.QUEUE_ASKED.inc()


def _hold(ivr: Services, bundle: Bundle, variants: Mapping[str, str], position: int | None, **options) -> str:
    """The hold message (`twiml.hold`) in `bundle`'s words: built once for each flow version,
    experiment wording, queue position and set of options, like the questions' documents; a
    question that reads back what this caller keyed in is built each time."""
    def build() -> str:
        return twiml.hold(ivr.speech(bundle, variants), position, **options)

    question = options.get("question")
    if (question is not None and twiml.filled_in((question,))) or any(say.params for say in options.get("lead", ())):
        return build()
    return ivr.twiml_cache.get(("hold", bundle.version, tuple(sorted(variants.items())), position, tuple(sorted(options.items()))), build)


def _questions_over(ivr: Services, session: Session, urls: Urls) -> None:
    """The questions asked in the queue are over: the session saved, the call's record and the
    agent's document written with what was said, and the helpdesk sent it as a second version."""
    at = ivr.clock()
    ivr.store.save(session.evolve(recorded=len(session.history), queue_next=None), force=True)
    document = endings.completed_document(ivr, session, at, urls.links(session.call_sid))
    write(ivr, "progress", session=session.to_dict(), context=document, events_from=session.recorded)


def wants_callback(ivr: Services, call_sid: str) -> str:
    """The caller, waiting in the queue, pressed the key to be called back: leave the queue."""
    session = ivr.store.load(call_sid)
    if session is not None:
        ivr.store.save(engine.wants_callback(session, ivr.clock()), force=True)
    return twiml.leave()
