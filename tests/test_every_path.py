"""Every path ends well, over signed webhooks: at night, with agents who do not answer, with numbers
the caller does not have, empty messages, the notices, and the French as a caller hears it."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime

import pytest
from conftest import ROOT, TOKEN, VALID_RPPS, WORKFLOW, heard
from test_calls import TO_STEP6

from ivr.call.hours import PARIS
from ivr.supervisor.simulator import Caller, FlaskTransport

HOURS = str(ROOT / "flows" / "horaires.yaml")
SUNDAY_NIGHT = datetime(2026, 11, 29, 3, 0, tzinfo=PARIS).timestamp()
TUESDAY = datetime(2026, 11, 24, 10, 0, tzinfo=PARIS).timestamp()
CLOSED = "Le service client est fermé pour le moment. Il ouvre demain à 8 heures 30."
# After the identifier: no card, reproducible, now, phone, Android 15, Chrome only, Windows 11, no LPS;
# then no message.
QUESTIONS = [".", "1", "1", "1", "2", "15", "1", "#", "1", "11", "2"]
AFTER_IDENTIFIER = [*QUESTIONS, "2"]


@pytest.fixture
def night(make_app):
    return make_app(IVR_ALWAYS_OPEN="", IVR_HOURS=HOURS, IVR_CLOCK=lambda: SUNDAY_NIGHT, TWILIO_WORKFLOW_SID=WORKFLOW)


def record_of(app, call):
    return app.extensions["ivr"].records.get(call.call_sid)


# ---- 1. closed: no endless menu ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("keys", "why"),
    [
        (["0", ".", ".", "."], "Je n'ai pas eu de réponse."),  # silence at the after-hours menu
        (["0", "7", "7", "7"], "Je n'ai pas compris votre réponse."),  # wrong keys there
        (["0", "1", ".", ".", "."], "Je n'ai pas eu de réponse."),  # at « is this the right number? »
        (["0", "1", "2", "12", "34", "56"], "Je n'ai pas compris votre réponse."),  # three wrong callback numbers
    ],
    ids=["silence-menu", "keys-menu", "silence-number", "wrong-numbers"],
)
def test_failing_at_night_says_goodbye_with_the_hours_instead_of_the_menu_again(night, caller, keys, why):
    call = caller(target=night)
    result = call.call(keys)
    assert result.end == "hangup"
    # The closure was said once, at the welcome (issue 35): the goodbye gives the time only.
    assert result.said[-2:] == [why, "Merci de rappeler demain à 8 heures 30. Au revoir."]
    assert sum("fermé" in text for text in result.said) == 1 and CLOSED not in result.said
    menu = night.extensions["ivr"].bundle().prompts.text("horaires.choix_ferme_sans_reponses")  # 0 at once: no answers promised
    assert result.said.count(heard(menu)) == 1
    assert record_of(night, call)["outcome"] == "closed"


# ---- 2. closed: said before the questions ---------------------------------------------------------
def test_at_night_step_6_says_it_is_closed_before_the_questions(night, caller):
    call = caller(target=night)
    result = call.call([*TO_STEP6, "1", VALID_RPPS, "1", *AFTER_IDENTIFIER, "1", "1"])
    step6 = next(text for text in result.said if text.startswith("Étape 6"))
    # Said once, at the welcome, with what 0 does at night (issue 35); step 6 does not say it again.
    assert "Le service client est fermé, il ouvre demain à 8 heures 30" in result.said[0]
    assert "0 pour être rappelé ou laisser un message" in result.said[0] and "parler à un conseiller" not in result.said[0]
    assert step6.startswith("Étape 6. Répondez à quelques questions")
    assert "vos réponses accompagneront votre demande de rappel ou votre message" in step6
    assert sum("fermé" in text for text in result.said) == 1
    assert "Je vais vous mettre en relation" not in " ".join(result.said)
    assert "dès l'ouverture" in result.said[-1]
    assert not any(q.node == "horaires_ferme" for q in result.questions)  # the message declined: straight to the callback
    assert record_of(night, call)["outcome"] == "callback"
    (listed,) = night.extensions["ivr"].callbacks.list()
    assert listed["context"]["identifier"]["value"] == VALID_RPPS


def test_while_open_the_callback_offer_does_not_say_at_opening(make_app, caller):
    app = make_app(AGENT_NUMBER="+33140000000")
    call = caller(target=app)
    call.call(["0"], hang_up_status=False)
    _, body = call.post("http://localhost/voice/transfer-done", call.params(DialCallStatus="busy"))
    _, body = call.post("http://localhost/voice/answer?node=horaires_ferme&phase=ask", call.params(Digits="1"))
    _, body = call.post("http://localhost/voice/answer?node=rappel_numero&phase=ask", call.params(Digits="1"))
    assert "dès que possible" in body and "dès l'ouverture" not in body


# ---- 4. numbers the caller does not have ----------------------------------------------------------
def test_an_identifier_can_be_skipped_with_hash(app, caller):
    call = caller()
    result = call.call([*TO_STEP6, "1", "#", *AFTER_IDENTIFIER])
    assert result.end == "enqueue"
    asked = [question.node for question in result.questions]
    assert asked[asked.index("etape6_rpps") + 1] == "etape6_carte"  # passed: the next question comes
    document = record_of(app, call)["context"]
    assert document["questionnaire"]["identifier"] is None and document["answers"]["type_identifiant"] == "RPPS"


def test_a_skipped_siret_does_not_ask_for_the_matricule(app, caller):
    result = caller().call([*TO_STEP6, "2", "#", *AFTER_IDENTIFIER])
    assert result.end == "enqueue"
    assert "etape6_matricule" not in [question.node for question in result.questions]


def test_a_matricule_with_letters_is_skipped_with_hash(app, caller):
    call = caller()
    result = call.call([*TO_STEP6, "2", "73282932000074", "1", "#", *AFTER_IDENTIFIER])
    assert result.end == "enqueue"
    matricule = next(q for q in result.questions if q.node == "etape6_matricule")
    assert "S'il contient des lettres, ou si vous ne l'avez pas, tapez simplement dièse" in " ".join(matricule.said)
    identifier = record_of(app, call)["context"]["questionnaire"]["identifier"]
    assert identifier == {"type": "SIRET", "value": "73282932000074", "matricule": None}


@pytest.mark.parametrize(("typed", "kept"), [("2010012345", "2A0012345"), ("2020012345", "2B0012345"), ("750012345", "750012345")])
def test_a_corsican_finess_can_be_keyed(app, caller, typed, kept):
    call = caller()
    result = call.call([*TO_STEP6, "3", typed, "1", "#", *AFTER_IDENTIFIER])
    assert result.end == "enqueue"
    assert record_of(app, call)["context"]["questionnaire"]["identifier"]["value"] == kept
    finess = next(q for q in result.questions if q.node == "etape6_finess")
    assert "En Corse, tapez 2 0 1 au lieu de 2A, et 2 0 2 au lieu de 2B." in " ".join(finess.said)


def test_a_finess_starting_with_20_is_explained(caller):
    result = caller().call([*TO_STEP6, "3", "200012345", "750012345", "1", "#", *AFTER_IDENTIFIER])
    assert "Pour un numéro de Corse, tapez 2 0 1 au lieu de 2A, ou 2 0 2 au lieu de 2B, puis la suite." in result.said


# ---- 5. step 3's third outcome ---------------------------------------------------------------------
def test_a_test_that_could_not_be_run_goes_to_step_4_with_the_answer_kept(app, caller):
    call = caller()
    result = call.call(["2", "2", "3", "0"])
    assert any(text.startswith("Étape 4.") for text in result.said)
    assert record_of(app, call)["context"]["answers"]["resultat_test_ecps"] == "test impossible ou autre message"


# ---- 6. voice messages -------------------------------------------------------------------------------
@pytest.fixture
def dial_app(make_app):
    """Transfers to an agent's number: no queue, the questionnaire and its message before the transfer."""
    return make_app(AGENT_NUMBER="+33140000000")


