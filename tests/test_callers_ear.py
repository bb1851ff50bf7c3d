"""Issue 35: a caller hears only what is true for them, once. Each numbered item of the issue,
listened to over signed webhooks as a caller in that situation would (at night, on a landline,
with SMS not configured, pressing 0 at once, leaving a message)."""

from __future__ import annotations

from datetime import datetime

import pytest
from conftest import ROOT, VALID_RPPS, WORKFLOW, heard
from test_calls import TO_STEP6
from test_every_path import AFTER_IDENTIFIER, HOURS, SUNDAY_NIGHT

from ivr.call.hours import PARIS

ACCOUNT = "AC" + "1" * 32
TUESDAY = datetime(2026, 11, 24, 10, 0, tzinfo=PARIS).timestamp()
MOBILE, LANDLINE = "+33612345678", "+33140000000"
TO_BATTERY = ["2", "1"]  # up to date, Pro Santé Connect in an Android 15's browser: step 2


@pytest.fixture
def night(make_app):
    return make_app(IVR_ALWAYS_OPEN="", IVR_HOURS=HOURS, IVR_CLOCK=lambda: SUNDAY_NIGHT, TWILIO_WORKFLOW_SID=WORKFLOW)


@pytest.fixture
def day_with_sms(make_app):
    return make_app(TWILIO_WORKFLOW_SID=WORKFLOW, TWILIO_ACCOUNT_SID=ACCOUNT, IVR_SMS_FROM="+33700000000")


def everything(result) -> str:
    return " ".join(result.said)


# ---- 1. at night, no agent offered that cannot be reached ------------------------------------------
def test_at_night_the_welcome_says_it_is_closed_and_what_0_does_and_no_step_offers_an_agent(night, caller):
    result = caller(target=night).call([*TO_BATTERY, "1", "1", "1", "1", "1", "2"])  # step 2 through, then « not solved »
    welcome = result.said[0]
    assert "Le service client est fermé, il ouvre demain à 8 heures 30" in welcome
    assert "0 pour être rappelé ou laisser un message" in welcome
    assert "conseiller" not in welcome
    assert "tapez 0 pour un conseiller" not in everything(result)
    assert "guidé pas à pas par un conseiller" not in everything(result)
    assert "0 pour parler à un conseiller" not in everything(result)


def test_bravo_at_night_offers_a_callback_not_an_agent(night, caller):
    result = caller(target=night).call(["2", "2", "1"])  # step 3, « Bravo »
    assert heard("Pour être rappelé quand même par un conseiller e-CPS, tapez 0.") in everything(result)
    assert "Pour parler quand même à un conseiller" not in everything(result)


def test_by_day_the_welcome_and_steps_offer_the_agent(make_app, caller):
    app = make_app(IVR_ALWAYS_OPEN="", IVR_HOURS=HOURS, IVR_CLOCK=lambda: TUESDAY, TWILIO_WORKFLOW_SID=WORKFLOW)
    result = caller(target=app).call([*TO_BATTERY, "1", "1", "1", "1", "1", "2"])
    assert "0 pour parler à un conseiller" in result.said[0] and "fermé" not in everything(result)
    assert "tapez 0 pour un conseiller" in everything(result)


# ---- 2. the closure is said once ---------------------------------------------------------------------
def test_at_night_the_closure_is_said_once_even_after_a_voice_message(night, caller):
    keys = [*TO_STEP6, "1", VALID_RPPS, "1", *AFTER_IDENTIFIER[:-1], "1", "rec", "2"]  # a message, then « terminer »
    result = caller(target=night).call(keys)
    assert sum("fermé" in text for text in result.said) == 1, result.said
    assert sum("Il ouvre" in text or "il ouvre" in text for text in result.said) == 1


