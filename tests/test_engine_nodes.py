"""The engine, node type by node type and event by event, on a small flow that has each of them."""

from __future__ import annotations

import pytest
from conftest import ROOT, VALID_RPPS

from ivr.call import engine, flow_loader, prompts
from ivr.call.session import Ask, Conditions, GuideRequested, Hangup, Keys, Listen, NoInput, PageAction, Recorded, Say, Spoken, Transfer

FLOW = """
start: bonjour
after_hours: ferme
settings: {max_attempts: 2, wait_max: 100, wait_pause: 10}
nodes:
  bonjour: {type: say, prompt: accueil.bienvenue, next: question}
  question:
    type: menu
    step: 1
    prompt: etape1.question
    short: etape1.question_courte
    field: a_jour
    speech: {"1": [non], "2": [oui]}
    choices:
      "1": {answer: non, goto: agir}
      "2": {answer: oui, goto: numero}
  agir:
    type: wait
    step: 2
    prompt: etape2.batterie
    short: commun.quand_fait
    guide: {key: "8", sms: sms.batterie}
    choices: {"1": fini}
  numero: {type: digits, step: 6, prompt: etape6.rpps, short: etape6.rpps_court, field: identifiant, check: rpps, next: navigateurs}
  navigateurs:
    {type: digits, step: 6, prompt: etape6.navigateurs, field: navigateurs, options: {"1": Chrome, "2": Firefox}, optional: true, next: message}
  message: {type: record, step: 6, prompt: etape6.message, field: message_vocal, next: conseiller}
  conseiller: {type: transfer, step: 6, prompt: etape6.transfert, reason: diagnostic_complete}
  fini: {type: end, prompt: fin.resolu, outcome: solved}
  ferme:
    type: menu
    prompt: horaires.choix
    choices: {"3": au_revoir}
  au_revoir: {type: end, prompt: fin.ferme, outcome: closed}
"""
AT = 1000.0
CLOSED = Conditions(service_open=False, reopening="demain à 8 heures 30")


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    path = tmp_path_factory.mktemp("flow") / "flow.yaml"
    path.write_text(FLOW, encoding="utf-8")
    return flow_loader.load(path, prompts.load(ROOT / "prompts"))


def at(flow, node, **changes):
    session, _ = engine.start(flow, "CA1", "+33612345678", AT)
    return session.evolve(node=node, entered_at=AT, step=flow.nodes[node].step, **changes)


def events(session):
    return [entry["event"] for entry in session.history]


def test_say_chains_into_the_first_question_and_the_history_marks_each_node(flow):
    session, actions = engine.start(flow, "CA1", "+33612345678", AT)
    assert actions == (Ask("question", "ask", (Say("accueil.bienvenue"), Say("etape1.question")), 6, hints=("non", "oui")),)
    assert (session.node, session.step, events(session)) == ("question", 1, ["enter", "enter"])


def test_menu_key_records_the_answer_and_goes_on(flow):
    session, actions = engine.step(flow, at(flow, "question"), Keys("question", "ask", "2", AT + 1))
    assert session.answers == {"a_jour": "oui"} and session.node == "numero"
    assert actions == (Ask("numero", "ask", (Say("etape6.rpps"),), 12, None, "#"),)


def test_menu_wrong_key_is_named_and_the_short_question_asked_until_the_agent(flow):
    session, actions = engine.step(flow, at(flow, "question"), Keys("question", "ask", "7", AT + 1))
    assert session.failures == 1
    assert actions[0].says == (Say.filled("commun.touche_invalide", touche="7"), Say("etape1.question_courte"))
    session, actions = engine.step(flow, session, Keys("question", "ask", "#", AT + 2))
    assert actions == (Transfer("invalid_input", (Say("transfert.touches"),)),) and session.transfer_reason == "invalid_input"


def test_menu_silence_repeats_then_transfers(flow):
    session, actions = engine.step(flow, at(flow, "question"), NoInput("question", "ask", AT + 6))
    assert actions[0].says == (Say("commun.silence"), Say("etape1.question_courte"))
    session, actions = engine.step(flow, session, NoInput("question", "ask", AT + 12))
    assert actions == (Transfer("no_input", (Say("transfert.silence"),)),)


def test_star_repeats_in_full_and_zero_reaches_an_agent(flow):
    session, actions = engine.step(flow, at(flow, "question"), Keys("question", "ask", "*", AT + 1))
    assert actions[0].says == (Say("etape1.question"),) and session.failures == 0
    session, actions = engine.step(flow, session, Keys("question", "ask", "0", AT + 2))
    assert actions == (Transfer("caller_request", (Say("transfert.demande"),)),) and events(session)[-2:] == ["agent", "transfer"]


def test_words_sure_count_as_the_key_unsure_are_read_back_unknown_are_a_wrong_answer(flow):
    session, _ = engine.step(flow, at(flow, "question"), Spoken("question", "ask", "Oui !", 0.9, AT + 1))
    assert session.answers == {"a_jour": "oui"}
    session, actions = engine.step(flow, at(flow, "question"), Spoken("question", "ask", "non", 0.2, AT + 1))
    assert (session.phase, session.pending) == ("speech", "1")
    assert actions == (Ask("question", "speech", (Say.filled("parole.confirmation", mot="non"),), 6),)
    confirmed, _ = engine.step(flow, session, Keys("question", "speech", "1", AT + 2))
    assert confirmed.answers == {"a_jour": "non"} and confirmed.node == "agir"
    again, actions = engine.step(flow, session, Keys("question", "speech", "2", AT + 2))
    assert (again.phase, again.pending) == ("ask", None) and actions[0].says == (Say("etape1.question"),)
    session, actions = engine.step(flow, at(flow, "question"), Spoken("question", "ask", "peut-être", 0.9, AT + 1))
    assert session.failures == 1 and actions[0].says[0] == Say("parole.pas_compris")


def test_wait_silence_is_a_reminder_until_wait_max(flow):
    session, actions = engine.step(flow, at(flow, "agir"), NoInput("agir", "ask", AT + 50))
    assert session.failures == 0 and actions == (Ask("agir", "ask", (Say("commun.attente"),), 6, pause=10),)
    session, actions = engine.step(flow, session, NoInput("agir", "ask", AT + 101))
    assert session.failures == 1 and actions[0].says[0] == Say("commun.silence")


