"""A caller who hangs up in the middle of `<Record>`: Twilio ends the recording and requests its
action with `Digits=hangup` (https://www.twilio.com/docs/voice/twiml/record, "action"), before or
after the call's status callback (no order is documented between them). Either way the message is
kept and goes to the agents' list of callbacks and messages, and no transfer is recorded, no
helpdesk document sent, no rating asked: nobody reached an agent. Signed webhooks, both backends."""

from __future__ import annotations

import pytest
import responses
from conftest import VALID_RPPS
from test_calls import QUESTIONNAIRE, TO_STEP6

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
