"""Twilio documents no order between a verb's action and the call's status callback, and may send
either again (the same I-Twilio-Idempotency-Token). For each way a call ends, its last requests are
sent in every order, and retried: the record, the helpdesk's documents, the agents' follow-up list
and the rating SMS are the same each time. Signed webhooks, SQLite and Redis + PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest
import responses
from conftest import ROOT, VALID_RPPS, WORKFLOW
from test_calls import QUESTIONNAIRE, TO_STEP6

from ivr.call.hours import PARIS

BASE = "http://localhost"
ACCOUNT = "AC" + "1" * 32
MESSAGES = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
HELPDESK = "https://helpdesk.example.fr/hooks/ivr"
RECORDING = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
SUNDAY_NIGHT = datetime(2026, 11, 29, 3, 0, tzinfo=PARIS).timestamp()


@dataclass(frozen=True)
class Ending:
    settings: dict  # the app's, beyond SMS and the helpdesk
    keys: tuple  # the caller's keys up to the verb whose action ends the call
    action: tuple  # (path, fields) of that verb's action, as Twilio sends it when the caller has hung up
    outcome: str
    transfer_result: str | None
    documents: int  # helpdesk documents (the transfer's)
    follow_up: tuple  # kinds in the agents' list
    texts: int  # rating SMS
    before: tuple = ()  # (path, fields) the caller's requests after the keys, before the last ones
    reason: str | None = "caller_request"  # why the caller was put through (0 pressed), if they were


QUEUE = {"TWILIO_WORKFLOW_SID": WORKFLOW}
DIAL = {"AGENT_NUMBER": "+33140000000"}
TO_MESSAGE = (*TO_STEP6, "1", VALID_RPPS, "1", *QUESTIONNAIRE[:-1], "1")
RECORDED = {"RecordingUrl": RECORDING, "RecordingDuration": "8", "Digits": "hangup"}
ENDINGS = {
    "queue, an agent took it": Ending(QUEUE, ("2", "2", "0"), ("/voice/transfer-done", {"QueueResult": "bridged"}), "transferred", "bridged",
                                      1, (), 1),
    "queue, Flex's agent": Ending(QUEUE, ("2", "2", "0"), ("/voice/transfer-done", {"QueueResult": "redirected"}), "transferred", "redirected",
                                  1, (), 1),
    "queue, caller gone": Ending(QUEUE, ("2", "2", "0"), ("/voice/transfer-done", {"QueueResult": "hangup"}), "transferred", "hangup", 1, (), 0),
    "dial, an agent took it": Ending(DIAL, ("2", "2", "0"), ("/voice/transfer-done", {"DialCallStatus": "completed"}), "transferred",
                                     "completed", 1, (), 1),
    "dial, nobody answered": Ending(DIAL, ("2", "2", "0"), ("/voice/transfer-done", {"DialCallStatus": "no-answer"}), "transferred",
                                    "no-answer", 1, (), 0),
    "dial, gone while it rang": Ending(DIAL, ("2", "2", "0"), ("/voice/transfer-done", {"DialCallStatus": "canceled"}), "transferred",
                                       "canceled", 1, (), 0),
    "step-6 message, hung up while recording": Ending(DIAL, TO_MESSAGE, ("/voice/answer?node=etape6_message&phase=ask", RECORDED), "voicemail",
                                                      None, 0, ("voicemail",), 0, reason=None),
    "queue, callback asked while waiting": Ending(QUEUE, ("2", "2", "0"), ("/voice/transfer-done", {"QueueResult": "leave"}), "callback", "leave",
                                                  1, ("callback",), 0, before=(("/voice/wait/choice", {"Digits": "1"}),)),
    "night message, hung up while recording": Ending({**QUEUE, "IVR_ALWAYS_OPEN": "", "IVR_HOURS": str(ROOT / "flows" / "horaires.yaml"),
                                                      "IVR_CLOCK": lambda: SUNDAY_NIGHT}, ("0", "2"),
                                                     ("/voice/answer?node=rappel_message&phase=ask", RECORDED), "voicemail", None, 0,
                                                     ("voicemail",), 0),
}
ORDERS = {"action, status": ("action", "status"), "status, action": ("status", "action"),
          "each twice": ("action", "status", "action", "status"), "status twice first": ("status", "status", "action", "action")}


@responses.activate
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name", ENDINGS)
def test_a_calls_end_is_the_same_in_every_order_of_its_last_requests(make_app, caller, name, order):
    responses.post(MESSAGES, status=201, json={"sid": "SM" + "2" * 32, "status": "queued", "account_sid": ACCOUNT})
    ending = ENDINGS[name]
    app = make_app(**ending.settings, TWILIO_ACCOUNT_SID=ACCOUNT, IVR_SMS_FROM="+33700000000", HANDOFF_WEBHOOK_URL=HELPDESK,
                   IVR_WEBHOOK_SECRET="s3cret", IVR_OUTBOX_THREAD="0")
    call = caller(target=app)
    call.call(list(ending.keys), hang_up_status=False)
    for path, fields in ending.before:
        call.post(BASE + path, call.params(**fields))
    client = app.test_client()
    for request in ORDERS[order]:
        path, fields = ending.action if request == "action" else ("/voice/status", {"CallDuration": "200"})
        url, params = BASE + path, call.params(**fields, CallStatus="completed")
        headers = {**call.headers(url, params), "I-Twilio-Idempotency-Token": f"{request}-once"}  # a retry carries the same token
        response = client.post(url, data=params, headers=headers)
        assert response.status_code == 200 and "<Gather" not in response.get_data(as_text=True)  # nothing offered to a caller gone
    ivr = app.extensions["ivr"]
    record = ivr.records.get(call.call_sid)
    assert (record["outcome"], record["transfer_result"], record["call_status"]) == (ending.outcome, ending.transfer_result, "completed")
    assert len([item for item in ivr.outbox.items() if item["call_sid"] == call.call_sid]) == ending.documents
    assert tuple((item["kind"], item["number"], item["message_url"]) for item in ivr.callbacks.list() if item["call_sid"] == call.call_sid) == tuple(
        (kind, call.caller, RECORDING if kind == "voicemail" else None) for kind in ending.follow_up)
    assert record["transfer_reason"] == ending.reason
    assert len([c for c in responses.calls if c.request.url == MESSAGES]) == ending.texts


@responses.activate
@pytest.mark.parametrize("first", ["the rating's silence", "the status"])
def test_a_caller_who_hangs_up_at_the_rating_question_is_not_asked_again_by_sms(make_app, caller, first):
    """Handed back after the agent, the caller hears the rating question and hangs up: Twilio may
    still post the question's fall-through (silence) before or after the status, or not at all."""
    responses.post(MESSAGES, status=201, json={"sid": "SM" + "2" * 32, "status": "queued", "account_sid": ACCOUNT})
    app = make_app(**QUEUE, TWILIO_ACCOUNT_SID=ACCOUNT, IVR_SMS_FROM="+33700000000")
    call = caller(target=app)
    call.call(["2", "2", "0"], hang_up_status=False)
    _, body = call.post(BASE + "/voice/transfer-done", call.params(QueueResult="bridged"))
    assert "node=note_conseiller" in body
    silence = (BASE + "/voice/answer?node=note_conseiller&phase=ask", {})
    status = (BASE + "/voice/status", {"CallStatus": "completed", "CallDuration": "300"})
    for url, fields in ((silence, status) if first == "the rating's silence" else (status, silence)):
        call.post(url, call.params(**fields))
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert (record["outcome"], record["transfer_result"], record["rating"]) == ("transferred", "bridged", None)
    assert [c for c in responses.calls if c.request.url == MESSAGES] == []  # asked on the line already
