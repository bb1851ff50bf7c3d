"""The engine's smaller decisions, each checked whole (the session it returns and the actions): the
start of a call with an incident and experiments, the rating after an agent, the queue's questions,
the callback asked in the queue, hang-ups. No Flask, no store: what a mutation of engine.py changes
must show here (README, "Mutation testing")."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import ROOT

from ivr.call import engine, flow_loader, prompts
from ivr.call.session import Ask, Conditions, Experiment, Hangup, Keys, NoInput, PageAction, Say, Session, Transfer

AT = 1000.0


@pytest.fixture(scope="module")
def ecps():
    return flow_loader.load(ROOT / "flows" / "ecps.yaml", prompts.load(ROOT / "prompts"))


def events(session: Session) -> list[str]:
    return [entry["event"] for entry in session.history]


def at_node(ecps, name: str, **changes) -> Session:
    session, _ = engine.start(ecps, "CA1", "+33612345678", AT)
    return replace(session, node=name, phase="ask", entered_at=AT, step=ecps.nodes[name].step, **changes)


def transferred(ecps) -> Session:
    """A call put through to an agent after step 6."""
    return engine.put_through(at_node(ecps, "etape6_introduction"), AT + 5)


# ---- the start of a call ------------------------------------------------------------------------------------
def test_a_call_starts_at_the_first_question_with_its_identity_and_history(ecps):
    session, actions = engine.start(ecps, "CA1", "+33612345678", AT)
    assert (session.call_sid, session.caller, session.started_at, session.flow_version) == ("CA1", "+33612345678", AT, ecps.version)
    assert (session.node, session.phase, session.step, session.entered_at, session.failures) == ("etape1_a_jour", "ask", 1, AT, 0)
    assert (session.arms, session.variants, session.incident, session.outcome) == ({}, {}, None, None)
    assert [(entry["event"], entry["node"], entry["at"]) for entry in session.history] == [("enter", "accueil", AT), ("enter", "etape1_a_jour", AT)]
    assert actions == (Ask("etape1_a_jour", "ask", (Say("accueil.bienvenue"), Say("etape1.question")), timeout=ecps.settings.menu_timeout),)


def test_an_incident_is_announced_after_the_welcome_and_kept_in_the_session(ecps):
    session, (ask,) = engine.start(ecps, "CA1", "+33612345678", AT, Conditions(incident=(3, "Pro Santé Connect est en panne.")))
    assert ask.says == (Say("accueil.bienvenue"), Say.filled("incident.annonce", annonce="Pro Santé Connect est en panne."), Say("incident.suite"),
                        Say("etape1.question"))
    assert session.incident == 3
    incident = next(entry for entry in session.history if entry["event"] == "incident")
    assert (incident["incident"], incident["at"]) == (3, AT)


@pytest.mark.parametrize("share, arm", [(100, "B"), (0, "A")])
def test_a_call_gets_an_arm_of_each_experiment_for_its_whole_length(ecps, share, arm):
    experiment = Experiment(7, "etape1.question", "Votre application é-C-P-S est-elle à jour ? Non : 1. Oui : 2.", share)
    session, _ = engine.start(ecps, "CA1", "+33612345678", AT, Conditions(experiments=(experiment,)))
    assert session.arms == {"etape1.question": arm}
    assert session.variants == ({"etape1.question": experiment.text_b} if arm == "B" else {})
    entry = session.history[0]
    assert {key: entry[key] for key in ("event", "key", "arm", "experiment", "at")} == {
        "event": "experiment", "key": "etape1.question", "arm": arm, "experiment": 7, "at": AT}


def test_two_experiments_give_two_arms(ecps):
    first, second = Experiment(1, "etape1.question", "A1", 100), Experiment(2, "accueil.bienvenue", "B2", 100)
    session, _ = engine.start(ecps, "CA1", "+33612345678", AT, Conditions(experiments=(first, second)))
    assert session.arms == {"etape1.question": "B", "accueil.bienvenue": "B"}
    assert session.variants == {"etape1.question": "A1", "accueil.bienvenue": "B2"}


def test_the_arm_of_a_call_is_stable_and_follows_the_share():
    experiment = Experiment(4, "etape1.question", "B", 30)
    arms = [engine.arm_of(f"CA{number:032x}", experiment) for number in range(2000)]
    assert 0.25 < arms.count("B") / len(arms) < 0.35
    assert {engine.arm_of(f"CA{n:032x}", replace(experiment, share=0)) for n in range(200)} == {"A"}
    assert {engine.arm_of(f"CA{n:032x}", replace(experiment, share=100)) for n in range(200)} == {"B"}
    other = [engine.arm_of(f"CA{number:032x}", replace(experiment, id=5)) for number in range(2000)]
    assert other != arms  # another experiment on the same sentence draws its calls anew
    assert [engine.arm_of(f"CA{number:032x}", replace(experiment, key="accueil.bienvenue")) for number in range(2000)] != arms


# ---- saying the question again, hanging up ----------------------------------------------------------------
def test_resume_says_the_whole_question_again(ecps):
    session = at_node(ecps, "etape1_android", failures=2)
    after, (ask,) = engine.resume(ecps, session)
    assert after == session
    assert (ask.node, ask.phase, ask.says) == ("etape1_android", "ask", (Say("etape1.android"),))


def test_resume_of_an_ended_call_hangs_up_and_of_a_lost_node_transfers(ecps):
    ended = at_node(ecps, "fin_resolu", outcome="solved")
    assert engine.resume(ecps, ended) == (ended, (Hangup(),))
    lost, actions = engine.resume(ecps, replace(at_node(ecps, "etape1_a_jour"), node="disparu"))
    assert (lost.outcome, lost.transfer_reason) == ("transferred", "technical_error")
    assert isinstance(actions[-1], Transfer) and actions[-1].reason == "technical_error"


def test_hanging_up_where_the_flow_gives_an_outcome_ends_the_call_with_it(ecps):
    node = next(node for node in ecps.nodes.values() if node.outcome and node.type != "end")
    session = at_node(ecps, node.name)
    after = engine.hung_up(ecps, session, AT + 9)
    assert (after.outcome, after.outcome_step) == (node.outcome, node.step)
    assert after.history[-1] == {"at": AT + 9, "node": node.name, "step": node.step, "event": "end", "outcome": node.outcome}


@pytest.mark.parametrize("changes", [{"node": "etape1_a_jour"}, {"node": "disparu"}, {"node": "fin_resolu"},
                                     {"node": "note_conseiller", "outcome": "transferred"}])
def test_hanging_up_elsewhere_leaves_the_call_as_it_was(ecps, changes):
    session = replace(at_node(ecps, "etape1_a_jour"), **changes)
    assert engine.hung_up(ecps, session, AT + 9) == session


def test_a_button_made_pointless_by_the_callers_answer_is_noted(ecps):
    session = at_node(ecps, "etape2_batterie")
    after = engine.page_dropped(session, PageAction("etape2_batterie", "ask", "fait", AT + 3))
    assert after.history[-1] == {"at": AT + 3, "node": "etape2_batterie", "step": 2, "event": "page", "action": "fait", "late": True,
                                 "node_pressed": "etape2_batterie"}
    assert replace(after, history=session.history) == session


def test_a_preview_is_what_a_caller_hears_on_arriving(ecps):
    assert engine.preview(ecps, "etape1_a_jour") == (Ask("etape1_a_jour", "ask", (Say("etape1.question"),), timeout=ecps.settings.menu_timeout),)


# ---- put through, then the rating -------------------------------------------------------------------------
def test_put_through_without_the_session_is_a_technical_transfer(ecps):
    session = engine.put_through(at_node(ecps, "etape3_test"), AT + 5)
    assert (session.outcome, session.outcome_step, session.transfer_reason) == ("transferred", None, "technical_error")
    assert session.history[-1] == {"at": AT + 5, "node": "etape3_test", "step": 3, "event": "transfer", "reason": "technical_error"}


def test_after_the_agent_the_rating_question_is_asked_once(ecps):
    session = transferred(ecps)
    rated, (ask,) = engine.rate_after_agent(ecps, replace(session, failures=2, pending="12"), AT + 60)
    node = ecps.nodes[ecps.satisfaction]
    assert (rated.node, rated.phase, rated.entered_at, rated.failures, rated.pending) == (node.name, "ask", AT + 60, 0, None)
    assert rated.outcome == "transferred"  # the call's outcome stays the transfer
    assert rated.history[-1] == {"at": AT + 60, "node": node.name, "step": session.step, "event": "rating_offer"}
    assert (ask.node, ask.phase, ask.says[0]) == (node.name, "ask", Say("satisfaction.question_conseiller"))
    assert engine.rate_after_agent(ecps, rated, AT + 90) == (rated, (Hangup((Say("fin.au_revoir"),)),))


@pytest.mark.parametrize("change", ["rated", "ratings_off", "no_satisfaction"])
def test_no_rating_question_when_rated_or_when_the_flow_asks_none(ecps, change):
    session, flow = transferred(ecps), ecps
    if change == "rated":
        session = replace(session, rating=4)
    elif change == "ratings_off":
        flow = replace(ecps, ratings_off=True)
    else:
        flow = replace(ecps, satisfaction=None)
    assert engine.rate_after_agent(flow, session, AT + 60) == (session, (Hangup((Say("fin.au_revoir"),)),))


# ---- the queue: a callback asked while waiting ---------------------------------------------------------------
def test_a_callback_asked_in_the_queue_is_an_answer_then_the_calls_end(ecps):
    session = transferred(ecps)
    assert engine.waiting_for_callback(session) is False
    asked = engine.wants_callback(session, AT + 30)
    assert asked.answers == {**session.answers, "rappel": "pendant l'attente"}
    assert asked.history[-1]["event"] == "callback_offer" and asked.history[-1]["at"] == AT + 30
    assert engine.waiting_for_callback(asked) is True
    assert engine.waiting_for_callback(replace(asked, answers={"rappel": "plus tard"})) is False
    ended, actions = engine.called_back_later(asked, AT + 31)
    assert (ended.outcome, ended.outcome_step) == ("callback", session.step)
    assert ended.history[-1] == {"at": AT + 31, "node": session.node, "step": session.step, "event": "end", "outcome": "callback"}
    assert actions == (Hangup((Say("fin.rappel"),)),)


# ---- the queue: questions asked while waiting -----------------------------------------------------------------
QUEUE = Conditions(queue=True)


def queued(ecps, conditions: Conditions = QUEUE) -> tuple[Session, tuple]:
    """« No identifier » at step 6: the next question is the queue's first, so the caller goes to the queue with it."""
    return engine.step(ecps, at_node(ecps, "etape6_type_identifiant"), Keys("etape6_type_identifiant", "ask", "9", AT + 1), conditions)