def test_a_guide_key_is_recognised_by_the_engine_and_its_outcome_said(flow):
    session = at(flow, "agir")
    assert engine.requested_guide(flow, session, Keys("agir", "ask", "8", AT + 1)).sms == "sms.batterie"
    assert engine.requested_guide(flow, session, Keys("agir", "ask", "1", AT + 1)) is None
    assert engine.requested_guide(flow, session, Keys("question", "ask", "8", AT + 1)) is None  # a late answer
    assert engine.requested_guide(flow, at(flow, "question"), Keys("question", "ask", "8", AT + 1)) is None
    session, actions = engine.step(flow, session, GuideRequested("agir", "ask", "sms.batterie", "sent", AT + 1))
    assert actions[0].says == (Say("sms.envoye"), Say("commun.quand_fait")) and events(session)[-1] == "sms"


def test_digits_checked_read_back_confirmed_or_corrected(flow):
    session, actions = engine.step(flow, at(flow, "numero"), Keys("numero", "ask", VALID_RPPS, AT + 1))
    assert (session.phase, session.pending) == ("confirm", VALID_RPPS) and actions[0].phase == "confirm"
    corrected, actions = engine.step(flow, session, Keys("numero", "confirm", "2", AT + 2))
    assert (corrected.phase, corrected.pending) == ("ask", None) and events(corrected)[-1] == "correct"
    accepted, actions = engine.step(flow, session, Keys("numero", "confirm", "1", AT + 2))
    assert accepted.answers == {"identifiant": VALID_RPPS} and accepted.node == "navigateurs"
    refused, actions = engine.step(flow, at(flow, "numero"), Keys("numero", "ask", "123", AT + 1))
    assert refused.failures == 1 and actions[0].says[0].key == "saisie.longueur"


def test_digit_options_pick_several_keys_and_an_optional_question_is_skipped_by_silence(flow):
    session, _ = engine.step(flow, at(flow, "navigateurs"), Keys("navigateurs", "ask", "212", AT + 1))
    assert session.answers == {"navigateurs": "Firefox, Chrome"} and session.node == "message"
    session, actions = engine.step(flow, at(flow, "navigateurs"), Keys("navigateurs", "ask", "3", AT + 1))
    assert session.failures == 1
    session, actions = engine.step(flow, at(flow, "navigateurs"), NoInput("navigateurs", "ask", AT + 1))
    assert session.node == "message" and events(session)[-2] == "skip"
    assert actions == (Listen("message", (Say("etape6.message"),), 60),)


def test_record_keeps_the_message_or_goes_on_without_one_then_transfers(flow):
    session, actions = engine.step(flow, at(flow, "message"), Recorded("message", "ask", "https://api.twilio.com/R1", 12, AT + 1))
    assert session.answers == {"message_vocal": "https://api.twilio.com/R1"}
    assert actions == (Transfer("diagnostic_complete", (Say("etape6.transfert"),)),) and session.outcome == "transferred"
    session, actions = engine.step(flow, at(flow, "message"), NoInput("message", "ask", AT + 1))
    assert "message_vocal" not in session.answers and isinstance(actions[0], Transfer)


def test_end_hangs_up_with_its_outcome_and_an_ended_call_only_hangs_up(flow):
    session, actions = engine.step(flow, at(flow, "agir"), Keys("agir", "ask", "1", AT + 1))
    assert actions == (Hangup((Say("fin.resolu"),)),) and (session.outcome, session.outcome_step) == ("solved", 2)
    assert engine.step(flow, session, Keys("fini", "ask", "1", AT + 2)) == (session, (Hangup(),))


def test_a_transfer_while_closed_becomes_the_after_hours_part(flow):
    session, actions = engine.step(flow, at(flow, "question"), Keys("question", "ask", "0", AT + 1), CLOSED)
    assert session.outcome is None and session.node == "ferme" and events(session)[-2:] == ["closed", "enter"]
    assert actions[0].says == (Say.filled("horaires.ferme", quand="demain à 8 heures 30"), Say("horaires.choix"))
    session, actions = engine.step(flow, session, Keys("ferme", "ask", "3", AT + 2), CLOSED)
    assert session.outcome == "closed" and isinstance(actions[0], Hangup)


def test_an_answer_to_another_question_asks_the_current_one_again_and_a_lost_node_is_a_technical_transfer(flow):
    session = at(flow, "agir")
    short = Ask("agir", "ask", (Say("commun.quand_fait"),), 6, pause=10)
    assert engine.step(flow, session, Keys("question", "ask", "1", AT + 1)) == (session, (short,))
    lost, actions = engine.step(flow, session.evolve(node="disparu"), Keys("disparu", "ask", "1", AT + 1))
    assert actions == (Transfer("technical_error", (Say("transfert.erreur"),)),) and events(lost)[-2:] == ["error", "transfer"]


def test_resume_says_the_question_again_and_fail_transfers(flow):
    session = at(flow, "question")
    assert engine.resume(flow, session) == (session, (Ask("question", "ask", (Say("etape1.question"),), 6, hints=("non", "oui")),))
    failed, actions = engine.fail(flow, session, AT + 1)
    assert failed.transfer_reason == "technical_error" and isinstance(actions[0], Transfer)
    closed, actions = engine.fail(flow, session, AT + 1, CLOSED)
    assert closed.node == "ferme"


FLOW_MORE = """
start: tri
after_hours: ferme
closed_prompts: {fin.rappel: fin.rappel_ferme}
nodes:
  tri: {type: branch, branches: {identifiant: bravo}, next: bravo}
  bravo:
    type: menu
    prompt: fin.service
    outcome: service
    silence: au_revoir
    choices: {"1": au_revoir, "2": rappel}
  rappel: {type: end, prompt: fin.rappel, outcome: callback}
  au_revoir: {type: end, prompt: fin.au_revoir, outcome: service}
  ferme: {type: menu, prompt: horaires.choix, choices: {"1": rappel, "2": message}}
  message: {type: record, prompt: rappel.message, field: message_vocal, next: rappel, if_empty: ferme}
"""


@pytest.fixture(scope="module")
def more(tmp_path_factory):
    path = tmp_path_factory.mktemp("flow") / "more.yaml"
    path.write_text(FLOW_MORE, encoding="utf-8")
    return flow_loader.load(path, prompts.load(ROOT / "prompts"))