# ---- 3. « an agent will answer » once before the queue --------------------------------------------------
def test_an_agent_will_answer_is_said_once_on_the_way_to_the_queue(make_app, caller):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW)
    call = caller(target=app)
    result = call.call([*TO_STEP6, "1", VALID_RPPS, "1", *AFTER_IDENTIFIER])
    said = everything(result)
    assert said.count("va vous répondre") <= 2, result.said  # the transfer, then the hold message while waiting
    before_hold = " ".join(result.said[: result.said_before_queue]) if result.said_before_queue else said
    assert before_hold.count("va vous répondre") == 1, result.said
    assert "Il aura déjà vos réponses" not in said


# ---- 4. no answers promised that do not exist -------------------------------------------------------------
def test_0_at_the_first_question_promises_no_answers(make_app, caller):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW)
    result = caller(target=app).call(["0"])
    assert result.end == "enqueue"
    assert result.said[result.said_before_queue - 1] == "Je vous mets en relation avec un conseiller."
    after_answers = caller(target=app).call(["2", "0"])
    promised = after_answers.said[after_answers.said_before_queue - 1]
    assert promised == "Je vous mets en relation avec un conseiller. Il aura vos réponses sous les yeux."


# ---- 5. one skip key, menus without gaps ----------------------------------------------------------------
def test_9_passes_the_browsers_question_as_it_passes_the_others(make_app, caller):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW)
    call = caller(target=app)
    result = call.call([*TO_STEP6, "1", VALID_RPPS, "1", ".", "1", "1", "1", "2", "15", "9", "1", "11", "2", "2"])
    at_browsers = next(q for q in result.questions if q.node == "etape6_navigateurs")
    assert "Pour passer, tapez 9." in " ".join(at_browsers.said)
    assert "La touche 9 ne correspond à aucun choix" not in everything(result)
    assert result.questions[result.questions.index(at_browsers) + 1].node == "etape6_ordinateur"


def test_after_a_message_at_night_the_menu_is_1_and_2(night, caller):
    keys = [*TO_STEP6, "1", VALID_RPPS, "1", *AFTER_IDENTIFIER[:-1], "1", "rec", "2"]
    result = caller(target=night).call(keys)
    menu = next(q for q in result.questions if q.node == "horaires_apres_message")
    assert "Pour être rappelé en plus, tapez 1. Pour terminer l'appel, tapez 2." in " ".join(menu.said)
    assert result.end == "hangup" and night.extensions["ivr"].records.get(result.call_sid)["outcome"] == "voicemail"


# ---- 6. step 1 asks the guide's condition ------------------------------------------------------------------
def test_step_1_asks_whether_pro_sante_connect_is_used_in_the_phones_browser(make_app, caller):
    result = caller(target=make_app(TWILIO_WORKFLOW_SID=WORKFLOW)).call(["2"])
    assert "Vous connectez-vous à Pro Santé Connect dans le navigateur de votre téléphone, un Android 15 ou plus ?" in result.said[-1]


# ---- 7. SMS only where it arrives ------------------------------------------------------------------------------
@pytest.mark.parametrize(("sms", "number", "offered"), [(True, MOBILE, True), (False, MOBILE, False), (True, LANDLINE, False)],
                         ids=["sms-mobile", "no-sms", "landline"])
def test_the_sms_guide_is_offered_only_where_it_arrives(make_app, caller, sms, number, offered):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, **({"TWILIO_ACCOUNT_SID": ACCOUNT, "IVR_SMS_FROM": "+33700000000"} if sms else {}))
    result = caller(target=app, caller=number).call([*TO_BATTERY, ".", "0"])
    assert ("tapez 8" in everything(result)) is offered
    step3 = caller(target=app, caller=number).call(["2", "2"])
    assert ("Guide par SMS : tapez 8." in everything(step3)) is offered