def test_the_first_queued_question_sends_the_caller_to_the_queue(ecps):
    session, actions = queued(ecps)
    assert (session.queue_next, session.queue_phase, session.queue_asked) == (ecps.while_queued[0], "ask", False)
    assert (session.outcome, session.transfer_reason) == ("transferred", "diagnostic_complete")
    assert isinstance(actions[-1], Transfer) and actions[-1].says[-1] == Say("etape6.transfert_file")


@pytest.mark.parametrize("conditions", [Conditions(queue=False), Conditions(queue=True, service_open=False), Conditions(queue=True, agents=False)])
def test_without_a_queue_open_and_staffed_the_questions_are_asked_on_the_line(ecps, conditions):
    after, actions = queued(ecps, conditions)
    assert after.queue_next is None and after.transfer_reason is None
    assert not any(isinstance(action, Transfer) for action in actions)


def test_the_queues_questions_one_after_another_and_a_stray_answer_changes_nothing(ecps):
    session, _ = queued(ecps)
    first = session.queue_next
    asking, ask = engine.queued_question(ecps, session, AT + 10)
    assert ask is not None and (ask.node, ask.phase) == (first, "ask") and asking.queue_asked is True
    assert engine.answers_queued_question(asking, Keys(first, "ask", "1", AT + 11)) is True
    assert engine.answers_queued_question(asking, Keys(first, "confirm", "1", AT + 11)) is False
    assert engine.answers_queued_question(asking, Keys("etape1_a_jour", "ask", "1", AT + 11)) is False
    assert engine.queued_answer(ecps, asking, Keys("etape1_a_jour", "ask", "1", AT + 11)) == (asking, None)
    after, following = engine.queued_answer(ecps, asking, NoInput(first, "ask", AT + 11))
    assert (after.node, after.outcome, after.transfer_reason) == (session.node, "transferred", "diagnostic_complete")  # still in the queue
    assert after.history[-1]["event"] == "queued_answer" and after.history[-1]["field"] == ecps.nodes[first].field
    if following is not None:
        assert (after.queue_next, after.queue_phase, after.queue_asked) == (following.node, following.phase, True)