def test_an_empty_recording_is_no_message(dial_app, caller):
    app = dial_app
    call = caller(target=app)
    result = call.call([*TO_STEP6, "9", *QUESTIONS, "1", "rec:0"])
    assert result.end == "dial"
    assert "Je n'ai pas entendu de message." in result.said
    document = record_of(app, call)["context"]
    assert document["questionnaire"]["voice_message_url"] is None
    assert "message vocal" not in document["summary_fr"].lower()


def test_an_empty_message_at_night_goes_back_to_the_menu(night, caller):
    result = caller(target=night).call(["0", "2", "rec:0", "3"])
    assert "Je n'ai pas entendu de message." in result.said
    assert result.questions[-1].node == "horaires_ferme"
    assert not night.extensions["ivr"].callbacks.list()


def test_after_a_message_at_step_6_the_night_menu_offers_no_second_message(night, caller):
    call = caller(target=night)
    result = call.call([*TO_STEP6, "9", *QUESTIONS, "1", "rec"])
    menu = " ".join(result.questions[-1].said)
    assert result.questions[-1].node == "horaires_apres_message"
    assert "laisser un message" not in menu.lower() and "Votre message est enregistré avec vos réponses." in menu
    # Hanging up there: the message is for the agents all the same.
    assert record_of(night, call)["outcome"] == "voicemail"
    (listed,) = night.extensions["ivr"].callbacks.list()
    assert listed["kind"] == "voicemail" and listed["message_url"].startswith("https://api.twilio.com/")