def test_a_branch_says_nothing_and_goes_by_an_answer_already_given(more):
    session, actions = engine.start(more, "CA1", "+33612345678", AT)
    assert session.node == "bravo" and actions[0].says == (Say("fin.service"),)
    assert events(session) == ["enter", "enter"]


def test_silence_where_the_flow_says_so_is_an_answer_and_hanging_up_there_has_its_outcome(more):
    session, _ = engine.start(more, "CA1", "+33612345678", AT)
    ended, actions = engine.step(more, session, NoInput("bravo", "ask", AT + 6))
    assert actions == (Hangup((Say("fin.au_revoir"),)),) and ended.outcome == "service" and ended.failures == 0
    assert engine.hung_up(more, session, AT + 3).outcome == "service"
    assert engine.hung_up(more, ended, AT + 9) is ended


def test_sentences_said_instead_while_closed(more):
    session, _ = engine.start(more, "CA1", "+33612345678", AT)
    _, actions = engine.step(more, session, Keys("bravo", "ask", "2", AT + 1), CLOSED)
    assert actions == (Hangup((Say.filled("fin.rappel_ferme", quand="demain à 8 heures 30"),)),)
    _, actions = engine.step(more, session, Keys("bravo", "ask", "2", AT + 1))
    assert actions == (Hangup((Say("fin.rappel"),)),)


def test_an_unanswered_transfer_offers_the_after_hours_part_and_failing_there_says_goodbye(more):
    session, _ = engine.start(more, "CA1", "+33612345678", AT)
    session, actions = engine.step(more, session, Keys("bravo", "ask", "0", AT + 1), Conditions(agents=False))
    assert session.node == "ferme" and actions[0].says[0] == Say("conseiller.aucun")
    for second in (3, 4, 5):
        session, actions = engine.step(more, session, NoInput("ferme", "ask", AT + second))
    assert actions == (Hangup((Say("commun.silence"), Say("conseiller.indisponible"))),) and session.outcome == "unanswered"


def test_a_transfer_nobody_answered_is_offered_again_as_a_callback(more):
    session, _ = engine.start(more, "CA1", "+33612345678", AT)
    session, _ = engine.step(more, session, Keys("bravo", "ask", "0", AT + 1))
    assert session.outcome == "transferred"
    session, actions = engine.unanswered(more, session, AT + 30)
    assert session.outcome is None and session.node == "ferme" and events(session)[-2:] == ["unanswered", "enter"]
    night, actions = engine.unanswered(more, session, AT + 30, CLOSED)
    assert actions[0].says[0] == Say.filled("horaires.ferme", quand="demain à 8 heures 30")


def test_an_empty_message_goes_where_the_flow_says(more):
    session = at(more, "message")
    session, actions = engine.step(more, session, Recorded("message", "ask", "https://api.twilio.com/R1", 0, AT + 1))
    assert "message_vocal" not in session.answers and session.node == "ferme"
    assert actions[0].says[0] == Say("commun.message_vide")


def test_options_take_one_key_then_ask_for_more(flow):
    session, actions = engine.step(flow, at(flow, "navigateurs"), Keys("navigateurs", "ask", "2", AT + 1))
    assert session.phase == "more" and actions == (Ask("navigateurs", "more", (Say.filled("saisie.autre_option", choix="Firefox"),), 6, 1, "#"),)
    session, actions = engine.step(flow, session, Keys("navigateurs", "more", "1", AT + 2))
    assert session.answers == {"navigateurs": "Firefox, Chrome"} and session.node == "message"  # every option chosen
    session, _ = engine.step(flow, at(flow, "navigateurs"), Keys("navigateurs", "ask", "1", AT + 1))
    session, _ = engine.step(flow, session, NoInput("navigateurs", "more", AT + 2))
    assert session.answers == {"navigateurs": "Chrome"}


# ==== How one question takes its answer (answers.py), each outcome checked whole: the history entry it
# writes, the session's position, and what the caller hears next (README, "Mutation testing"). ====
QUESTION_AGAIN = Ask("question", "ask", (Say("etape1.question"),), 6, hints=("non", "oui"))


def entry(node: str, step, event: str, at: float = AT + 1, **details) -> dict:
    return {"at": at, "node": node, "step": step, "event": event, **details}


# ---- words ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("confidence", [0.5, 0.876])
def test_a_word_heard_surely_enough_is_the_key_it_stands_for(flow, confidence):
    session, actions = engine.step(flow, at(flow, "question"), Spoken("question", "ask", "Oui, c'est à jour.", confidence, AT + 1))
    assert session.history[-3] == entry("question", 1, "spoken", key="2", confidence=round(confidence, 2))
    assert session.history[-2] == entry("question", 1, "answer", key="2", field="a_jour", answer="oui")
    assert (session.node, session.phase, session.answers) == ("numero", "ask", {"a_jour": "oui"})
    assert actions == (Ask("numero", "ask", (Say("etape6.rpps"),), 12, None, "#"),)


def test_a_word_heard_unsurely_is_read_back_then_confirmed_corrected_or_refused(flow):
    unsure, actions = engine.step(flow, at(flow, "question"), Spoken("question", "ask", "NON", 0.494, AT + 1))
    assert (unsure.phase, unsure.pending, unsure.failures) == ("speech", "1", 0)
    assert unsure.history[-1] == entry("question", 1, "spoken_unsure", key="1", confidence=0.49)
    assert actions == (Ask("question", "speech", (Say.filled("parole.confirmation", mot="non"),), 6),)

    confirmed, actions = engine.step(flow, unsure, Keys("question", "speech", "1", AT + 2))
    assert (confirmed.node, confirmed.phase, confirmed.answers) == ("agir", "ask", {"a_jour": "non"})
    assert confirmed.history[-2] == entry("question", 1, "answer", AT + 2, key="1", field="a_jour", answer="non")

    corrected, actions = engine.step(flow, unsure, Keys("question", "speech", "2", AT + 2))
    assert (corrected.node, corrected.phase, corrected.pending, corrected.answers) == ("question", "ask", None, {})
    assert actions == (QUESTION_AGAIN,)

    refused, actions = engine.step(flow, unsure, Keys("question", "speech", "7", AT + 2))
    assert (refused.phase, refused.pending, refused.failures) == ("speech", "1", 1)
    assert refused.history[-1] == entry("question", 1, "invalid", AT + 2, key="7")
    assert actions == (Ask("question", "speech", (Say.filled("commun.touche_invalide", touche="7"), Say.filled("parole.confirmation", mot="non")),
                           6),)


