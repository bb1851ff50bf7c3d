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