# ---- 7. notices ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("days", "said"), [("90", "conservées 90 jours"), ("1", "conservées 1 jour.")])
def test_notices_on_data_use_recording_and_speakerphone(make_app, caller, days, said):
    app = make_app(AGENT_NUMBER="+33140000000", IVR_RETENTION_DAYS=days)
    result = caller(target=app).call([*TO_STEP6, "9", *QUESTIONS, "1", "rec"])
    assert "mettez votre téléphone sur haut-parleur" in result.said[0].lower()
    step6 = next(text for text in result.said if text.startswith("Étape 6"))
    assert said in step6 and "transmises" in step6
    record = next(q for q in result.questions if q.record)
    before = " ".join(record.heard)
    assert "Votre message sera enregistré et conservé" in before and "aucune information sur vos patients" in before


def test_a_retention_that_is_no_number_is_refused_at_start(make_app):
    from ivr.web.services import ConfigurationError

    with pytest.raises(ConfigurationError, match="IVR_RETENTION_DAYS"):
        make_app(IVR_RETENTION_DAYS="abc")


# ---- 8. French as heard --------------------------------------------------------------------------------
def test_one_digit_is_singular(caller):
    result = caller().call([*TO_STEP6, "1", "5", VALID_RPPS, "1", *AFTER_IDENTIFIER])
    assert "Ce numéro a 1 chiffre ; il en faut 11." in result.said


def test_one_minute_of_wait_is_singular(app, caller):
    call = caller()
    _, body = call.post("http://localhost/voice/wait", call.params(QueuePosition="2", AvgQueueTime="70", QueueTime="5"))
    assert "Le temps d'attente est d'environ 1 minute." in body


def test_words_the_voice_misreads_are_said_by_ssml_and_written_as_they_are(caller):
    """Issue 35: the respelling lives in the TwiML's SSML <sub>, generated from the prompt file's
    « prononciation »; what a transcript (and a supervisor) reads is the word as written."""
    call = caller()
    result = call.call(["2", "2"])
    text = " ".join(result.said)
    assert "e-CPS" in text and "é-C-P-S" not in text and "« KO »" in text
    document = "".join(result.documents)
    assert '<sub alias="é-C-P-S">e-CPS</sub>' in document and '« <sub alias="K-O">KO</sub> »' in document


def test_no_good_day_wished_at_night(night, caller):
    result = caller(target=night).call(["1", "1", "1", "."])
    assert result.said[-1] == "Merci de votre appel, au revoir." and "Parfait, votre problème est résolu." in result.said
    assert not any("bonne journée" in text for text in result.said)


def test_c_est_bon_is_not_yes_it_happens_now(app, caller):
    keys = [*TO_STEP6, "9", ".", "1", "dit:c'est bon"]
    result = caller().call(keys)
    assert "Je n'ai pas compris votre réponse." in result.said
    assert result.questions[-1].node == "etape6_en_cours"