@pytest.mark.parametrize("text", ["peut-être", "oui ou non", "nonobstant"])
def test_words_that_are_not_one_answer_are_not_understood_and_count_as_a_failure(flow, text):
    session, actions = engine.step(flow, at(flow, "question"), Spoken("question", "ask", text, 0.99, AT + 1))
    assert (session.node, session.failures, session.answers) == ("question", 1, {})
    assert session.history[-1] == entry("question", 1, "invalid", heard=text)
    assert actions == (Ask("question", "ask", (Say("parole.pas_compris"), Say("etape1.question_courte")), 6, hints=("non", "oui")),)
    session, actions = engine.step(flow, session, Spoken("question", "ask", text, 0.99, AT + 2))
    assert actions == (Transfer("invalid_input", (Say("transfert.touches"),)),)
    assert (session.outcome, session.transfer_reason) == ("transferred", "invalid_input")


def test_what_was_heard_is_kept_short_and_masked_in_the_history(flow):
    said = "mon numéro est le 10012345673 " + "x" * 80
    session, _ = engine.step(flow, at(flow, "question"), Spoken("question", "ask", said, 0.99, AT + 1))
    heard = session.history[-1]["heard"]
    assert heard == "mon numéro est le •••••••••73 " + "x" * 30  # the first 60 characters, numbers masked


def test_a_word_at_a_read_back_is_not_an_answer(flow):
    unsure, _ = engine.step(flow, at(flow, "question"), Spoken("question", "ask", "non", 0.2, AT + 1))
    again, actions = engine.step(flow, unsure, Spoken("question", "speech", "oui", 0.99, AT + 2))
    assert (again.phase, again.failures, again.answers) == ("speech", 1, {})
    assert actions[0].says[0] == Say("parole.pas_compris")


# ---- numbers -------------------------------------------------------------------------------------------------
def test_a_number_is_read_back_then_confirmed(flow):
    session, actions = engine.step(flow, at(flow, "numero"), Keys("numero", "ask", VALID_RPPS, AT + 1))
    assert (session.phase, session.pending, session.failures) == ("confirm", VALID_RPPS, 0)
    assert actions == (Ask("numero", "confirm", (Say.filled("saisie.relecture", chiffres="1 0 0, 1 2 3, 4 5 6, 7 3"),), 6),)
    session, actions = engine.step(flow, session, Keys("numero", "confirm", "1", AT + 2))
    assert session.history[-2] == entry("numero", 6, "answer", AT + 2, field="identifiant", length=11)
    assert (session.node, session.answers) == ("navigateurs", {"identifiant": VALID_RPPS})


def test_a_number_read_back_can_be_keyed_again_and_a_wrong_key_there_counts(flow):
    read_back, _ = engine.step(flow, at(flow, "numero"), Keys("numero", "ask", VALID_RPPS, AT + 1))
    again, actions = engine.step(flow, read_back.evolve(failures=1), Keys("numero", "confirm", "2", AT + 2))
    assert (again.phase, again.pending, again.failures) == ("ask", None, 0)
    assert again.history[-1] == entry("numero", 6, "correct", AT + 2)
    assert actions == (Ask("numero", "ask", (Say("etape6.rpps"),), 12, None, "#"),)
    wrong, actions = engine.step(flow, read_back, Keys("numero", "confirm", "5", AT + 2))
    assert (wrong.phase, wrong.pending, wrong.failures) == ("confirm", VALID_RPPS, 1)
    assert wrong.history[-1] == entry("numero", 6, "invalid", AT + 2, key="5")
    assert actions == (Ask("numero", "confirm", (Say.filled("commun.touche_invalide", touche="5"),
                                                  Say.filled("saisie.relecture_courte", chiffres="1 0 0, 1 2 3, 4 5 6, 7 3")), 6),)


@pytest.mark.parametrize("digits, problem, why", [
    ("10012", "length", Say.filled("saisie.longueur", compte="5", attendu="11")),
    ("20012345673", "prefix", Say("saisie.prefixe")),
    ("10012345674", "checksum", Say("saisie.cle")),
])
def test_a_wrong_number_says_what_is_wrong_with_it(flow, digits, problem, why):
    session, actions = engine.step(flow, at(flow, "numero"), Keys("numero", "ask", digits, AT + 1))
    assert (session.phase, session.failures, session.answers) == ("ask", 1, {})
    assert session.history[-1] == entry("numero", 6, "invalid", problem=problem, length=len(digits))
    assert actions == (Ask("numero", "ask", (why, Say("etape6.rpps_court")), 12, None, "#"),)


def test_a_number_never_given_right_puts_the_caller_through_or_is_passed_when_optional(flow, ecps):
    session, actions = engine.step(flow, at(flow, "numero", failures=1), Keys("numero", "ask", "12", AT + 1))
    assert actions == (Transfer("invalid_input", (Say("transfert.touches"),)),)
    session, actions = engine.step(ecps, at(ecps, "etape6_rpps", failures=2), Keys("etape6_rpps", "ask", "12", AT + 1))
    assert session.history[-2] == entry_at("etape6_rpps", 6, "skip", field="identifiant")
    assert actions[0].says[:2] == (Say.filled("saisie.longueur", compte="2", attendu="11"), Say("saisie.passee"))


# ---- options -------------------------------------------------------------------------------------------------
def test_options_pressed_at_once_or_one_by_one(flow):
    both, _ = engine.step(flow, at(flow, "navigateurs"), Keys("navigateurs", "ask", "21", AT + 1))
    assert both.answers == {"navigateurs": "Firefox, Chrome"}
    assert both.history[-2] == entry("navigateurs", 6, "answer", field="navigateurs", length=len("Firefox, Chrome"))
    one, actions = engine.step(flow, at(flow, "navigateurs"), Keys("navigateurs", "ask", "1", AT + 1))
    assert (one.phase, one.pending) == ("more", "1")
    assert one.history[-1] == entry("navigateurs", 6, "option", key="1")
    twice, actions = engine.step(flow, one, Keys("navigateurs", "more", "1", AT + 2))
    assert (twice.phase, twice.pending, twice.answers) == ("more", "1", {})  # the same key again adds nothing: asked for more again
    assert actions == (Ask("navigateurs", "more", (Say.filled("saisie.autre_option", choix="Chrome"),), 6, 1, "#"),)


