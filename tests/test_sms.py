"""Guides by SMS through Twilio's Messages API (faked with `responses`, the outside world)."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
import responses
from conftest import heard

from ivr.delivery.sms import can_receive

ACCOUNT = "AC" + "1" * 32
MESSAGES = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
SENT = "Le guide vient de vous être envoyé par SMS."


@pytest.fixture
def sms_app(make_app):
    return make_app(TWILIO_ACCOUNT_SID=ACCOUNT, IVR_SMS_FROM="+33700000000", TWILIO_WORKFLOW_SID="WW" + "a" * 32)


def twilio_accepts():
    responses.post(MESSAGES, status=201, json={"sid": "SM" + "2" * 32, "status": "queued", "account_sid": ACCOUNT})


@pytest.mark.parametrize(
    ("number", "mobile"),
    [("+33612345678", True), ("+33756123456", True), ("+262692123456", True), ("+33140000000", False),
     ("+33899000000", False), ("+447700900123", False), ("anonymous", False)],
)
def test_only_french_mobiles_receive(number, mobile):
    assert can_receive(number) is mobile


@responses.activate
def test_guide_sent_once_and_recorded(sms_app, caller):
    twilio_accepts()
    call = caller(target=sms_app, caller="+33612340037")
    result = call.call(["2", "2", "8", "8", "2", "0"], hang_up_status=False)
    assert result.said.count(SENT) == 1
    assert "Ce guide vous a déjà été envoyé par SMS." in result.said
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="300"))  # gone while with the agent
    call.post("http://localhost/voice/transfer-done", call.params(QueueResult="bridged", CallStatus="completed"))
    # This caller's messages (`responses` also catches what a thread an earlier test of this worker left sends).
    sent, rating = [c for c in responses.calls if parse_qs(c.request.body or "").get("To") == ["+33612340037"]]
    assert "notez votre appel" in parse_qs(rating.request.body)["Body"][0]  # an agent took the call, the caller was gone after
    form = parse_qs(sent.request.body)
    assert form["To"] == ["+33612340037"] and form["From"] == ["+33700000000"]
    assert form["Body"][0].startswith("e-CPS, tester votre e-CPS : depuis l'application e-CPS, lancez le test")
    assert "https://" in form["Body"][0]
    context = sms_app.extensions["ivr"].records.get(call.call_sid)["context"]
    assert [(item["guide"], item["status"]) for item in context["sms"]] == [("sms.tester_ecps", "sent"), ("sms.tester_ecps", "already")]
    assert "Guide(s) envoyé(s) par SMS : tester_ecps." in context["summary_fr"]


@responses.activate
def test_each_guide_once_per_call(sms_app, caller):
    twilio_accepts()
    caller(target=sms_app).call(["2", "2", "8", "2", "8", "1", "2", "8", "1"])  # step 3, step 4, step 5
    bodies = [parse_qs(call.request.body)["Body"][0] for call in responses.calls]
    assert len(bodies) == 3 and "déconnecter" in bodies[1] and "réinstaller" in bodies[2]


@responses.activate
def test_landline_is_told_no_sms(sms_app, caller):
    result = caller(target=sms_app, caller="+33140000000").call(["2", "2", "8", "1"])
    assert "Je ne peux pas envoyer de SMS à ce numéro : il faut appeler depuis un mobile français." in result.said
    assert len(responses.calls) == 0
    assert result.said[-1].startswith(heard("Votre e-CPS fonctionne."))  # the call went on


@responses.activate
def test_sending_failure_is_told_and_the_call_goes_on_then_retry_works(sms_app, caller):
    responses.post(MESSAGES, status=500, json={"code": 20500, "message": "Internal Server Error", "status": 500})
    twilio_accepts()
    result = caller(target=sms_app).call(["2", "2", "8", "8", "1"])
    assert "L'envoi du SMS n'a pas fonctionné, veuillez nous en excuser." in result.said
    assert result.said.count(SENT) == 1  # the second press tried again
    assert result.said[-1].startswith(heard("Votre e-CPS fonctionne."))


@responses.activate
def test_without_sms_configuration_says_so(make_app, caller):
    app = make_app(TWILIO_WORKFLOW_SID="WW" + "a" * 32)
    result = caller(target=app).call(["2", "2", "8", "1"])
    assert "L'envoi de SMS n'est pas possible pour le moment." in result.said
    assert len(responses.calls) == 0


@responses.activate
def test_guide_key_at_a_node_without_guide_is_a_wrong_key(sms_app, caller):
    result = caller(target=sms_app).call(["8", "2", "2", "1"])
    assert "La touche 8 ne correspond à aucun choix." in result.said
    assert len(responses.calls) == 0
    # the call goes on: up to date, not Android 15, « Bravo » at the e-CPS test
    assert "Le problème vient du service auquel vous voulez accéder" in result.said[-1]


@responses.activate
def test_with_the_database_down_a_guide_key_says_the_sms_failed_and_the_call_goes_on(sms_app, caller):
    sms_app.extensions["ivr"].db.execute("DROP TABLE sms")  # a real failure of the database under the claim
    result = caller(target=sms_app).call(["2", "2", "8", "1", "1", "."])
    assert "L'envoi du SMS n'a pas fonctionné, veuillez nous en excuser." in result.said
    assert result.end == "hangup" and len(responses.calls) == 0  # no send without a claim; the diagnostic went on to its end