# ---- 8. the words written are the words heard ------------------------------------------------------------------
def test_the_short_form_names_the_system_as_the_long_one(make_app, caller):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW)
    result = caller(target=app).call([*TO_STEP6, "1", VALID_RPPS, "1", ".", "1", "1", "1", "7"])  # a wrong key at the system question
    short = result.questions[-1].said[-1]
    assert result.questions[-1].node == "etape6_systeme_mobile" and "La touche 7 ne correspond à aucun choix." in result.questions[-1].said
    assert "iPhone ou iPad, tapez 1" in short and "iOS" not in short and "aïe" not in everything(result)


def test_the_flow_file_says_which_conditions_exist(make_app):
    text = (ROOT / "flows" / "ecps.yaml").read_text(encoding="utf-8")
    for condition in ("ferme", "sans_conseiller", "sans_sms", "fixe", "sans_reponses", "dit:fermeture"):
        assert condition in text
    assert heard("e-CPS") != ""


# ---- the script book ------------------------------------------------------------------------------------------
def test_the_script_book_in_docs_is_what_the_files_say_and_says_nothing_twice():
    from click.testing import CliRunner

    from ivr.cli import main

    result = CliRunner().invoke(main, ["parcours", "--flow", str(ROOT / "flows" / "ecps.yaml"), "--prompts", str(ROOT / "prompts")])
    assert result.exit_code == 0, result.output
    written = (ROOT / "docs" / "parcours-entendus.md").read_text(encoding="utf-8")
    assert result.output == written, "docs/parcours-entendus.md is out of date: run « ivr parcours -o docs/parcours-entendus.md »"
    assert "Redit sans que l'appelant le demande" not in written
    night = written.split("## La nuit, d'un fixe, sans SMS")[1]
    assert "tapez 8" not in night and "parler à un conseiller" not in night  # nothing untrue for that caller
    assert night.count("fermé") == 1


def test_the_script_book_flags_a_fact_said_twice_in_two_sentences(files):
    from click.testing import CliRunner

    from ivr.cli import main

    prompts = files / "prompts" / "fr-FR.yaml"
    text = prompts.read_text(encoding="utf-8")
    hold = "  message: >-\n    Merci de patienter : un conseiller va vous répondre.\n"
    prompts.write_text(text.replace("  message: >-\n    Merci de patienter.\n", hold), encoding="utf-8")
    result = CliRunner().invoke(main, ["parcours", "--flow", str(files / "flows" / "ecps.yaml"), "--prompts", str(files / "prompts"),
                                       "--strict"])
    assert result.exit_code == 1 and "« un conseiller va vous répondre »" in result.output


def test_the_script_book_flags_a_sentence_said_twice(files):
    from click.testing import CliRunner

    from ivr.cli import main

    prompts = files / "prompts" / "fr-FR.yaml"
    text = prompts.read_text(encoding="utf-8")
    prompts.write_text(text.replace("  resolu: >-\n    Après la réinstallation, le problème est-il résolu ?",
                                    "  resolu: >-\n    Après la déconnexion, le problème est-il résolu ?"), encoding="utf-8")
    result = CliRunner().invoke(main, ["parcours", "--flow", str(files / "flows" / "ecps.yaml"), "--prompts", str(files / "prompts"),
                                       "--strict"])
    assert result.exit_code == 1
    assert "Redit sans que l'appelant le demande : « Après la déconnexion, le problème est-il résolu ?" in result.output


# ---- the lints that keep it so ---------------------------------------------------------------------------------
def _validate(files):
    from click.testing import CliRunner

    from ivr.cli import main

    return CliRunner().invoke(main, ["validate", "--file-only", "--flow", str(files / "flows" / "ecps.yaml"), "--prompts", str(files / "prompts")])


def test_a_second_skip_key_is_flagged(files):
    prompts = files / "prompts" / "fr-FR.yaml"
    text = prompts.read_text(encoding="utf-8")
    prompts.write_text(text.replace("Chrome 1, Firefox 2, Edge 3, Safari 4, autre 5. Passer : 9.",
                                    "Chrome 1, Firefox 2, Edge 3, Safari 4, autre 5. Passer : dièse."), encoding="utf-8")
    result = _validate(files)
    assert "« etape6.navigateurs_court » fait passer la question avec la touche dièse : partout ailleurs c'est 9" in result.output