def test_an_option_that_does_not_exist_is_named(flow):
    session, actions = engine.step(flow, at(flow, "navigateurs"), Keys("navigateurs", "ask", "17", AT + 1))
    assert (session.failures, session.answers) == (1, {})
    assert session.history[-1] == entry("navigateurs", 6, "invalid", key="7")
    assert actions == (Ask("navigateurs", "ask", (Say.filled("commun.touche_invalide", touche="7"), Say("etape6.navigateurs")), 6, 1, "#"),)


# ---- the rating ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ecps():
    return flow_loader.load(ROOT / "flows" / "ecps.yaml", prompts.load(ROOT / "prompts"))


def test_a_rating_after_a_solved_problem_thanks_and_ends_the_call(ecps):
    session = at(ecps, "note_resolu", outcome=None)
    rated, actions = engine.step(ecps, session, Keys("note_resolu", "ask", "4", AT + 1))
    assert rated.rating == 4
    assert rated.history[-3] == entry("note_resolu", None, "rating", rating=4)
    after = ecps.nodes[ecps.nodes["note_resolu"].next]
    assert actions == (Hangup((Say("satisfaction.merci"), Say(after.prompt))),) and rated.outcome == after.outcome


@pytest.mark.parametrize("event", [Keys("note_resolu", "ask", "6", AT + 1), Keys("note_resolu", "ask", "45", AT + 1),
                                   NoInput("note_resolu", "ask", AT + 1)])
def test_anything_but_a_rating_skips_it_and_the_call_ends_as_it_would(ecps, event):
    rated, actions = engine.step(ecps, at(ecps, "note_resolu"), event)
    assert rated.rating is None and rated.history[-3] == entry("note_resolu", None, "skip", field="note")
    after = ecps.nodes[ecps.nodes["note_resolu"].next]
    assert actions == (Hangup((Say(after.prompt),)),)


def test_a_rating_after_an_agent_keeps_the_transfer_as_the_outcome(ecps):
    session = engine.put_through(at(ecps, "etape6_introduction"), AT)
    asked, _ = engine.rate_after_agent(ecps, session, AT + 60)
    rated, actions = engine.step(ecps, asked, Keys(asked.node, "ask", "5", AT + 61))
    assert (rated.rating, rated.outcome, rated.transfer_reason) == (5, "transferred", "technical_error")
    after = ecps.nodes.get(ecps.nodes[asked.node].next or "")
    last = Say(after.prompt) if after is not None and after.type == "end" else Say("fin.au_revoir")
    assert actions == (Hangup((Say("satisfaction.merci"), last)),)
    skipped, actions = engine.step(ecps, asked, NoInput(asked.node, "ask", AT + 61))
    assert skipped.rating is None and actions == (Hangup((last,)),)


# ---- nobody to answer ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A flow without an after-hours part."""
    path = tmp_path_factory.mktemp("flow") / "bare.yaml"
    path.write_text("""
start: question
nodes:
  question: {type: menu, step: 1, prompt: etape1.question, field: a_jour, choices: {"1": {answer: non, goto: conseiller}}}
  conseiller: {type: transfer, step: 6, prompt: etape6.transfert, reason: diagnostic_complete}
""", encoding="utf-8")
    return flow_loader.load(path, prompts.load(ROOT / "prompts"))


def test_without_an_after_hours_part_a_closed_service_says_when_it_opens_and_goodbye(bare):
    session, actions = engine.step(bare, at(bare, "question"), Keys("question", "ask", "1", AT + 1), CLOSED)
    assert actions == (Hangup((Say.filled("horaires.ferme", quand="demain à 8 heures 30"), Say("horaires.au_revoir"))),)
    assert (session.outcome, session.history[-1]["event"]) == ("closed", "end")
    assert session.history[-2] == entry("conseiller", 6, "closed", reason="diagnostic_complete")


def test_without_an_after_hours_part_and_no_agent_the_caller_is_told_and_goodbye(bare):
    session, actions = engine.step(bare, at(bare, "question"), Keys("question", "ask", "1", AT + 1), Conditions(agents=False))
    assert actions == (Hangup((Say("conseiller.indisponible"),)),)
    assert (session.outcome, session.history[-2]["event"]) == ("unanswered", "unanswered")


def test_with_an_after_hours_part_the_caller_hears_why_then_its_offer(flow):
    session, actions = engine.step(flow, at(flow, "question"), Keys("question", "ask", "0", AT + 1), CLOSED)
    assert (session.node, session.outcome) == ("ferme", None)
    assert session.history[-2] == entry("question", 1, "closed", reason="caller_request")
    assert actions[0].says[0] == Say.filled("horaires.ferme", quand="demain à 8 heures 30")


# ---- the rest of a question's paths, checked whole ---------------------------------------------------------
def test_a_button_of_the_visual_guide_is_noted_then_applied(flow):
    session, actions = engine.step(flow, at(flow, "agir"), PageAction("agir", "ask", "fait", AT + 1))
    assert session.history[-4] == entry("agir", 2, "page", action="fait")
    assert (session.outcome, session.node) == ("solved", "fini")
    assert actions == (Hangup((Say("guide_visuel.note"), Say("fin.resolu"))),)
    late, actions = engine.step(flow, at(flow, "question"), PageAction("agir", "ask", "fait", AT + 1), CLOSED)
    assert late.history[-1] == entry("question", 1, "page", action="fait", late=True)
    assert actions == (short_question(Say("guide_visuel.deja")),)


def short_question(lead: Say) -> Ask:
    return Ask("question", "ask", (lead, Say("etape1.question_courte")), 6, hints=("non", "oui"))


@pytest.mark.parametrize("status, said", [("sent", "sms.envoye"), ("already", "sms.deja_envoye"), ("not_mobile", "sms.pas_mobile"),
                                          ("unavailable", "sms.indisponible"), ("failed", "sms.echec")])
