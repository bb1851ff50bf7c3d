"""Whole calls through the real webhooks, with a caller that follows the TwiML like Twilio."""

from __future__ import annotations

import pytest
from conftest import VALID_RPPS, VALID_SIRET, WORKFLOW

# Keys after the welcome, per path of the guide; "." is silence.
STEP2_ACTIONS = ["1"] * 5  # four settings, then "I retried the login"
STEP5_ACTIONS = ["1"] * 3  # delete, uninstall, activate
TO_STEP4 = ["2", "2", "2"]  # up to date, no Android 15 + browser, test KO
TO_STEP6 = [*TO_STEP4, "1", "2", *STEP5_ACTIONS, "2"]


@pytest.mark.parametrize(
    ("keys", "outcome", "step", "last_sentence"),
    [
        (["1", "1", "1"], "solved", 1, "Parfait, votre problème est résolu."),
        (["2", "1", *STEP2_ACTIONS, "1"], "solved", 2, "Parfait, votre problème est résolu."),
        (["2", "1", *STEP2_ACTIONS, "2", "1"], "service", 3, "Votre e-CPS fonctionne."),
        (["1", "1", "2", "2", "1"], "service", 3, "Votre e-CPS fonctionne."),
        (["2", "2", "1"], "service", 3, "Votre e-CPS fonctionne."),
        ([*TO_STEP4, "1", "1"], "solved", 4, "Parfait, votre problème est résolu."),
        ([*TO_STEP4, "1", "2", *STEP5_ACTIONS, "1"], "solved", 5, "Parfait, votre problème est résolu."),
    ],
    ids=["step1-update", "step2-battery", "step2-then-bravo", "update-not-solved-bravo", "bravo", "step4", "step5"],
)
def test_every_self_service_ending(caller, records, keys, outcome, step, last_sentence):
    call = caller()
    result = call.call(keys)
    assert result.end == "hangup"
    assert result.said[-1].startswith(last_sentence)
    record = records.get(call.call_sid)
    assert (record["outcome"], record["outcome_step"]) == (outcome, step)
    assert record["call_status"] == "completed"


def test_step2_reads_the_four_battery_settings_in_order(caller):
    result = caller().call(["2", "1", *STEP2_ACTIONS, "1"])
    text = " ".join(result.said)
    order = ["informations de l'application", "Utilisation de la batterie", "arrière-plan", "Sans restriction", "Non restreinte", "Relancez"]
    positions = [text.index(fragment) for fragment in order]
    assert positions == sorted(positions)


# The step-6 questionnaire after the identifier: no card (# alone), reproducible, happening now,
# phone, Android 15, Chrome + Safari, Windows 11, no LPS, no voice message.
QUESTIONNAIRE = [".", "1", "1", "1", "2", "15", "14", "1", "11", "2", "2"]


def context_of(app, call_sid):
    return app.extensions["ivr"].records.get(call_sid)["context"]


def test_step6_with_rpps_transfers_with_every_answer(app, caller):
    call = caller(caller="+33611223344")
    result = call.call([*TO_STEP6, "1", VALID_RPPS, "1", *QUESTIONNAIRE])
    assert result.end == "enqueue"
    assert result.enqueue["workflowSid"] == WORKFLOW
    assert "1 0 0, 1 2 3, 4 5 6, 7 3" in " ".join(result.said)  # the number read back in groups
    document = context_of(app, call.call_sid)
    assert document["schema"] == 1
    assert document["caller"] == "+33611223344"
    assert document["call_sid"] == call.call_sid
    assert document["reason"] == "diagnostic_complete"
    assert document["ecps_test"] == "KO"
    assert document["identifier"] == {"type": "RPPS", "value": VALID_RPPS, "matricule": None}
    assert document["questionnaire"] == {
        "identifier": {"type": "RPPS", "value": VALID_RPPS, "matricule": None},
        "card_number": None,
        "reproducible": "oui",
        "happening_now": "oui",
        "device": "téléphone",
        "mobile_os": "Android",
        "mobile_os_version": "15",
        "browsers": ["Chrome", "Safari"],
        "computer_os": "Windows",
        "computer_os_version": "11",
        "lps": "non",
        "voice_message_url": None,
    }
    steps_1_to_5 = [(p["step"], p["field"], p["answer"]) for p in document["path"] if p["step"] < 6]
    assert steps_1_to_5 == [
        (1, "application_a_jour", "oui"),
        (1, "android_15_et_navigateur", "non"),
        (3, "resultat_test_ecps", "KO"),
        (4, None, None),
        (4, "resolu_apres_deconnexion", "non"),
        (5, None, None),
        (5, None, None),
        (5, None, None),
        (5, "resolu_apres_reinstallation", "non"),
    ]
    assert document["started_at"].endswith("+00:00")
    assert document["public_ip"] == {"collected": False, "note": "non collectable par téléphone : à demander à l'appelant"}
    assert document["context_url"] == f"http://localhost/api/calls/{call.call_sid}/context"
    summary = document["summary_fr"]
    assert summary.startswith("Appel du ") and "depuis le +33611223344." in summary
    for fragment in ["Transfert : diagnostic des étapes 1 à 5 sans solution.", "Test e-CPS : KO.", f"RPPS : {VALID_RPPS}.",
                     "Système mobile : Android 15.", "Navigateurs : Chrome, Safari.", "Ordinateur : Windows 11.", "IP publique à demander."]:
        assert fragment in summary
    # The task carries the compact context and the link to the whole document.
    assert result.task == {
        "type": "ecps_support",
        "name": "+33611223344",
        "call_sid": call.call_sid,
        "caller": "+33611223344",
        "started_at": document["started_at"],
        "reason": "diagnostic_complete",
        "last_step": 6,
        "ecps_test": "KO",
        "identifier_type": "RPPS",
        "identifier": VALID_RPPS,
        "summary_fr": summary,
        "context_url": document["context_url"],
    }