def test_a_menu_with_a_gap_is_flagged(files):
    flow = files / "flows" / "ecps.yaml"
    prompts = files / "prompts" / "fr-FR.yaml"
    flow.write_text(flow.read_text(encoding="utf-8").replace('      "2": {answer: message seul, goto: fin_message}',
                                                           '      "3": {answer: message seul, goto: fin_message}'), encoding="utf-8")
    prompts.write_text(prompts.read_text(encoding="utf-8").replace("Pour terminer l'appel, tapez 2.\n  apres_message_court: >-\n"
                                                                   "    Être rappelé, tapez 1. Terminer, tapez 2.",
                                                                   "Pour terminer l'appel, tapez 3.\n  apres_message_court: >-\n"
                                                                   "    Être rappelé, tapez 1. Terminer, tapez 3."), encoding="utf-8")
    result = _validate(files)
    assert "étape « horaires_apres_message » : les choix sont numérotés 1, 3 ; numérotez-les 1, 2, 3… sans trou" in result.output


def test_a_variant_that_drops_a_key_the_step_takes_is_an_error(files):
    prompts = files / "prompts" / "fr-FR.yaml"
    text = prompts.read_text(encoding="utf-8")
    prompts.write_text(text.replace("  test_sans_sms: >-\n    Étape 3. Testez votre e-CPS dans l'application.\n"
                                    "    Résultat « Bravo » : tapez 1. « KO » : tapez 2. Autre message, ou test impossible : tapez 3.",
                                    "  test_sans_sms: >-\n    Étape 3. Testez votre e-CPS dans l'application.\n"
                                    "    Résultat « Bravo » : tapez 1. « KO » : tapez 2."), encoding="utf-8")
    result = _validate(files)
    assert result.exit_code == 1
    assert "« etape3.test_sans_sms » (dite à la place de « etape3.test » quand sans_sms) n'annonce pas la touche 3" in result.output


def test_an_unknown_condition_is_refused_with_the_known_ones(files):
    flow = files / "flows" / "ecps.yaml"
    flow.write_text(flow.read_text(encoding="utf-8").replace("- {when: [sans_reponses], say: transfert.demande_sans_reponses}",
                                                           "- {when: [nuit], say: transfert.demande_sans_reponses}"), encoding="utf-8")
    result = _validate(files)
    assert result.exit_code == 1 and "condition inconnue « nuit » (possibles : ferme, ouvert, sans_conseiller" in result.output


def test_a_skip_on_another_key_than_9_is_flagged_however_it_is_worded(files):
    flow = files / "flows" / "ecps.yaml"
    flow.write_text(flow.read_text(encoding="utf-8").replace('"9": {answer: ne sait pas, goto: etape6_en_cours}',
                                                           '"3": {answer: ne sait pas, goto: etape6_en_cours}'), encoding="utf-8")
    prompts = files / "prompts" / "fr-FR.yaml"
    prompts.write_text(prompts.read_text(encoding="utf-8").replace("Si vous ne savez pas, tapez 9.\n  reproductible_court",
                                                                   "Si vous ne le savez pas, tapez 3.\n  reproductible_court"), encoding="utf-8")
    result = _validate(files)
    assert "étape « etape6_reproductible » : la touche 3 passe la question (« ne sait pas ») : partout ailleurs c'est 9" in result.output