def test_a_guide_asked_by_sms_says_how_it_went_and_asks_again(flow, status, said):
    session, actions = engine.step(flow, at(flow, "agir"), GuideRequested("agir", "ask", "sms.batterie", status, AT + 1))
    assert session.history[-1] == entry("agir", 2, "sms", guide="sms.batterie", status=status)
    assert (session.node, session.failures) == ("agir", 0)
    assert actions == (Ask("agir", "ask", (Say(said), Say("commun.quand_fait")), 6, pause=10),)


def test_a_message_left_is_an_answer_with_its_length(flow):
    session, _ = engine.step(flow, at(flow, "message"), Recorded("message", "ask", "https://api.twilio.com/R1", 12, AT + 1))
    assert session.history[-3] == entry("message", 6, "answer", field="message_vocal", duration=12)
    stray, actions = engine.step(flow, at(flow, "question"), Recorded("question", "ask", "https://api.twilio.com/R2", 5, AT + 1))
    assert stray == at(flow, "question") and actions == (Ask("question", "ask", (Say("etape1.question_courte"),), 6, hints=("non", "oui")),)


def test_every_step_entered_is_in_the_history_with_its_time_and_step(flow):
    session, _ = engine.step(flow, at(flow, "question"), Keys("question", "ask", "1", AT + 1.23456))
    assert session.history[-1] == entry("agir", 2, "enter", 1001.235)
    position = (session.node, session.step, session.entered_at, session.phase, session.failures, session.pending)
    assert position == ("agir", 2, AT + 1.23456, "ask", 0, None)


def test_the_end_of_a_call_is_in_the_history_with_its_outcome(flow):
    session, _ = engine.step(flow, at(flow, "agir"), Keys("agir", "ask", "1", AT + 1))
    assert session.history[-1] == entry("fini", 2, "end", outcome="solved")
    assert session.history[-3] == entry("agir", 2, "answer", key="1")


def test_an_answer_known_from_another_is_not_asked_and_the_agent_reads_it_as_inferred(tmp_path):
    path = tmp_path / "inferred.yaml"
    path.write_text("""
start: android
inferences:
  - when: {android: oui}
    then: {support: téléphone}
nodes:
  android: {type: menu, step: 1, prompt: etape1.question, field: android, choices: {"1": {answer: oui, goto: support}}}
  support:
    type: menu
    step: 6
    prompt: etape6.support
    field: support
    choices: {"1": {answer: téléphone, goto: fini}, "2": {answer: tablette, goto: message}}
  message: {type: record, step: 6, prompt: etape6.message, field: message_vocal, next: fini}
  fini: {type: end, prompt: fin.resolu, outcome: solved}
""", encoding="utf-8")
    inferred = flow_loader.load(path, prompts.load(ROOT / "prompts"))
    session, _ = engine.start(inferred, "CA1", "+33612345678", AT)
    session, actions = engine.step(inferred, session, Keys("android", "ask", "1", AT + 1))
    assert (session.answers, session.inferred) == ({"android": "oui", "support": "téléphone"}, ("support",))
    assert [entry for entry in session.history if entry["event"] in ("inferred", "skip")] == [
        entry_at("android", 1, "inferred", fields=["support"]), entry_at("support", 6, "skip", field="support", inferred=True)]
    assert (session.outcome, actions) == ("solved", (Hangup((Say("fin.resolu"),)),))  # the way « téléphone » goes


def entry_at(node: str, step, event: str, **details) -> dict:
    return entry(node, step, event, AT + 1, **details)


def test_a_flow_without_ratings_passes_its_rating_questions(ecps):
    from dataclasses import replace

    off = replace(ecps, ratings_off=True)
    session, actions = engine.step(off, at(off, "etape1_resolu"), Keys("etape1_resolu", "ask", "1", AT + 1))
    rating = ecps.nodes["note_resolu"]
    assert (session.node, session.outcome, session.rating) == (rating.next, ecps.nodes[rating.next].outcome, None)
    assert actions == (Hangup((Say("fin.resolu"), Say(ecps.nodes[rating.next].prompt))),)


def test_silence_where_the_flow_says_it_is_an_answer_is_noted_as_a_skip(tmp_path):
    path = tmp_path / "silence.yaml"
    path.write_text("""
start: bravo
nodes:
  bravo: {type: menu, step: 3, prompt: fin.service, outcome: service, silence: au_revoir, field: suite, choices: {"1": au_revoir}}
  au_revoir: {type: end, prompt: fin.au_revoir, outcome: service}
""", encoding="utf-8")
    quiet = flow_loader.load(path, prompts.load(ROOT / "prompts"))
    session, _ = engine.start(quiet, "CA1", "+33612345678", AT)
    ended, _ = engine.step(quiet, session, NoInput("bravo", "ask", AT + 1))
    assert ended.history[-3] == entry_at("bravo", 3, "skip", field="suite")


def test_an_optional_identifier_skipped_by_silence_says_the_agent_will_ask_it(ecps):
    session, actions = engine.step(ecps, at(ecps, "etape6_rpps"), NoInput("etape6_rpps", "ask", AT + 1))
    assert session.history[-2] == entry_at("etape6_rpps", 6, "skip", field="identifiant")
    assert actions[0].says[0] == Say("saisie.passee")


def test_the_options_chosen_so_far_are_the_answer_when_silence_follows(flow):
    one, _ = engine.step(flow, at(flow, "navigateurs"), Keys("navigateurs", "ask", "2", AT + 1))
    done, _ = engine.step(flow, one, NoInput("navigateurs", "more", AT + 2))
    assert done.history[-2] == entry("navigateurs", 6, "answer", AT + 2, field="navigateurs", length=len("Firefox"))


def test_the_wait_reminder_is_noted_and_is_no_failure_until_wait_max(flow):
    session, _ = engine.step(flow, at(flow, "agir"), NoInput("agir", "ask", AT + 100))
    assert session.failures == 1  # at wait_max exactly, silence counts
    session, _ = engine.step(flow, at(flow, "agir"), NoInput("agir", "ask", AT + 99))
    assert (session.failures, session.history[-1]) == (0, entry("agir", 2, "wait", AT + 99))


