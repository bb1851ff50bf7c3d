"""Every result Twilio documents for a transfer, mapped on purpose (ivr/call/transfer_results.py),
over signed webhooks on both backends: what the caller hears next, what the record keeps, and how
the figures count it. Flex's `redirected` is an agent who took the call. Twilio documents no order
between a verb's action and the status callback: the transfer's result is kept either way."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

import pytest
import responses
from click.testing import CliRunner
from conftest import WORKFLOW
from test_console import VIEWER, login

from ivr.call import transfer_results
from ivr.call.hours import PARIS
from ivr.cli import main
from ivr.storage.users import Users
from ivr.supervisor.simulator import said_text

BASE = "http://localhost"
RATING = "Votre échange avec le conseiller est terminé. Pour le noter, tapez une touche de 1 à 5"
OFFER = "Aucun conseiller n'a pu prendre votre appel."

# https://www.twilio.com/docs/voice/twiml/enqueue ("action": QueueResult values) and
# https://www.twilio.com/docs/voice/twiml/dial ("action": DialCallStatus values).
QUEUE_RESULTS = ["bridged", "bridging-in-process", "redirected", "redirected-from-bridged", "hangup", "leave", "queue-full", "error",
                 "system-error"]
DIAL_STATUSES = ["completed", "answered", "busy", "no-answer", "failed", "canceled"]


def test_every_documented_value_is_in_the_table():
    assert set(QUEUE_RESULTS + DIAL_STATUSES) <= set(transfer_results.RESULTS)


def said(body: str) -> list[str]:
    return [said_text(say) for say in ET.fromstring(body).iter("Say")]


def put_through(app, caller):
    """A caller who pressed 0 and is in the queue (or ringing the agent): the transfer's result is to come."""
    call = caller(target=app)
    call.call(["0"], hang_up_status=False)
    return call


def answer_to(call, field: str, value: str, **more) -> str:
    status, body = call.post(BASE + "/voice/transfer-done", call.params(**{field: value}, **more))
    assert status == 200
    return body


# What the caller gets after each result, written out (not read from the table under test):
# "rating" (the agent hung up, Twilio hands the caller back), "goodbye" (nothing offered: an agent
# has the call, or the caller is gone), "offer" (nobody took it: callback or message).
EXPECTED = {
    ("QueueResult", "bridged"): ("rating", True), ("QueueResult", "bridging-in-process"): ("goodbye", False),
    ("QueueResult", "redirected"): ("goodbye", True), ("QueueResult", "redirected-from-bridged"): ("goodbye", True),
    ("QueueResult", "hangup"): ("goodbye", False), ("QueueResult", "leave"): ("offer", False),
    ("QueueResult", "queue-full"): ("offer", False), ("QueueResult", "error"): ("offer", False),
    ("QueueResult", "system-error"): ("offer", False),
    ("DialCallStatus", "completed"): ("rating", True), ("DialCallStatus", "answered"): ("rating", True),
    ("DialCallStatus", "busy"): ("offer", False), ("DialCallStatus", "no-answer"): ("offer", False),
    ("DialCallStatus", "failed"): ("offer", False), ("DialCallStatus", "canceled"): ("offer", False),
}


def test_every_documented_value_has_its_expectation():
    assert {value for _, value in EXPECTED} == set(QUEUE_RESULTS + DIAL_STATUSES)


@pytest.mark.parametrize("field, result", sorted(EXPECTED))
def test_each_result_gets_the_answer_its_meaning_calls_for(make_app, caller, field, result):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW) if field == "QueueResult" else make_app(AGENT_NUMBER="+33140000000")
    call = put_through(app, caller)
    body = answer_to(call, field, result)
    answer, answered = EXPECTED[(field, result)]
    if answer == "rating":
        assert said(body)[0].startswith(RATING) and "node=note_conseiller" in body
    elif answer == "goodbye":
        assert body == '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>'
    else:
        assert said(body)[0] == OFFER and "<Gather" in body
    assert transfer_results.of(result).agent is answered  # what the figures count as taken by an agent
    assert app.extensions["ivr"].records.get(call.call_sid)["transfer_result"] == result


