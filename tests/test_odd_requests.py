"""Requests Twilio (or anyone) may send that no normal call does: retries, late webhooks, missing or
odd fields. Each gets a clear answer, counts once, and changes nothing it should not."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import pytest
from conftest import TOKEN, heard
from twilio.request_validator import RequestValidator

from ivr.call.identifiers import check
from ivr.supervisor.simulator import said_text

MENU = "http://localhost/voice/answer?node=etape1_a_jour&phase=ask"


def test_a_request_without_callsid_is_refused_and_leaves_nothing(app, client):
    params = {"From": "+33612345678", "Digits": "1"}
    signature = RequestValidator(TOKEN).compute_signature("http://localhost/voice", params)
    response = client.post("/voice", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 400
    assert app.extensions["ivr"].records.get("") is None and app.extensions["ivr"].store.load("") is None


def _first_answer(caller, **params) -> str:
    call = caller()
    call.post("http://localhost/voice", call.params())
    status, body = call.post(MENU, call.params(**params))
    assert status == 200
    return body


@pytest.mark.parametrize("digits, same_as", [("\x00", {}), ("\ufffd", {}), ("٣", {}), ("1\x00", {"Digits": "1"}), ("²1", {"Digits": "1"})])
def test_what_is_not_a_keypad_key_is_ignored_and_the_caller_gets_the_answer_to_the_keys_pressed(caller, digits, same_as):
    """Only keypad keys count: with none, the answer to silence (the question again); with one, its answer."""
    assert _first_answer(caller, Digits=digits) == _first_answer(caller, **same_as)


def test_too_many_keys_are_named_and_the_question_asked_again(caller):
    body = _first_answer(caller, Digits="5" * 20000)
    said = [said_text(say) for say in ET.fromstring(body).iter("Say")]
    assert said == [f"La touche {'5' * 32} ne correspond à aucun choix.", said[1]]
    assert said[1] == heard("Si l'application e-CPS n'est pas à jour, tapez 1. Si elle est à jour, tapez 2.")
    assert "node=etape1_a_jour" in body


def test_a_recording_posted_to_a_menu_asks_the_question_again(app, caller):
    call = caller()
    call.post("http://localhost/voice", call.params())
    status, body = call.post(MENU, call.params(RecordingUrl="https://api.twilio.com/R1", RecordingDuration="3"))
    assert status == 200 and "node=etape1_a_jour" in body
    status, body = call.post(MENU, call.params(Digits="0"))  # and the context an agent gets is still built
    assert status == 200 and "<Enqueue" in body
    assert app.extensions["ivr"].records.get(call.call_sid)["context"]["answers"] == {}


@pytest.mark.parametrize("field, value", [("QueuePosition", "²"), ("QueuePosition", "٣"), ("QueuePosition", "-1"), ("QueueTime", "1e9"),
                                          ("AvgQueueTime", "-60"), ("AvgQueueTime", "١٢٠")])
def test_twilios_numeric_fields_take_ascii_digits_only(caller, field, value):
    """A value that is not a number of ASCII digits is as if Twilio had not sent it: the hold
    message alone (no position, no average wait, no callback offer), the caller stays in line."""
    def hold(**params):
        call = caller()
        status, body = call.post("http://localhost/voice/wait", call.params(**params))
        assert status == 200
        return body

    body = hold(**{field: value})
    assert body == hold()
    hold_message = "Merci de patienter."
    assert [said_text(say) for say in ET.fromstring(body).iter("Say")] == [hold_message]
    assert "<Enqueue" not in body and "<Gather" not in body


@pytest.mark.parametrize("kind, digits", [("finess", "١٢٣٤٥٦٧٨٩"), ("matricule", "١٢٣"), ("carte", "۱۲۳۴۵"), ("rpps", "¹0012345673")])
def test_identifiers_take_ascii_digits_only(kind, digits):
    assert check(kind, digits).problem == "not_digits"


def test_a_retried_webhook_gets_the_same_answer_and_counts_once(app, caller):
    call = caller()
    call.post("http://localhost/voice", call.params())
    url, params = MENU, call.params(Digits="5")
    headers = {**call.headers(url, params), "I-Twilio-Idempotency-Token": "tok-1"}
    client = app.test_client()
    first = client.post(url, data=params, headers=headers).get_data(as_text=True)
    again = client.post(url, data=params, headers=headers).get_data(as_text=True)
    assert first == again and "La touche 5 ne correspond à aucun choix." in first
    session = app.extensions["ivr"].store.load(call.call_sid)
    assert session.failures == 1 and [e["event"] for e in session.history].count("invalid") == 1
    other = {**call.headers(url, params), "I-Twilio-Idempotency-Token": "tok-2"}  # a new press of 5: counted
    client.post(url, data=params, headers=other)
    assert app.extensions["ivr"].store.load(call.call_sid).failures == 2


def test_a_webhook_after_the_call_ended_changes_nothing(app, caller):
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post(MENU, call.params(Digits="2"))
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="30"))
    status, body = call.post("http://localhost/voice/answer?node=etape1_android&phase=ask", call.params(Digits="0"))
    assert status == 200 and "<Enqueue" not in body and "<Dial" not in body
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert (record["outcome"], record["transfer_reason"], record["context"]) == ("hung_up", None, None)
    assert app.extensions["ivr"].store.load(call.call_sid) is None


def test_a_first_webhook_sent_again_after_the_call_ended_starts_nothing(app, caller):
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="5"))
    records = app.extensions["ivr"].records
    timeline = [e["event"] for e in records.events(call.call_sid)]
    status, body = call.post("http://localhost/voice", call.params())
    assert status == 200 and "<Gather" not in body
    assert app.extensions["ivr"].store.load(call.call_sid) is None
    assert [e["event"] for e in records.events(call.call_sid)] == timeline


def test_the_status_callback_sent_again_records_nothing_twice(app, caller):
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post(MENU, call.params(Digits="2"))
    for _ in range(2):
        call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="5"))
    assert [e["event"] for e in app.extensions["ivr"].records.events(call.call_sid)] == ["enter", "enter", "answer", "enter"]


@pytest.mark.parametrize("number, kept", [("+33612345678", "+33612345678"), ("anonymous", ""), ("client:alice", ""),
                                          ("Dites au conseiller de lire le code 1234", "")])
def test_only_a_phone_number_from_from_is_ever_read_back_or_whispered(app, caller, number, kept):
    call = caller(caller=number)
    call.post("http://localhost/voice", call.params())
    call.post(MENU, call.params(Digits="0"))
    assert app.extensions["ivr"].records.get(call.call_sid)["caller"] == kept


def test_a_late_status_or_transfer_result_changes_nothing(app, caller):
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="42"))
    call.post("http://localhost/voice/status", call.params(CallStatus="failed", CallDuration="999"))
    call.post("http://localhost/voice/transfer-done", call.params(DialCallStatus="busy"))
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert (record["call_status"], record["duration_s"], record["transfer_result"]) == ("completed", 42, None)


def test_control_characters_are_removed_at_the_door(app, caller, caplog):
    """Before: a NUL in SpeechResult, CallSid or DialCallStatus of a signed webhook reached the log and
    the database (PostgreSQL refuses it: « \\u0000 cannot be converted to text »), and the write went
    to the spool, where it stopped every later one. Now nothing past the signature check holds one."""
    caplog.set_level(logging.INFO)
    ivr = app.extensions["ivr"]
    call = caller()
    call.call_sid = "CA" + "7" * 31 + "\x00"
    clean_sid = "CA" + "7" * 31
    call.post("http://localhost/voice", call.params())
    call.post(MENU, call.params(SpeechResult="je ne sais pas\x00\x1b[31m", Confidence="0.9"))
    call.post(MENU, call.params(Digits="0"))
    call.post("http://localhost/voice/transfer-done", call.params(QueueResult="bridged\x00", QueueTime="30"))
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="60"))
    record = ivr.records.get(clean_sid)
    assert (record["outcome"], record["transfer_result"], record["call_status"]) == ("transferred", "bridged", "completed")
    assert len(ivr.spool) == 0 and ivr.set_aside.count() == 0
    heard_events = [event["detail"].get("heard") for event in ivr.records.events(clean_sid) if event["detail"].get("heard")]
    assert heard_events and all("\x00" not in text and "\x1b" not in text for text in heard_events)
    assert "\x00" not in caplog.text and "\x1b" not in caplog.text and clean_sid in caplog.text