def test_options_with_a_gap_are_flagged(files):
    flow = files / "flows" / "ecps.yaml"
    flow.write_text(flow.read_text(encoding="utf-8").replace('      "5": autre\n', '      "6": autre\n'), encoding="utf-8")
    prompts = files / "prompts" / "fr-FR.yaml"
    prompts.write_text(prompts.read_text(encoding="utf-8").replace("Un autre, tapez 5.", "Un autre, tapez 6.")
                       .replace("autre 5. Passer : 9.", "autre 6. Passer : 9."), encoding="utf-8")
    assert "étape « etape6_navigateurs » : les choix sont numérotés 1, 2, 3, 4, 6" in _validate(files).output


def test_a_short_form_that_contradicts_its_long_forms_variant_is_flagged(files):
    flow = files / "flows" / "ecps.yaml"
    flow.write_text(flow.read_text(encoding="utf-8").replace(
        "  etape6.message_choix_court:\n    - {when: [sans_conseiller], say: etape6.message_choix_court_ferme}\n", ""), encoding="utf-8")
    result = _validate(files)
    assert "« etape6.message_choix_court » (forme courte de « etape6.message_choix ») dit encore « conseiller »" in result.output


# ---- found by a fresh-eyes listening ---------------------------------------------------------------------------
def test_at_night_0_at_once_promises_no_answers_and_reads_a_foreign_number_with_its_country(night, caller):
    result = caller(target=night, caller="+447911123456").call(["0", "1", "1"])
    assert "vos réponses" not in everything(result), result.said
    assert "Nous vous rappellerons au plus 44, 79 11 12 34 56." in everything(result)


def test_open_without_an_agent_configured_no_agent_is_promised(make_app, caller):
    app = make_app()  # open, no queue, no number: nobody to put the caller through to
    pressed_0 = caller(target=app).call(["0", "3"])
    assert "Aucun conseiller n'a pu prendre votre appel." not in everything(pressed_0)
    assert "Les conseillers ne sont pas joignables par téléphone pour le moment." in everything(pressed_0)
    step6 = caller(target=app).call([*TO_STEP6, "1", VALID_RPPS, "1", *AFTER_IDENTIFIER[:-1], "."])
    said = everything(step6)
    assert "transmises au conseiller" not in said and "passer directement au conseiller" not in said


def test_at_night_a_declined_message_goes_to_the_callback_and_a_left_one_is_said_recorded_once(night, caller):
    declined = caller(target=night).call([*TO_STEP6, "1", VALID_RPPS, "1", *AFTER_IDENTIFIER[:-1], "2", "1"])
    assert not any(q.node == "horaires_ferme" for q in declined.questions)  # the message was declined: not offered again
    assert any(q.node == "rappel_numero" for q in declined.questions)
    assert "Pour laisser un message" not in " ".join(declined.said[-3:])
    left = caller(target=night).call([*TO_STEP6, "1", VALID_RPPS, "1", *AFTER_IDENTIFIER[:-1], "1", "rec", "2"])
    assert everything(left).count("Votre message est enregistré") == 1


def test_the_service_closing_during_the_call_is_said_before_the_callback_is_offered(make_app, caller):
    moment = {"now": datetime(2026, 11, 27, 17, 55, tzinfo=PARIS).timestamp()}  # a Friday, it closes at 18:00
    app = make_app(IVR_ALWAYS_OPEN="", IVR_HOURS=HOURS, IVR_CLOCK=lambda: moment["now"], AGENT_NUMBER="+33100000000")  # a direct line
    script = iter([*TO_STEP6, "1", VALID_RPPS, "1", *AFTER_IDENTIFIER[:-1], "2", "1"])

    def answer(question):
        if question.node == "etape6_lps":
            moment["now"] += 600  # 18:05 when the caller answers the last question: closed
        return next(script, None)

    result = caller(target=app).call(answer)
    at_choice = next(q for q in result.questions if q.node == "etape6_message_choix")
    assert at_choice.heard[-1].startswith("Le service client vient de fermer ; il ouvre lundi"), at_choice.heard
    assert sum("fermé" in text or "fermer" in text for text in result.said) == 1, result.said
