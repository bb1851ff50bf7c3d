"""Whole calls through the real webhooks, with a caller that follows the TwiML like Twilio."""

from __future__ import annotations

import pytest
from conftest import VALID_RPPS, WORKFLOW

# Keys after the welcome, per path of the guide; "." is silence.
STEP2_ACTIONS = ["1"] * 5  # four settings, then "I retried the login"
STEP5_ACTIONS = ["1"] * 3  # delete, uninstall, activate
TO_STEP4 = ["2", "2", "2"]  # up to date, no Android 15 + browser, test KO
TO_STEP6 = [*TO_STEP4, "1", "2", *STEP5_ACTIONS, "2"]


@pytest.mark.parametrize(
    ("keys", "outcome", "step", "last_sentence"),
    [
        (["1", "1", "1", "."], "solved", 1, "Merci de votre appel, au revoir."),
        (["2", "1", *STEP2_ACTIONS, "1", "5"], "solved", 2, "Merci de votre appel, au revoir."),
        (["2", "1", *STEP2_ACTIONS, "2", "1", "1", "."], "service", 3, "Merci de votre appel, au revoir."),
        (["1", "1", "2", "2", "1", ".", "."], "service", 3, "Merci de votre appel, au revoir."),
        (["2", "2", "1", "1", "4"], "service", 3, "Merci de votre appel, au revoir."),
        ([*TO_STEP4, "1", "1", "."], "solved", 4, "Merci de votre appel, au revoir."),
        ([*TO_STEP4, "1", "2", *STEP5_ACTIONS, "1", "."], "solved", 5, "Merci de votre appel, au revoir."),
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
QUESTIONNAIRE = [".", "1", "1", "1", "2", "15", "1", "4", "#", "1", "11", "2", "2"]


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
    assert summary.startswith("Appel du ") and "depuis le 06 11 22 33 44." in summary  # in pairs (issue 35)
    for fragment in ["Transfert : diagnostic des étapes 1 à 5 sans solution.", "Test e-CPS : KO.", f"RPPS : {VALID_RPPS}.",
                     "Système mobile : Android 15.", "Navigateurs : Chrome, Safari.", "Ordinateur : Windows 11.", "IP publique à demander."]:
        assert fragment in summary
    # The answers after the identifier were given while waiting in the queue: the document says so.
    assert document["asked_in_queue"] == ["reproductible", "probleme_en_cours", "support", "systeme_mobile", "version_systeme_mobile",
                                          "navigateurs", "systeme_ordinateur", "version_systeme_ordinateur", "lps"]
    assert document["not_asked"] == []
    # The task carries the compact context known when the caller joined the queue, and the link to the whole document.
    summary = result.task["summary_fr"]
    assert f"RPPS : {VALID_RPPS}." in summary and "Navigateurs" not in summary
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
        "agent_url": document["agent_url"],  # the agent's page (Flex's CRM container frames it)
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


def test_card_number_and_voice_message_are_kept(make_app, caller):
    # With an agent's number (no queue) the questionnaire is asked before the transfer, a message too.
    # card (read back, confirmed), reproducible, now, tablet, iOS, version skipped, Edge, Linux, LPS, message
    app = make_app(AGENT_NUMBER="+33140000000")
    answers = ["2100012345", "1", "1", "1", "2", "1", ".", "3", "#", "3", "1", "1", "rec"]
    call = caller(target=app)
    result = call.call([*TO_STEP6, "1", VALID_RPPS, "1", *answers])
    assert result.end == "dial"
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


def test_unknown_browser_key_is_named(app, caller):
    call = caller()
    result = call.call([*TO_STEP6, "9", ".", "9", "2", "9", "9", "1", "7", "#", "9", "9", "2"])
    assert "La touche 7 ne correspond à aucun choix." in result.said
    assert result.end == "enqueue"
    assert "Navigateurs : Chrome." in context_of(app, call.call_sid)["summary_fr"]


def test_transfer_with_no_destination_offers_a_callback(make_app, caller, records):
    app = make_app()
    call = caller(target=app)
    result = call.call(["0", "1", "1"])  # an agent; none is configured: a callback, to this number
    assert "Les conseillers ne sont pas joignables par téléphone pour le moment." in result.said  # none was tried (issue 35)
    assert result.said[-1] == "C'est noté. Un conseiller vous rappellera dès que possible. Merci, au revoir."  # no answers to promise
    assert result.end == "hangup"
    assert app.extensions["ivr"].records.get(call.call_sid)["outcome"] == "callback"
    assert [c["call_sid"] for c in app.extensions["ivr"].callbacks.list()] == [call.call_sid]


@pytest.mark.parametrize("field", ["DialCallStatus", "QueueResult"])
@pytest.mark.parametrize("result", ["no-answer", "busy", "failed", "error"])
def test_unanswered_transfer_offers_a_callback_or_a_message(make_app, caller, field, result):
    app = make_app(AGENT_NUMBER="+33140000000")
    call = caller(target=app)
    call.call([*TO_STEP4, "0"], hang_up_status=False)
    status, body = call.post("http://localhost/voice/transfer-done", call.params(**{field: result}))
    assert status == 200
    assert "Aucun conseiller n'a pu prendre votre appel." in body and "Pour laisser un message, tapez 2." in body
    assert "dès l'ouverture" not in body
    assert app.extensions["ivr"].records.get(call.call_sid)["transfer_result"] == result
    # The caller leaves a message: it is listed for the agents, with what was said before.
    status, body = call.post("http://localhost/voice/answer?node=horaires_ferme&phase=ask", call.params(Digits="2"))
    assert "<Record" in body and "aucune information sur vos patients" in body
    status, body = call.post("http://localhost/voice/answer?node=rappel_message&phase=ask",
                             call.params(RecordingUrl="https://api.twilio.com/R1", RecordingDuration="9"))
    assert "Un conseiller l'écoutera, et vous rappellera dès que possible." in body and "<Hangup" in body
    (listed,) = app.extensions["ivr"].callbacks.list()
    assert listed["kind"] == "voicemail" and listed["message_url"] == "https://api.twilio.com/R1"


def test_at_the_after_hours_menu_three_silences_say_goodbye_not_the_menu_again(make_app, caller, records):
    app = make_app()  # no destination: the after-hours menu
    call = caller(target=app)
    result = call.call(["0", ".", ".", "."])
    assert result.end == "hangup"
    assert result.said[-2:] == ["Je n'ai pas eu de réponse.",
                                "Aucun conseiller n'est disponible pour le moment. Merci de rappeler un peu plus tard. Au revoir."]
    assert records.get(call.call_sid)["outcome"] == "unanswered"


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