def test_questionnaire_can_be_skipped_with_announced_keys(app, caller):
    skips = [".", "9", "2", "9", "9", ".", "9", "9", "2"]  # no card, don't know, not now, skip, skip, no browser, skip, LPS?, no message
    call = caller()
    result = call.call([*TO_STEP6, "9", *skips])
    assert result.end == "enqueue"
    questionnaire = context_of(app, call.call_sid)["questionnaire"]
    assert questionnaire["identifier"] is None
    assert questionnaire["reproducible"] == "ne sait pas"
    assert questionnaire["device"] == "non communiqué"
    assert questionnaire["browsers"] == []
    assert questionnaire["lps"] == "ne sait pas"
    assert questionnaire["mobile_os_version"] is None


def test_card_number_and_voice_message_are_kept(app, caller):
    # card (read back, confirmed), reproducible, now, tablet, iOS, version skipped, Edge, Linux, LPS, message
    answers = ["2100012345", "1", "1", "1", "2", "1", ".", "3", "3", "1", "1", "rec"]
    call = caller()
    result = call.call([*TO_STEP6, "1", VALID_RPPS, "1", *answers])
    assert result.end == "enqueue"
    assert result.questions[-1].record
    questionnaire = context_of(app, call.call_sid)["questionnaire"]
    assert questionnaire["card_number"] == "2100012345"
    assert questionnaire["device"] == "tablette" and questionnaire["mobile_os"] == "iOS"
    assert questionnaire["mobile_os_version"] is None  # "#" alone skipped it
    assert questionnaire["browsers"] == ["Edge"]
    assert questionnaire["computer_os"] == "Linux"
    assert questionnaire["voice_message_url"].startswith("https://api.twilio.com/")
    assert "Un message vocal a été laissé." in context_of(app, call.call_sid)["summary_fr"]


def test_silence_at_the_voice_message_skips_it(app, caller):
    call = caller()
    result = call.call([*TO_STEP6, "9", ".", "9", "2", "9", "9", ".", "9", "9", "1", "."])
    assert result.end == "enqueue"
    assert context_of(app, call.call_sid)["questionnaire"]["voice_message_url"] is None


def test_unknown_browser_key_is_named(caller):
    result = caller().call([*TO_STEP6, "9", ".", "9", "2", "9", "9", "17", "1", "9", "9", "2"])
    assert "La touche 7 ne correspond à aucun choix." in result.said
    assert result.end == "enqueue"


def test_zero_during_questionnaire_transfers_with_what_is_collected(app, caller):
    call = caller()
    result = call.call([*TO_STEP6, "1", VALID_RPPS, "1", ".", "1", "0"])
    assert result.task["reason"] == "caller_request"
    questionnaire = context_of(app, call.call_sid)["questionnaire"]
    assert questionnaire["reproducible"] == "oui" and questionnaire["happening_now"] is None


@pytest.mark.parametrize(
    ("type_key", "number", "kind"),
    [("2", VALID_SIRET, "SIRET"), ("3", "750000001", "FINESS")],
)
def test_step6_siret_or_finess_then_matricule(app, caller, type_key, number, kind):
    call = caller()
    result = call.call([*TO_STEP6, type_key, number, "1", "4242", "1", *QUESTIONNAIRE])
    assert result.end == "enqueue"
    assert context_of(app, call.call_sid)["identifier"] == {"type": kind, "value": number, "matricule": "4242"}