def test_a_version_is_taken_as_keyed_without_a_read_back(ecps):
    session, actions = engine.step(ecps, at(ecps, "etape6_version_mobile"), Keys("etape6_version_mobile", "ask", "15", AT + 1))
    assert (session.node, session.answers, session.pending) == ("etape6_navigateurs", {"version_systeme_mobile": "15"}, None)
    assert session.history[-2] == entry_at("etape6_version_mobile", 6, "answer", field="version_systeme_mobile", length=2)


@pytest.mark.parametrize("digits, why", [("200000000", Say("saisie.corse")), ("2A0000000", Say("saisie.chiffres"))])
def test_a_finess_from_corsica_or_with_a_letter_is_explained(ecps, digits, why):
    session, actions = engine.step(ecps, at(ecps, "etape6_finess"), Keys("etape6_finess", "ask", digits, AT + 1))
    assert session.failures == 1 and actions[0].says[0] == why


def test_the_callers_own_number_is_read_in_pairs_to_be_called_back(ecps):
    session = at(ecps, "rappel_numero", caller="+33612345678")
    _, (ask,) = engine.resume(ecps, session)
    assert ask.says == (Say.filled("rappel.numero", numero="06 12 34 56 78"),)


def test_another_number_to_call_back_is_read_back_in_pairs(ecps):
    session, (ask,) = engine.step(ecps, at(ecps, "rappel_autre_numero"), Keys("rappel_autre_numero", "ask", "0612345678", AT + 1))
    assert ask == Ask("rappel_autre_numero", "confirm", (Say.filled("saisie.relecture", chiffres="06 12 34 56 78"),), 6)
    session, actions = engine.step(ecps, session, Keys("rappel_autre_numero", "confirm", "1", AT + 2))
    assert (session.outcome, session.answers["numero_rappel"]) == ("callback", "+33612345678")  # kept as Twilio dials it


def test_a_word_read_back_then_wrong_keys_end_with_an_agent_for_wrong_keys(flow):
    unsure, _ = engine.step(flow, at(flow, "question"), Spoken("question", "ask", "non", 0.2, AT + 1))
    wrong, _ = engine.step(flow, unsure, Keys("question", "speech", "7", AT + 2))
    ended, actions = engine.step(flow, wrong, Keys("question", "speech", "7", AT + 3))
    assert (ended.outcome, ended.transfer_reason) == ("transferred", "invalid_input")
    assert actions == (Transfer("invalid_input", (Say("transfert.touches"),)),)


FLOW_AFTER_HOURS = """
start: question
after_hours: ferme
nodes:
  question: {type: menu, step: 1, prompt: etape1.question, choices: {"1": conseiller}}
  conseiller: {type: transfer, step: 6, prompt: etape6.transfert, reason: diagnostic_complete}
  ferme: {type: menu, prompt: horaires.choix, choices: {"1": au_revoir, "2": note}}
  note: {type: rating, prompt: satisfaction.question, next: ferme}
  note_fin: {type: rating, prompt: satisfaction.question, next: au_revoir}
  au_revoir: {type: end, prompt: fin.ferme, outcome: closed}
"""


@pytest.fixture(scope="module")
def after_hours(tmp_path_factory):
    path = tmp_path_factory.mktemp("flow") / "after_hours.yaml"
    path.write_text(FLOW_AFTER_HOURS, encoding="utf-8")
    return flow_loader.load(path, prompts.load(ROOT / "prompts"))


def _in_after_hours(flow, conditions):
    session, _ = engine.start(flow, "CA1", "+33612345678", AT, conditions)
    return engine.step(flow, session, Keys("question", "ask", "1", AT + 1), conditions)[0]


@pytest.mark.parametrize("event, why", [(NoInput, Say("commun.silence")), (Keys, Say("parole.pas_compris"))])
def test_failing_in_the_after_hours_part_when_closed_says_when_it_opens_and_goodbye(after_hours, event, why):
    session = _in_after_hours(after_hours, CLOSED)
    assert session.node == "ferme"
    for second in range(2, 2 + after_hours.settings.max_attempts):
        happened = NoInput("ferme", "ask", AT + second) if event is NoInput else Keys("ferme", "ask", "7", AT + second)
        session, actions = engine.step(after_hours, session, happened, CLOSED)
    assert actions == (Hangup((why, Say.filled("horaires.ferme", quand="demain à 8 heures 30"), Say("horaires.au_revoir"))),)
    assert (session.outcome, session.history[-1]) == ("closed", entry("ferme", 6, "end", AT + second, outcome="closed"))


def test_failing_in_the_after_hours_part_when_nobody_answered_says_no_agent_can(after_hours):
    session = _in_after_hours(after_hours, Conditions(agents=False))
    for second in range(2, 2 + after_hours.settings.max_attempts):
        session, actions = engine.step(after_hours, session, NoInput("ferme", "ask", AT + second), Conditions(agents=False))
    assert actions == (Hangup((Say("commun.silence"), Say("conseiller.indisponible"))),)
    assert session.outcome == "unanswered"


def test_an_end_marked_closed_reached_because_nobody_answered_is_counted_unanswered(after_hours):
    open_unstaffed = _in_after_hours(after_hours, Conditions(agents=False))
    ended, _ = engine.step(after_hours, open_unstaffed, Keys("ferme", "ask", "1", AT + 2), Conditions(agents=False))
    assert (ended.outcome, ended.history[-1]["outcome"]) == ("unanswered", "unanswered")
    closed, _ = engine.step(after_hours, _in_after_hours(after_hours, CLOSED), Keys("ferme", "ask", "1", AT + 2), CLOSED)
    assert closed.outcome == "closed"


def test_a_rating_whose_next_is_a_question_goes_on_there_and_after_an_agent_says_goodbye(after_hours):
    session = _in_after_hours(after_hours, CLOSED)
    rating, _ = engine.step(after_hours, session, Keys("ferme", "ask", "2", AT + 2), CLOSED)
    rated, actions = engine.step(after_hours, rating, Keys("note", "ask", "3", AT + 3), CLOSED)
    assert (rated.node, rated.rating) == ("ferme", 3) and actions[0].says[0] == Say("satisfaction.merci")
    after_agent, actions = engine.step(after_hours, rating.evolve(outcome="transferred"), Keys("note", "ask", "3", AT + 3))
    assert actions == (Hangup((Say("satisfaction.merci"), Say("fin.au_revoir"))),)