def test_no_queued_question_without_one_to_ask(ecps):
    session = transferred(ecps)
    assert engine.queued_question(ecps, session, AT) == (session, None)
    assert engine.queued_question(ecps, replace(session, queue_next="disparu"), AT) == (replace(session, queue_next="disparu"), None)


def test_what_was_said_before_the_first_queued_question_is_said_before_the_queue(ecps):
    session, actions = engine.step(ecps, at_node(ecps, "etape6_rpps"), NoInput("etape6_rpps", "ask", AT + 1), QUEUE)
    assert actions == (Transfer("diagnostic_complete", (Say("saisie.passee"), Say("etape6.transfert_file"))),)
    assert (session.queue_next, session.outcome) == ("etape6_carte", "transferred")


def test_the_first_queued_question_is_asked_in_full(ecps):
    session, _ = queued(ecps)
    asking, ask = engine.queued_question(ecps, session, AT + 10)
    assert ask == Ask("etape6_carte", "ask", (Say("etape6.carte"),), 12, None, "#")
    assert (asking.node, asking.queue_next, asking.queue_asked) == (session.node, "etape6_carte", True)


def test_a_queued_question_left_unanswered_is_skipped_if_it_may_be_else_asked_again_shorter(ecps):
    session, _ = queued(ecps)
    asking, _ = engine.queued_question(ecps, session, AT + 10)
    skipped, ask = engine.queued_question(ecps, asking, AT + 20)  # the next turn of the wait: no answer came
    assert ask == Ask("etape6_reproductible", "ask", (Say("etape6.reproductible"),), 6)
    assert [entry["event"] for entry in skipped.history[-3:]] == ["skip", "enter", "queued_answer"]
    assert skipped.history[-1] == {"at": AT + 20, "node": session.node, "step": 6, "event": "queued_answer", "field": "numero_carte"}
    assert (skipped.queue_next, skipped.queue_phase, skipped.queue_asked) == ("etape6_reproductible", "ask", True)
    again, ask = engine.queued_question(ecps, skipped, AT + 30)
    assert ask == Ask("etape6_reproductible", "ask", (Say("commun.silence"), Say("etape6.reproductible_court")), 6)
    assert (again.queue_next, again.queue_asked) == ("etape6_reproductible", True)