def test_national_rpps_form_is_accepted_and_normalised(caller):
    result = caller().call([*TO_STEP6, "1", "8" + VALID_RPPS, "1", *QUESTIONNAIRE])
    assert result.task["identifier"] == VALID_RPPS


@pytest.mark.parametrize(
    ("typed", "explanation"),
    [
        ("12345", "Ce numéro a 5 chiffres ; il en faut 11."),
        ("20012345673", "Un numéro RPPS commence par le chiffre 1."),
        ("10012345674", "Ce numéro n'est pas valide : un chiffre est sans doute erroné."),
    ],
)
def test_bad_rpps_is_explained_and_asked_again(caller, typed, explanation):
    result = caller().call([*TO_STEP6, "1", typed, VALID_RPPS, "1", *QUESTIONNAIRE])
    index = result.said.index(explanation)
    assert result.said[index + 1] == "Tapez les 11 chiffres de votre numéro RPPS, puis dièse."
    assert result.task["identifier"] == VALID_RPPS


def test_bad_siret_checksum_is_refused(caller):
    result = caller().call([*TO_STEP6, "2", "73282932000075", VALID_SIRET, "1", "1", "1", *QUESTIONNAIRE])
    assert "Ce numéro n'est pas valide : un chiffre est sans doute erroné." in result.said
    assert result.task["identifier"] == VALID_SIRET


def test_caller_can_correct_a_number_after_read_back(caller):
    other = "10000000009"
    result = caller().call([*TO_STEP6, "1", other, "2", VALID_RPPS, "1", *QUESTIONNAIRE])
    assert result.task["identifier"] == VALID_RPPS
    assert result.said.count("Tapez votre numéro RPPS : 11 chiffres, puis la touche dièse.") == 2


def test_three_bad_numbers_reach_an_agent(caller):
    result = caller().call([*TO_STEP6, "1", "1", "2", "3"])
    assert result.end == "enqueue"
    assert result.task["reason"] == "invalid_input"


def test_silence_is_asked_again_shorter_then_agent_after_three(caller, records):
    call = caller()
    result = call.call([".", ".", "."])
    assert result.end == "enqueue"
    assert result.task["reason"] == "no_input"
    short = "Si l'application e-CPS n'est pas à jour, tapez 1. Si elle est à jour, tapez 2."
    assert result.said.count("Je n'ai pas eu de réponse.") == 2
    assert result.said.count(short) == 2
    assert result.said[-1] == "Je n'ai pas eu de réponse. Je vous mets en relation avec un conseiller. Merci de patienter."
    assert records.get(call.call_sid)["transfer_reason"] == "no_input"


def test_wrong_key_is_named_and_question_asked_again(caller):
    result = caller().call(["5", "2", "2", "1"])
    assert "La touche 5 ne correspond à aucun choix." in result.said
    assert result.end == "hangup"  # went on normally after the correction


def test_three_wrong_keys_reach_an_agent(caller):
    result = caller().call(["5", "#", "7"])
    assert "La touche dièse ne correspond à aucun choix." in result.said
    assert result.end == "enqueue"
    assert result.task["reason"] == "invalid_input"


def test_failures_are_counted_per_question(caller):
    # Two failures at step 1, then two at the next question: nobody is transferred.
    result = caller().call(["5", ".", "2", ".", "5", "2", "1"])
    assert result.end == "hangup"


def test_star_repeats_the_whole_question_without_counting_as_a_failure(caller):
    result = caller().call(["*", "*", "*", "*", "2", "2", "1"])
    full = "Étape 1. Vérifiez sur votre téléphone si l'application e-CPS est à jour. Si elle n'est pas à jour, tapez 1. Si elle est à jour, tapez 2."
    assert result.said.count(full) == 5
    assert result.end == "hangup"


def test_first_menu_announces_star_and_zero(caller):
    result = caller().call([])
    first_question = " ".join(result.questions[0].said)
    assert "tapez étoile pour réécouter" in first_question
    assert "0 pour parler à un conseiller" in first_question


def test_zero_reaches_an_agent_at_once_with_context(caller):
    result = caller().call(["2", "2", "0"])
    assert result.end == "enqueue"
    assert result.task["reason"] == "caller_request"
    assert result.task["last_step"] == 3
    assert "Application à jour : oui. Android 15 ou plus avec navigateur : non." in result.task["summary_fr"]