def test_a_single_browser_is_taken_at_once_and_more_can_be_added(app, caller):
    call = caller()
    result = call.call([*TO_STEP6, "9", ".", "1", "1", "1", "2", "15", "2", "3", "#", "1", "11", "2", "2"])
    browsers = next(q for q in result.questions if q.node == "etape6_navigateurs")
    assert browsers.num_digits == 1  # one key is posted at once: no wait for a timeout
    assert "C'est noté : Firefox. Un autre ? Tapez son chiffre. Sinon, tapez dièse." in result.said
    assert "C'est noté : Firefox, Edge. Un autre ? Tapez son chiffre. Sinon, tapez dièse." in result.said
    assert record_of(app, call)["context"]["questionnaire"]["browsers"] == ["Firefox", "Edge"]


# ---- 9. the guide's details ------------------------------------------------------------------------------
def test_bravo_says_whom_to_contact_and_still_offers_an_agent(app, caller):
    result = caller().call(["2", "2", "1", "0"])
    bravo = next(text for text in result.said if "Le problème vient du service" in text)
    assert "Prenez contact avec ce service : son assistance, ou la personne qui gère vos accès." in bravo
    assert result.end == "enqueue" and result.task["reason"] == "caller_request"


def test_bravo_then_silence_ends_the_call_as_service(app, caller):
    call = caller()
    result = call.call(["2", "2", "1", ".", "."])  # silence at « 0 for an agent », silence at the rating
    assert result.end == "hangup" and result.said[-1] == "Merci de votre appel, au revoir."
    assert record_of(app, call)["outcome"] == "service"


def test_hanging_up_after_bravo_counts_as_service(app, caller):
    call = caller()
    call.call(["2", "2", "1"])  # no key: hangs up at « tapez 0 for an agent »
    assert record_of(app, call)["outcome"] == "service"


# ---- 10. the task within Twilio's limit ------------------------------------------------------------
def test_the_longest_answers_fit_in_the_task_and_keep_the_context_url(make_app, files):
    # A flow that asks everything before the queue (no « while_queued »): the longest task there is.
    flow = files / "flows" / "ecps.yaml"
    flow.write_text(re.sub(r"^while_queued:.*$", "", flow.read_text(encoding="utf-8"), flags=re.M), encoding="utf-8")
    public = "https://serveur-vocal.assistance-ecps.esante.gouv.fr"
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_PUBLIC_URL=public, IVR_FLOW=str(flow), IVR_PROMPTS=str(files / "prompts"))
    call = Caller(FlaskTransport(app.test_client()), public, TOKEN, caller="+33612345678")
    longest = ["2", "73282932000074", "1", "1" * 20, "1", "1" * 20, "1", "1", "1", "1", "2", "15",
               "1", "2", "3", "4", "5", "1", "11", "1", "1", "rec"]
    result = call.call([*TO_STEP6, *longest])
    assert result.end == "enqueue"
    document = next(body for body in reversed(result.documents) if "<Task>" in body)
    text = html.unescape(document.split("<Task>")[1].split("</Task>")[0])
    assert len(text.encode()) <= 1024, len(text.encode())  # in bytes, the stricter count
    fields = json.loads(text)
    assert fields["context_url"] == f"{public}/api/calls/{call.call_sid}/context"
    assert fields["summary_fr"].endswith("(suite dans la fiche)")
    whole = record_of(app, call)["context"]["summary_fr"]
    assert "Un message vocal a été laissé." in whole


# ---- after a first review -------------------------------------------------------------------------------
def test_a_withheld_number_is_asked_for_rather_than_read_back_empty(night, caller):
    call = caller(target=night, caller="anonymous")
    result = call.call(["0", "1", "0612345678", "1"])
    assert not any("Nous vous rappellerons au ." in text for text in result.said)
    assert [q.node for q in result.questions][:3] == ["etape1_a_jour", "horaires_ferme", "rappel_autre_numero"]
    assert night.extensions["ivr"].callbacks.list()[0]["number"] == "+33612345678"