def test_answers_in_the_queue_keep_the_call_as_it_was_put_through(ecps):
    session, _ = queued(ecps)
    session = replace(session, outcome_step=6)
    asking, _ = engine.queued_question(ecps, session, AT + 10)
    after, ask = engine.queued_answer(ecps, asking, NoInput("etape6_carte", "ask", AT + 11))
    kept = (after.node, after.outcome, after.outcome_step, after.transfer_reason)
    assert kept == (session.node, "transferred", 6, "diagnostic_complete")
    answered, following = engine.queued_answer(ecps, after, Keys("etape6_reproductible", "ask", "1", AT + 12))
    assert answered.answers["reproductible"] == ecps.nodes["etape6_reproductible"].choices["1"].answer
    assert following is not None and (answered.queue_next, answered.queue_phase) == (following.node, following.phase)


def test_the_queues_questions_stop_before_the_message(ecps):
    stop = ecps.while_queued[1]
    last = next(name for name, node in ecps.nodes.items() if node.type == "menu" and any(c.goto == stop for c in node.choices.values()))
    key = next(key for key, choice in ecps.nodes[last].choices.items() if choice.goto == stop)
    session, _ = queued(ecps)
    at_last = replace(session, queue_next=last, queue_phase="ask", queue_asked=True)
    after, ask = engine.queued_answer(ecps, at_last, Keys(last, "ask", key, AT + 40))
    assert ask is None and (after.queue_next, after.queue_phase, after.queue_asked) == (None, "ask", False)
    assert (after.node, after.outcome) == (session.node, "transferred")


def test_the_arms_are_those_every_release_gives(ecps):
    """Pinned: servers of two releases (a rolling deploy) must give a call the same arm."""
    experiment = Experiment(4, "etape1.question", "B", 50)
    assert [engine.arm_of(f"CA{n:032x}", experiment) for n in range(12)] == ["B", "B", "B", "B", "B", "A", "A", "B", "A", "B", "B", "B"]
    for n in range(12):
        session, _ = engine.start(ecps, f"CA{n:032x}", "+33612345678", AT, Conditions(experiments=(experiment,)))
        assert session.arms == {"etape1.question": engine.arm_of(f"CA{n:032x}", experiment)}


def test_a_key_for_an_agent_in_the_queue_keeps_the_reason_the_call_was_put_through(ecps):
    session, _ = queued(ecps)
    asking, _ = engine.queued_question(ecps, session, AT + 10)
    after, ask = engine.queued_answer(ecps, asking, Keys("etape6_carte", "ask", "0", AT + 11))
    assert (after.outcome, after.transfer_reason, after.node) == ("transferred", "diagnostic_complete", session.node)


def test_a_number_read_back_in_the_queue_is_asked_as_its_read_back(ecps):
    session, _ = queued(ecps)
    reading = replace(session, queue_next="etape6_carte", queue_phase="confirm", pending="1234")
    asking, ask = engine.queued_question(ecps, reading, AT + 10)
    assert ask == Ask("etape6_carte", "confirm", (Say.filled("saisie.relecture", chiffres="1 2 3, 4"),), 6)


def test_the_rating_question_starts_fresh_whatever_the_call_was_doing(ecps):
    session = replace(transferred(ecps), phase="confirm", pending="0612")
    rated, _ = engine.rate_after_agent(ecps, session, AT + 60)
    assert (rated.phase, rated.pending) == ("ask", None)