def test_zero_while_keying_a_number_reaches_an_agent(caller):
    result = caller().call([*TO_STEP6, "1", "0"])
    assert result.task["reason"] == "caller_request"


def test_wait_steps_are_patient_with_silence(caller):
    # Ten silences while the caller deletes the e-CPS: reminders, no transfer.
    result = caller().call([*TO_STEP4, "1", "2", *(["."] * 10), "1", "1", "1", "1"])
    assert result.end == "hangup"
    reminder = "Prenez votre temps, je reste en ligne. Tapez 1 quand c'est fait, ou 0 pour parler à un conseiller."
    assert result.said.count(reminder) == 10
    assert "Je n'ai pas eu de réponse." not in result.said


def test_step3_wait_reminds_of_both_results(caller):
    result = caller().call(["2", "2", ".", "2", "1", "1"])
    assert "Prenez votre temps, je reste en ligne. Quand vous avez le résultat du test : « Bravo », tapez 1. « KO », tapez 2." in result.said


def test_caller_hanging_up_mid_call_is_recorded_with_the_node(caller, records):
    call = caller()
    call.call(["2", "2"])  # stops answering at step 3: hangs up
    record = records.get(call.call_sid)
    assert (record["outcome"], record["last_node"], record["last_step"]) == ("hung_up", "etape3_test", 3)


@pytest.mark.parametrize(
    ("setting", "value", "verb", "expected"),
    [
        ("AGENT_NUMBER", "+33140000000", "number", "+33140000000"),
        ("AGENT_SIP_URI", "sip:agents@pbx.example.fr", "sip", "sip:agents@pbx.example.fr?X-Context-Id=CA"),
    ],
)
def test_transfer_by_dial_without_a_workflow(make_app, caller, setting, value, verb, expected):
    app = make_app(**{setting: value})
    call = caller(target=app)
    result = call.call(["0"])
    assert result.end == "dial"
    assert result.dial[verb].startswith(expected)
    assert result.dial["action"] == "/voice/transfer-done"
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert record["context"]["reason"] == "caller_request"


def test_transfer_with_no_destination_apologises_and_hangs_up(make_app, caller):
    app = make_app()
    call = caller(target=app)
    result = call.call(["0"])
    assert result.end == "hangup"
    assert result.said[-1].startswith("Aucun conseiller n'est disponible pour le moment.")
    assert app.extensions["ivr"].records.get(call.call_sid)["transfer_result"] == "no_destination"


def test_unanswered_dial_says_so_and_is_recorded(make_app, caller):
    app = make_app(AGENT_NUMBER="+33140000000")
    call = caller(target=app)
    call.call(["0"], hang_up_status=False)
    status, body = call.post("http://localhost/voice/transfer-done", call.params(DialCallStatus="no-answer"))
    assert status == 200
    assert "Aucun conseiller n'est disponible" in body and "<Hangup />" in body
    assert app.extensions["ivr"].records.get(call.call_sid)["transfer_result"] == "no-answer"


def test_simulated_webhooks_carry_what_twilio_sends(app):
    """The benchmarks and tests play webhooks as heavy as Twilio's: every field of a voice request
    (both numbers under their two names, their geographic fields), what a <Gather> adds, and the
    status callback's own fields; all of them signed and accepted."""
    from conftest import TOKEN

    from ivr.supervisor.simulator import Caller, FlaskTransport

    sent: list[tuple[str, dict, int]] = []

    class Recording(FlaskTransport):
        def post(self, url, params, headers):
            status, body = super().post(url, params, headers)
            sent.append((url, params, status))
            return status, body

    Caller(Recording(app.test_client()), "http://localhost", TOKEN).call(["2", "1"])
    first, *middle, last = sent
    assert all(status == 200 for *_, status in sent)
    common = {"AccountSid", "ApiVersion", "CallSid", "CallStatus", "Direction", "From", "To", "Caller", "Called",
              "FromCity", "FromState", "FromZip", "FromCountry", "ToCountry", "CalledCountry", "CallerCountry"}
    assert common <= first[1].keys() and first[1]["CallStatus"] == "ringing" and first[1]["FromCountry"] == "FR"
    gathered = [params for url, params, _ in middle if "Digits" in params]
    assert gathered and all(params["msg"] == "Gather End" and params["FinishedOnKey"] == "" for params in gathered)
    assert last[0].endswith("/voice/status") and last[1]["CallStatus"] == "completed"
    assert {"CallDuration", "Duration", "Timestamp", "CallbackSource", "SequenceNumber"} <= last[1].keys()