def test_a_result_twilio_does_not_document_is_read_as_nobody_took_the_call(make_app, caller, caplog):
    call = put_through(make_app(TWILIO_WORKFLOW_SID=WORKFLOW), caller)
    body = answer_to(call, "QueueResult", "teleported")
    assert said(body)[0] == OFFER
    assert "transfer result 'teleported' is not one Twilio documents" in caplog.text


def test_a_flex_agent_taking_the_call_counts_as_answered_in_the_report_and_the_console(make_app, backend, caller, files, tmp_path):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_FLOW=str(files / "flows" / "ecps.yaml"), IVR_PROMPTS=str(files / "prompts"))
    call = put_through(app, caller)
    answer_to(call, "QueueResult", "redirected", QueueTime="12")  # the agent accepted the Task: the call is in Flex's conference
    call.post(BASE + "/voice/status", call.params(CallStatus="completed", CallDuration="300"))
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert (record["outcome"], record["transfer_result"]) == ("transferred", "redirected")
    day = datetime.now(PARIS).strftime("%Y-%m-%d")  # the report's days are Paris days
    report = CliRunner().invoke(main, ["report", "--from", day, "--to", day, "--data-dir", str(tmp_path / "data")],
                                env={"DATABASE_URL": backend.get("DATABASE_URL", "")})
    assert "  pris par un conseiller : 1 sur 1 (pris par un conseiller (Flex) : 1)" in report.output, report.output
    Users(app.extensions["ivr"].db).add(*VIEWER, "viewer")
    page = login(app, VIEWER).get("/console/").get_data(as_text=True)
    assert "Pris par un conseiller : 1 sur 1" in page and "pris par un conseiller (Flex)" in page


@pytest.mark.parametrize("field, result", [("QueueResult", "bridged"), ("QueueResult", "queue-full"), ("DialCallStatus", "no-answer")])
def test_the_transfers_result_is_kept_when_the_status_callback_came_first(make_app, caller, field, result):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW) if field == "QueueResult" else make_app(AGENT_NUMBER="+33140000000")
    call = put_through(app, caller)
    call.post(BASE + "/voice/status", call.params(CallStatus="completed", CallDuration="90"))
    answer_to(call, field, result, CallStatus="completed")
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert (record["transfer_result"], record["call_status"], record["outcome"]) == (result, "completed", "transferred")


ACCOUNT = "AC" + "1" * 32
MESSAGES = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"


@responses.activate
def test_a_status_that_comes_while_the_transfers_result_is_handled_still_gets_one_rating_sms(make_app, caller):
    """The caller hangs up as the agent does: Twilio sends the status callback and the action at the
    same moment. The test's clock lets the whole status callback in after the action read the
    session and before it writes the result (its first reading of the clock)."""
    responses.post(MESSAGES, status=201, json={"sid": "SM" + "2" * 32, "status": "queued", "account_sid": ACCOUNT})
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, TWILIO_ACCOUNT_SID=ACCOUNT, IVR_SMS_FROM="+33700000000")
    call = put_through(app, caller)
    ivr, client, real_clock = app.extensions["ivr"], app.test_client(), app.extensions["ivr"].clock

    def clock() -> float:
        ivr.clock = real_clock
        assert ivr.records.get(call.call_sid)["transfer_result"] is None  # the race: the action has not written its result yet
        url, params = BASE + "/voice/status", call.params(CallStatus="completed", CallDuration="300")
        assert client.post(url, data=params, headers=call.headers(url, params)).status_code == 200
        assert ivr.records.get(call.call_sid)["call_status"] == "completed"  # the status is written before the result
        return real_clock()

    ivr.clock = clock
    answer_to(call, "QueueResult", "bridged", CallStatus="completed")
    assert len([c for c in responses.calls if c.request.url == MESSAGES]) == 1