def test_three_wrong_identifiers_pass_the_question_and_keep_the_questionnaire(app, caller):
    call = caller()
    result = call.call([*TO_STEP6, "1", "10012345674", "10012345674", "10012345674", *AFTER_IDENTIFIER])
    assert "Je passe cette question : le conseiller vous la posera." in result.said
    assert result.end == "enqueue" and record_of(app, call)["context"]["reason"] == "diagnostic_complete"


def test_silence_at_an_identifier_says_the_agent_will_ask(caller):
    result = caller().call([*TO_STEP6, "1", ".", *AFTER_IDENTIFIER])
    assert "Je passe cette question : le conseiller vous la posera." in result.said


def test_an_overseas_number_can_be_given_for_the_callback(night, caller):
    result = caller(target=night).call(["0", "1", "2", "0692123456", "1"])
    assert night.extensions["ivr"].callbacks.list()[0]["number"] == "+262692123456"
    assert any("06 92 12 34 56" in text for text in result.said)


def test_ending_without_a_callback_when_no_agent_answered_by_day_is_not_closed(make_app, caller):
    app = make_app()
    call = caller(target=app)
    call.call(["0", "3"])
    assert record_of(app, call)["outcome"] == "unanswered"


def test_at_night_the_last_question_of_step_6_does_not_promise_an_agent(night, caller):
    result = caller(target=night).call([*TO_STEP6, "9", *QUESTIONS])
    assert "Pour passer à la demande de rappel, tapez 2." in " ".join(result.questions[-1].said)
    assert "Merci de votre appel. Vous pouvez rappeler demain à 8 heures 30. Au revoir." in caller(target=night).call(["0", "3"]).said


# ---- nothing asked twice ---------------------------------------------------------------------------------
ANDROID_TO_STEP6 = ["2", "1", "1", "1", "1", "1", "1", "2", "2", "1", "2", "1", "1", "1", "2"]


def test_what_step_1_said_is_not_asked_again_and_the_agent_reads_it_as_inferred(app, caller):
    call = caller()
    result = call.call([*ANDROID_TO_STEP6, "9", ".", "1", "1", "1", "#", "1", "11", "2", "2"])
    assert result.end == "enqueue"
    asked = [question.node for question in result.questions]
    assert not {"etape6_support", "etape6_systeme_mobile", "etape6_version_mobile"} & set(asked)
    document = record_of(app, call)["context"]
    assert document["questionnaire"]["device"] == "téléphone" and document["questionnaire"]["mobile_os"] == "Android"
    assert document["questionnaire"]["mobile_os_version"] == "15 ou plus"
    assert document["inferred"] == ["support", "systeme_mobile", "version_systeme_mobile"]
    assert "Support : téléphone (déduit)." in document["summary_fr"]


def test_a_caller_without_android_15_is_asked_everything(caller):
    result = caller().call([*TO_STEP6, "9", *QUESTIONS, "2"])
    assert {"etape6_support", "etape6_systeme_mobile", "etape6_version_mobile"} <= {q.node for q in result.questions}


def test_star_and_zero_at_a_number_question_count_once_sent_with_hash_or_after_the_silence(app, caller):
    """A number question takes several keys: Twilio sends them on # (its only finishOnKey) or after
    its 12 s timeout (https://www.twilio.com/docs/voice/twiml/gather#finishonkey). `*` alone then
    says the question again in full and `0` alone reaches an agent, as at every other question."""
    call = caller()
    result = call.call([*TO_STEP6, "1"], hang_up_status=False)  # at the RPPS question
    question = result.questions[-1]
    assert (question.node, question.finish_on_key, question.num_digits) == ("etape6_rpps", "#", None)
    assert 'finishOnKey="#"' in result.documents[-1] and 'timeout="12"' in result.documents[-1]
    _, body = call.post("http://localhost/voice/answer?node=etape6_rpps&phase=ask", call.params(Digits="*"))
    assert "node=etape6_rpps" in body and "Tapez les 11 chiffres de votre RPPS, puis dièse." in body  # in full
    _, body = call.post("http://localhost/voice/answer?node=etape6_rpps&phase=ask", call.params(Digits="0"))
    assert "<Enqueue" in body and record_of(app, call)["transfer_reason"] == "caller_request"