def test_a_rating_after_an_agent_whose_next_is_an_end_says_that_ends_sentence(after_hours):
    session = _in_after_hours(after_hours, CLOSED).evolve(node="note_fin", outcome="transferred")
    rated, actions = engine.step(after_hours, session, Keys("note_fin", "ask", "5", AT + 3))
    assert actions == (Hangup((Say("satisfaction.merci"), Say("fin.ferme"))),)
    assert (rated.outcome, rated.rating) == ("transferred", 5)


def test_answers_known_from_step_1_skip_every_question_they_answer_menus_and_numbers_alike(ecps):
    session = at(ecps, "etape6_support", answers={"android_15_et_navigateur": "oui"})
    from ivr.call.answers import enter

    after, actions = enter(ecps, session, "etape6_support", AT + 1)
    assert after.node == "etape6_navigateurs"
    skipped = [(item["node"], item["field"]) for item in after.history if item["event"] == "skip"]
    assert skipped == [("etape6_support", "support"), ("etape6_systeme_mobile", "systeme_mobile"),
                       ("etape6_version_mobile", "version_systeme_mobile")]
    assert after.answers["version_systeme_mobile"] == "15 ou plus" and actions[0].node == "etape6_navigateurs"


@pytest.mark.parametrize("caller, asked", [("+33612345678", "rappel_numero"), ("", "rappel_autre_numero")])
def test_the_callers_own_number_is_offered_only_when_the_network_gave_it(ecps, caller, asked):
    from ivr.call.answers import enter

    after, actions = enter(ecps, at(ecps, "horaires_tri", caller=caller), "rappel_tri", AT + 1)
    assert (after.node, actions[0].node) == (asked, asked)


def test_after_a_number_confirmed_the_next_question_starts_fresh(flow):
    read_back, _ = engine.step(flow, at(flow, "numero"), Keys("numero", "ask", VALID_RPPS, AT + 1))
    confirmed, actions = engine.step(flow, read_back, Keys("numero", "confirm", "1", AT + 1.23456))
    assert (confirmed.node, confirmed.phase, confirmed.pending) == ("navigateurs", "ask", None)
    assert confirmed.history[-2]["at"] == 1001.235  # times kept to the millisecond
    assert actions == (Ask("navigateurs", "ask", (Say("etape6.navigateurs"),), 6, 1, "#"),)


@pytest.mark.parametrize("confidence, sure", [(0.497, False), (0.5, True)])
def test_the_confidence_threshold_is_the_flows_percentage(flow, confidence, sure):
    session, _ = engine.step(flow, at(flow, "question"), Spoken("question", "ask", "oui", confidence, AT + 1))
    assert (session.phase == "speech") is not sure


def test_a_hash_at_a_menu_is_named_dieze_and_a_choice_without_answer_records_none(ecps):
    session, actions = engine.step(ecps, at(ecps, "etape1_a_jour"), Keys("etape1_a_jour", "ask", "#", AT + 1))
    assert actions[0].says[0] == Say.filled("commun.touche_invalide", touche="dièse")
    assert session.history[-1] == entry_at("etape1_a_jour", 1, "invalid", key="#")
    chosen, _ = engine.step(ecps, at(ecps, "rappel_numero", answers={"a": "b"}), Keys("rappel_numero", "ask", "1", AT + 1))
    assert chosen.answers == {"a": "b"} and chosen.outcome == "callback"


def test_wrong_keys_at_a_read_back_end_with_an_agent_and_at_optional_options_pass_the_question(flow):
    session = at(flow, "numero", phase="confirm", pending=VALID_RPPS, failures=flow.settings.max_attempts - 1)
    ended, actions = engine.step(flow, session, Keys("numero", "confirm", "7", AT + 1))
    assert actions == (Transfer("invalid_input", (Say("transfert.touches"),)),) and ended.transfer_reason == "invalid_input"
    session = at(flow, "navigateurs", failures=flow.settings.max_attempts - 1)
    passed, actions = engine.step(flow, session, Keys("navigateurs", "ask", "7", AT + 1))
    assert passed.node == "message" and actions[0].says[:2] == (Say.filled("commun.touche_invalide", touche="7"), Say("saisie.passee"))


def test_an_empty_message_is_noted_as_skipped(flow):
    session, _ = engine.step(flow, at(flow, "message"), Recorded("message", "ask", "https://api.twilio.com/R1", 0, AT + 1))
    assert session.history[-3] == entry_at("message", 6, "skip", field="message_vocal")


def test_the_options_chosen_so_far_are_read_back_in_the_order_pressed(ecps):
    first, _ = engine.step(ecps, at(ecps, "etape6_navigateurs"), Keys("etape6_navigateurs", "ask", "2", AT + 1))
    second, actions = engine.step(ecps, first, Keys("etape6_navigateurs", "more", "3", AT + 2))
    options = ecps.nodes["etape6_navigateurs"].options
    assert actions == (Ask("etape6_navigateurs", "more", (Say.filled("saisie.autre_option", choix=f"{options['2']}, {options['3']}"),), 6, 1, "#"),)


def test_the_ecps_test_step_listens_for_bravo_and_ko_while_the_caller_tries(ecps):
    _, (ask,) = engine.resume(ecps, at(ecps, "etape3_test"))
    assert (ask.pause, ask.says) == (ecps.settings.wait_pause, (Say("etape3.test"),))
    assert ask.hints == ("bravo", "ko", "k o", "ca ne marche pas", "erreur", "pas pu", "autre message", "impossible")


def test_a_message_ended_by_hanging_up_is_kept_and_ends_the_call_as_a_message(flow):
    left, actions = engine.step(flow, at(flow, "message"), Recorded("message", "ask", "https://api.twilio.com/R1", 9, AT + 1, hung_up=True))
    assert (left.outcome, left.outcome_step, actions) == ("voicemail", 6, (Hangup(),))
    assert left.answers == {"message_vocal": "https://api.twilio.com/R1"}
    assert left.history[-2:] == (entry_at("message", 6, "answer", field="message_vocal", duration=9),
                                 entry_at("message", 6, "end", outcome="voicemail"))
    silent, actions = engine.step(flow, at(flow, "message"), Recorded("message", "ask", "https://api.twilio.com/R1", 0, AT + 1, hung_up=True))
    assert (silent, actions) == (at(flow, "message"), (Hangup(),))  # nothing to keep: the status callback ends the call
