"""Whatever goes wrong on our side, Twilio gets valid TwiML that apologises and transfers."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from conftest import WORKFLOW

APOLOGY = "Nous rencontrons un problème technique, veuillez nous en excuser. Je vous mets en relation avec un conseiller."


def test_unknown_session_apologises_and_transfers(caller):
    call = caller()
    status, body = call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="1"))
    assert status == 200
    assert APOLOGY in body
    assert f'workflowSid="{WORKFLOW}"' in body


def test_session_on_a_node_the_flow_no_longer_has(app, caller, records):
    call = caller()
    call.post("http://localhost/voice", call.params())
    store = app.extensions["ivr"].store
    store.save(replace(store.load(call.call_sid), node="etape_supprimee"))
    status, body = call.post("http://localhost/voice/answer?node=etape_supprimee&phase=ask", call.params(Digits="1"))
    assert status == 200 and APOLOGY in body
    assert records.get(call.call_sid)["transfer_reason"] == "technical_error"


def test_store_down_still_transfers(make_app, backend, caller):
    if backend.get("REDIS_URL"):
        app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, REDIS_URL="redis://127.0.0.1:9/0")  # nothing listens there
    else:
        app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW)
        app.extensions["ivr"].db.execute("DROP TABLE sessions")  # a real failure of the SQL store
    call = caller(target=app)
    status, body = call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    assert status == 200
    assert APOLOGY in body and "<Enqueue" in body
    task = json.loads(body.split("<Task>")[1].split("</Task>")[0].replace("&quot;", '"'))
    assert task["reason"] == "technical_error" and task["caller"] == call.caller


def test_fallback_url_transfers_without_reading_and_the_agent_finds_what_the_caller_said(make_app, caller):
    """Twilio calls the fallback when our answer failed: it is built from the configuration and the
    request alone (what failed may be the store); the task's context URL gives the agent the rest."""
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_API_TOKEN="agents")
    call = caller(target=app)
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    status, body = call.post("http://localhost/voice/fallback", call.params(ErrorCode="11200", ErrorUrl="http://localhost/voice"))
    assert status == 200 and APOLOGY in body
    task = json.loads(body.split("<Task>")[1].split("</Task>")[0].replace("&quot;", '"'))
    assert (task["reason"], task["caller"]) == ("technical_error", call.caller)
    context = app.test_client().get(task["context_url"], headers={"Authorization": "Bearer agents"}).get_json()
    assert context["answers"] == {"application_a_jour": "oui"}


def test_stale_answer_repeats_the_current_question(caller):
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    # Twilio retries the first answer: we are already at the Android question.
    status, body = call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    assert status == 200
    assert "node=etape1_android" in body and "Android 15 ou plus" in body


def test_second_incoming_webhook_resumes_instead_of_restarting(caller, caplog):
    caplog.set_level("INFO", logger="ivr.web.calls")
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    status, body = call.post("http://localhost/voice", call.params())
    assert "node=etape1_android" in body and "Bonjour" not in body
    # The first webhook saves without reading: the second finds the session and is answered from it.
    assert caplog.text.count("call started") == 1 and "replaying" not in caplog.text


def test_status_busy_closes_the_record_with_that_status(caller, records):
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/status", call.params(CallStatus="canceled"))
    assert records.get(call.call_sid)["outcome"] == "canceled"


def test_intermediate_status_does_not_close(caller, records):
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/status", call.params(CallStatus="ringing"))
    assert records.get(call.call_sid)["ended_at"] is None


def test_status_for_a_call_we_never_saw_still_leaves_a_record(caller, records):
    call = caller()
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="30"))
    record = records.get(call.call_sid)
    assert (record["outcome"], record["duration_s"], record["caller"]) == ("hung_up", 30, call.caller)
    assert record["ended_at"] - record["started_at"] == pytest.approx(30)


def test_records_database_down_does_not_stop_the_call(app, caller):
    # A real failure of the records: their table is gone; the diagnostic itself goes on.
    app.extensions["ivr"].db.execute("DROP TABLE events")
    result = caller().call(["1", "1", "1", "."])
    assert result.end == "hangup" and "Parfait, votre problème est résolu." in result.said
