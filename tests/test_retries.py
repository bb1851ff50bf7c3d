"""Twilio sends a request again (the same I-Twilio-Idempotency-Token) and the status callback can
come while another webhook of the call is handled: the retry gets the same answer and nothing is
counted twice; a call that ended stays ended. Over signed webhooks, on both backends."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import pytest
from conftest import WORKFLOW
from test_calls import TO_STEP6

BASE = "http://localhost"


def sent(app, call, path: str, token: str, **fields) -> str:
    """One signed webhook with Twilio's idempotency token `token` (the same on a retry)."""
    url, params = BASE + path, call.params(**fields)
    response = app.test_client().post(url, data=params, headers={**call.headers(url, params), "I-Twilio-Idempotency-Token": token})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def said(body: str) -> list[str]:
    return [element.text or "" for element in ET.fromstring(body).iter("Say")]


def events(app, call_sid: str) -> list[str]:
    return [entry["event"] for entry in app.extensions["ivr"].store.load(call_sid).history]


def test_an_answer_in_the_queue_sent_again_gets_the_same_read_back_and_the_questions_go_on(app, caller):
    call = caller()
    call.call([*TO_STEP6, "9"], hang_up_status=False)  # in the queue: the first turn of the wait asks for the card number
    store = app.extensions["ivr"].store
    first = sent(app, call, "/voice/wait/answer?node=etape6_carte&phase=ask", "T1", Digits="2100012345")
    again = sent(app, call, "/voice/wait/answer?node=etape6_carte&phase=ask", "T1", Digits="2100012345")
    assert again == first and "Vous avez tapé" in first
    session = store.load(call.call_sid)
    assert (session.queue_next, session.queue_phase) == ("etape6_carte", "confirm")
    assert events(app, call.call_sid).count("queued_answer") == 1


def test_a_late_answer_in_the_queue_changes_nothing(app, caller):
    """An answer to a question no longer asked (late, or sent again with another token) does not end
    the questions: back to the wait, which goes on where it was."""
    call = caller()
    call.call([*TO_STEP6, "9"], hang_up_status=False)
    sent(app, call, "/voice/wait/answer?node=etape6_carte&phase=ask", "T1", Digits="2100012345")
    late = sent(app, call, "/voice/wait/answer?node=etape6_carte&phase=ask", "T2", Digits="2100012345")
    assert said(late) == []
    session = app.extensions["ivr"].store.load(call.call_sid)
    assert (session.queue_next, session.queue_phase) == ("etape6_carte", "confirm")
    assert "queued_answer" in events(app, call.call_sid) and session.recorded < len(session.history)  # the questions go on


def test_a_turn_of_the_wait_sent_again_is_not_a_silence(app, caller):
    call = caller()
    call.call([*TO_STEP6, "9"], hang_up_status=False)
    first = sent(app, call, "/voice/wait", "W1", QueuePosition="1", QueueTime="5")
    again = sent(app, call, "/voice/wait", "W1", QueuePosition="1", QueueTime="5")
    assert again == first and "Je n'ai pas eu de réponse" not in " ".join(said(again))
    assert app.extensions["ivr"].store.load(call.call_sid).failures == 0


def test_a_transfer_result_sent_again_gets_the_same_answer(make_app, caller):
    app = make_app(AGENT_NUMBER="+33140000000")
    call = caller(target=app)
    call.call(["0"], hang_up_status=False)
    first = sent(app, call, "/voice/transfer-done", "D1", DialCallStatus="no-answer")
    again = sent(app, call, "/voice/transfer-done", "D1", DialCallStatus="no-answer")
    assert again == first and "<Gather" in first  # the callback or message offer, both times
    assert events(app, call.call_sid).count("unanswered") == 1


def test_the_rating_question_sent_again_is_asked_again(make_app, caller):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW)
    call = caller(target=app)
    call.call(["0"], hang_up_status=False)
    first = sent(app, call, "/voice/transfer-done", "R1", QueueResult="bridged")
    again = sent(app, call, "/voice/transfer-done", "R1", QueueResult="bridged")
    assert again == first and "<Gather" in first
    assert events(app, call.call_sid).count("rating_offer") == 1


@pytest.mark.logs_errors("fallback: Twilio error 11200")
def test_after_the_fallback_an_unanswered_transfer_offers_the_after_hours_part_and_the_record_keeps_the_transfer(make_app, caller):
    """Twilio could not use our answer (/voice/fallback): the caller was put through without the
    session. Nobody answers: the callback or message offer, as after any transfer; the record says
    the call was put through for a technical error."""
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW)
    call = caller(target=app)
    call.call(["2", "2"], hang_up_status=False)  # mid-diagnostic
    _, fallback = call.post(BASE + "/voice/fallback", call.params(ErrorCode="11200"))
    assert "<Enqueue" in fallback
    _, done = call.post(BASE + "/voice/transfer-done", call.params(QueueResult="error"))
    assert "<Gather" in done and "<Hangup" not in done
    call.post(BASE + "/voice/status", call.params(CallStatus="completed", CallDuration="60"))
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert (record["transfer_reason"], record["transfer_result"]) == ("technical_error", "error")


def _status_while_handling(app, call, at_reading: int):
    """The test's clock lets the call's status callback in while the next webhook is being handled,
    at its `at_reading`-th reading of the clock: an answer reads it first for its event (before the
    session is loaded), then once more when it saves (after the load): the second is the race."""
    ivr = app.extensions["ivr"]
    real_clock, client, readings = ivr.clock, app.test_client(), []

    def clock() -> float:
        readings.append(1)
        if len(readings) == at_reading:
            ivr.clock = real_clock
            url, params = BASE + "/voice/status", call.params(CallStatus="completed", CallDuration="1")
            assert client.post(url, data=params, headers=call.headers(url, params)).status_code == 200
        return real_clock()

    ivr.clock = clock


def test_a_status_during_the_first_webhook_ends_the_call_for_good(app, caller):
    call = caller()
    _status_while_handling(app, call, at_reading=1)
    _, first = call.post(BASE + "/voice", call.params(CallStatus="ringing"))
    assert "<Gather" not in first
    store = app.extensions["ivr"].store
    assert store.load(call.call_sid) is None
    _, late = call.post(BASE + "/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    assert "<Gather" not in late and store.load(call.call_sid) is None


@pytest.mark.parametrize("at_reading, raced", [(1, False), (2, True)])
def test_a_status_during_an_answer_is_no_error(app, caller, caplog, at_reading, raced):
    """Whether the status comes before the answer loads the session or after (its save then finds
    the call over and replays on nothing), the answer is empty and nothing is logged as an error."""
    call = caller()
    call.post(BASE + "/voice", call.params())
    _status_while_handling(app, call, at_reading)
    with caplog.at_level(logging.INFO):
        _, body = call.post(BASE + "/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    assert body == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert ("another request of this call saved first" in caplog.text) is raced  # the race was hit, or not, as the test says
    assert "a webhook after the call ended: nothing to do" in caplog.text
    assert app.extensions["ivr"].records.get(call.call_sid)["call_status"] == "completed"
