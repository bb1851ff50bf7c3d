"""The engine on its own: no Flask, no store, time given by the events."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import ROOT

from ivr.call import engine, flow_loader, prompts
from ivr.call.session import Ask, Hangup, Keys, NoInput, Say, Transfer


@pytest.fixture(scope="module")
def ecps():
    return flow_loader.load(ROOT / "flows" / "ecps.yaml", prompts.load(ROOT / "prompts"))


def at_node(ecps, name, at=1000.0):
    session, _ = engine.start(ecps, "CA1", "+33612345678", at)
    return replace(session, node=name, entered_at=at, step=ecps.nodes[name].step)


def test_start_speaks_welcome_then_first_question(ecps):
    session, actions = engine.start(ecps, "CA1", "+33612345678", 1000.0)
    assert session.node == "etape1_a_jour" and session.step == 1
    (ask,) = actions
    assert isinstance(ask, Ask)
    assert [s.key for s in ask.says] == ["accueil.bienvenue", "etape1.question"]


def test_wait_silence_is_patient_until_wait_max(ecps):
    session = at_node(ecps, "etape4_deconnexion", at=1000.0)
    wait_max = ecps.settings.wait_max
    session, actions = engine.step(ecps, session, NoInput("etape4_deconnexion", "ask", 1000.0 + wait_max - 1))
    assert session.failures == 0
    assert actions[0].says == (Say("commun.attente"),) and actions[0].pause == ecps.settings.wait_pause
    # Past wait_max, silence counts: after max_attempts the caller reaches an agent.
    for _ in range(ecps.settings.max_attempts):
        session, actions = engine.step(ecps, session, NoInput("etape4_deconnexion", "ask", 1000.0 + wait_max + 1))
    assert isinstance(actions[0], Transfer) and actions[0].reason == "no_input"


def test_failures_reset_on_a_new_question(ecps):
    session = at_node(ecps, "etape1_a_jour")
    session, _ = engine.step(ecps, session, Keys("etape1_a_jour", "ask", "7", 1001.0))
    assert session.failures == 1
    session, _ = engine.step(ecps, session, Keys("etape1_a_jour", "ask", "2", 1002.0))
    assert (session.node, session.failures) == ("etape1_android", 0)


def test_answer_for_another_node_asks_current_question_again(ecps):
    session = at_node(ecps, "etape1_android")
    after, actions = engine.step(ecps, session, Keys("etape1_a_jour", "ask", "1", 1001.0))
    assert after == session
    assert actions[0].node == "etape1_android" and actions[0].says == (Say("etape1.android_court"),)


def test_ended_call_only_hangs_up(ecps):
    session = replace(at_node(ecps, "fin_resolu"), outcome="solved")
    assert engine.step(ecps, session, Keys("fin_resolu", "ask", "1", 1.0))[1] == (Hangup(),)


def test_unknown_node_is_a_technical_transfer(ecps):
    session = replace(at_node(ecps, "etape1_a_jour"), node="disparu")
    session, actions = engine.step(ecps, session, Keys("disparu", "ask", "1", 1001.0))
    assert session.transfer_reason == "technical_error"
    assert actions == (Transfer("technical_error", (Say("transfert.erreur"),)),)


def test_session_round_trips_through_a_dict(ecps):
    session, _ = engine.start(ecps, "CA1", "+33612345678", 1000.0)
    session, _ = engine.step(ecps, session, Keys("etape1_a_jour", "ask", "2", 1001.0))
    assert engine.Session.from_dict(session.to_dict()) == session
    assert engine.Session.from_dict(session.to_dict(), revision=7) == replace(session, revision=7)


def test_a_session_read_back_from_json_has_its_arms_variants_and_inferred_answers(ecps):
    import json

    session, _ = engine.start(ecps, "CA1", "+33612345678", 1000.0)
    session = replace(session, arms={"etape1.question": "B"}, variants={"etape1.question": "Texte B"}, inferred=("support",),
                      answers={"support": "téléphone"})
    read = engine.Session.from_dict(json.loads(json.dumps(session.to_dict())))  # as the stores keep it: lists, not tuples
    assert read == session
    assert (read.arms, read.variants, read.inferred) == ({"etape1.question": "B"}, {"etape1.question": "Texte B"}, ("support",))


def test_session_from_a_dict_of_an_older_release_or_a_broken_one():
    # A session saved before a field existed takes the field's default; unknown or missing fields
    # are refused as the dataclass itself refuses them.
    oldest = {"call_sid": "CA1", "caller": "+33612345678", "started_at": 1.0, "flow_version": "v1", "node": "a"}
    assert engine.Session.from_dict(oldest) == engine.Session("CA1", "+33612345678", 1.0, "v1", node="a")
    assert engine.Session.from_dict({**oldest, "answers": None}).answers == {}
    with pytest.raises(TypeError, match="nod"):
        engine.Session.from_dict({**oldest, "nod": "b"})
    with pytest.raises(TypeError, match="caller"):
        engine.Session.from_dict({k: v for k, v in oldest.items() if k != "caller"})


def test_history_marks_each_event(ecps):
    session = at_node(ecps, "etape1_a_jour")
    assert [h["event"] for h in session.history] == ["enter", "enter"]  # welcome, then step 1
    session = replace(session, history=())
    for event in [Keys("etape1_a_jour", "ask", "*", 1.0), NoInput("etape1_a_jour", "ask", 2.0), Keys("etape1_a_jour", "ask", "5", 3.0),
                  Keys("etape1_a_jour", "ask", "2", 4.0), Keys("etape1_android", "ask", "0", 5.0)]:
        session, _ = engine.step(ecps, session, event)
    assert [h["event"] for h in session.history] == ["repeat", "silence", "invalid", "answer", "enter", "agent", "transfer"]
    assert session.history[4]["node"] == "etape1_android"


