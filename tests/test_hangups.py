"""A caller who hangs up in the middle of `<Record>`: Twilio ends the recording and requests its
action with `Digits=hangup` (https://www.twilio.com/docs/voice/twiml/record, "action"), before or
after the call's status callback (no order is documented between them). Either way the message is
kept and goes to the agents' list of callbacks and messages, and no transfer is recorded, no
helpdesk document sent, no rating asked: nobody reached an agent. Signed webhooks, both backends."""

from __future__ import annotations

from datetime import datetime

import pytest
import responses
from conftest import ROOT, VALID_RPPS
from test_calls import QUESTIONNAIRE, TO_STEP6

from ivr.call.hours import PARIS

BASE = "http://localhost"
MESSAGE = BASE + "/voice/answer?node=etape6_message&phase=ask"
RECORDING = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
HELPDESK = "https://helpdesk.example.fr/hooks/ivr"


@pytest.fixture
def app(make_app):
    """Transfers by <Dial> (no queue): step 6 is asked on the line, the message last, before the transfer."""
    return make_app(AGENT_NUMBER="+33140000000", HANDOFF_WEBHOOK_URL=HELPDESK, IVR_WEBHOOK_SECRET="s3cret", IVR_OUTBOX_THREAD="0",
                    TWILIO_ACCOUNT_SID="AC" + "1" * 32, IVR_SMS_FROM="+33700000000")


def at_the_message(app, caller):
    call = caller(target=app)
    result = call.call([*TO_STEP6, "1", VALID_RPPS, "1", *QUESTIONNAIRE[:-1], "1"], hang_up_status=False)
    assert result.questions[-1].node == "etape6_message" and result.questions[-1].record
    return call


def status(call):
    call.post(BASE + "/voice/status", call.params(CallStatus="completed", CallDuration="240"))


def hung_up_recording(call, duration: str = "7") -> str:
    _, body = call.post(MESSAGE, call.params(RecordingUrl=RECORDING, RecordingDuration=duration, Digits="hangup", CallStatus="completed"))
    return body


def assert_message_kept_and_no_transfer(app, call):
    ivr = app.extensions["ivr"]
    record = ivr.records.get(call.call_sid)
    assert (record["outcome"], record["transfer_reason"], record["transfer_result"]) == ("voicemail", None, None)
    follow_up = [item for item in ivr.callbacks.list() if item["call_sid"] == call.call_sid]
    assert [(item["kind"], item["message_url"], item["number"]) for item in follow_up] == [("voicemail", RECORDING, call.caller)]
    assert ivr.outbox.items() == []  # no helpdesk document: nobody was put through


@responses.activate
@pytest.mark.parametrize("order", ["action first", "status first"])
def test_a_caller_who_hangs_up_during_the_message_leaves_it_and_is_not_transferred(app, caller, order):
    call = at_the_message(app, caller)
    if order == "status first":
        status(call)
        assert hung_up_recording(call) == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    else:
        body = hung_up_recording(call)
        assert "<Dial" not in body and "<Enqueue" not in body
        status(call)
    assert_message_kept_and_no_transfer(app, call)
    assert len(responses.calls) == 0  # no rating SMS either


@pytest.mark.parametrize("order", ["action first", "status first"])
def test_hanging_up_at_the_message_without_a_word_is_a_call_hung_up(app, caller, order):
    call = at_the_message(app, caller)
    if order == "status first":
        status(call)
        hung_up_recording(call, duration="0")
    else:
        hung_up_recording(call, duration="0")
        status(call)
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert (record["outcome"], record["transfer_reason"]) == ("hung_up", None)
    assert [item for item in app.extensions["ivr"].callbacks.list() if item["call_sid"] == call.call_sid] == []


def test_the_action_sent_again_by_twilio_keeps_one_message(app, caller):
    call = at_the_message(app, caller)
    status(call)
    hung_up_recording(call)
    hung_up_recording(call)
    assert len([item for item in app.extensions["ivr"].callbacks.list() if item["call_sid"] == call.call_sid]) == 1


@pytest.mark.parametrize("order", [["action", "status"], ["status", "action"], ["status", "action", "action", "status"]])
def test_a_callback_asked_in_the_queue_is_kept_once_whatever_the_order_of_leave_and_status(make_app, caller, order):
    """Key 1 in the wait: <Leave>; Twilio then requests the <Enqueue> action (QueueResult=leave) and,
    if the caller hangs up at once, the status callback, in either order (or twice)."""
    app = make_app(TWILIO_WORKFLOW_SID="WW" + "a" * 32)
    call = caller(target=app)
    call.call(["2", "2", "0"], hang_up_status=False)
    _, body = call.post(BASE + "/voice/wait/choice", call.params(Digits="1"))
    assert "<Leave />" in body
    client = app.test_client()
    for request in order:
        path, fields = ((("/voice/transfer-done", {"QueueResult": "leave"})) if request == "action"
                        else ("/voice/status", {"CallStatus": "completed", "CallDuration": "95"}))
        url, params = BASE + path, call.params(**fields)
        assert client.post(url, data=params, headers={**call.headers(url, params), "I-Twilio-Idempotency-Token": request}).status_code == 200
    requests = [item for item in app.extensions["ivr"].callbacks.list() if item["call_sid"] == call.call_sid]
    assert [(item["kind"], item["number"]) for item in requests] == [("callback", call.caller)]
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert (record["outcome"], record["transfer_result"]) == ("callback", "leave")


@pytest.mark.parametrize("order", ["action first", "status first"])
def test_a_message_left_at_night_by_a_caller_who_hangs_up_while_recording_is_kept(make_app, caller, order):
    """At night « 0 » leads to the after-hours part; « 2 » records a message; the caller hangs up to
    end it. Whatever the order of the recording's action and the status, the message is in the list."""
    sunday_night = datetime(2026, 11, 29, 3, 0, tzinfo=PARIS).timestamp()
    app = make_app(IVR_ALWAYS_OPEN="", IVR_HOURS=str(ROOT / "flows" / "horaires.yaml"), IVR_CLOCK=lambda: sunday_night,
                   TWILIO_WORKFLOW_SID="WW" + "a" * 32)
    call = caller(target=app)
    result = call.call(["0", "2"], hang_up_status=False)
    assert result.questions[-1].node == "rappel_message" and result.questions[-1].record
    action = BASE + "/voice/answer?node=rappel_message&phase=ask"
    requests = [lambda: call.post(action, call.params(RecordingUrl=RECORDING, RecordingDuration="11", Digits="hangup")), lambda: status(call)]
    for send in requests if order == "action first" else reversed(requests):
        send()
    follow_up = [item for item in app.extensions["ivr"].callbacks.list() if item["call_sid"] == call.call_sid]
    assert [(item["kind"], item["message_url"]) for item in follow_up] == [("voicemail", RECORDING)]
    assert app.extensions["ivr"].records.get(call.call_sid)["outcome"] == "voicemail"


@pytest.mark.parametrize("order", [["action", "status"], ["status", "action"]])
@pytest.mark.parametrize("field, result", [("DialCallStatus", "no-answer"), ("DialCallStatus", "canceled"), ("QueueResult", "hangup")])
def test_a_caller_who_hangs_up_while_put_through_stays_a_transfer_nobody_took(make_app, caller, order, field, result):
    """Gone while the agent's phone rang (or while queued): nothing is offered to nobody, and the
    record says what happened, in either order of the action and the status."""
    app = make_app(AGENT_NUMBER="+33140000000") if field == "DialCallStatus" else make_app(TWILIO_WORKFLOW_SID="WW" + "a" * 32)
    call = caller(target=app)
    call.call(["2", "2", "0"], hang_up_status=False)
    client = app.test_client()
    for request in order:
        path, fields = (("/voice/transfer-done", {field: result, "CallStatus": "completed"}) if request == "action"
                        else ("/voice/status", {"CallStatus": "completed", "CallDuration": "40"}))
        url, params = BASE + path, call.params(**fields)
        response = client.post(url, data=params, headers=call.headers(url, params))
        assert response.status_code == 200 and "<Gather" not in response.get_data(as_text=True)
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert (record["outcome"], record["transfer_reason"], record["transfer_result"]) == ("transferred", "caller_request", result)
    assert [item for item in app.extensions["ivr"].callbacks.list() if item["call_sid"] == call.call_sid] == []
