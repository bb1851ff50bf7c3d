"""Whatever goes wrong on our side, Twilio gets valid TwiML that apologises and transfers."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from conftest import WORKFLOW

APOLOGY = "Nous rencontrons un problème technique, veuillez nous en excuser. Je vous mets en relation avec un conseiller."


@pytest.mark.logs_errors("no session for this call")
def test_unknown_session_apologises_and_transfers(caller):
    call = caller()
    status, body = call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="1"))
    assert status == 200
    assert APOLOGY in body
    assert f'workflowSid="{WORKFLOW}"' in body


def test_a_session_on_a_node_the_flow_no_longer_has_goes_to_an_agent_with_what_the_caller_said(app, caller, records):
    """The engine meets a node its flow lost (an edit while the call was on it): sorry, and the
    agent gets the caller's answers, not an empty context."""
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    store = app.extensions["ivr"].store
    store.save(replace(store.load(call.call_sid), node="etape_supprimee"))
    status, body = call.post("http://localhost/voice/answer?node=etape_supprimee&phase=ask", call.params(Digits="1"))
    assert status == 200 and APOLOGY in body
    task = _task(body)
    assert (task["reason"], task["last_step"], task["caller"]) == ("technical_error", 1, call.caller)
    assert "Application à jour : oui." in task["summary_fr"]
    record = records.get(call.call_sid)
    assert (record["outcome"], record["transfer_reason"]) == ("transferred", "technical_error")
    assert record["context"]["answers"] == {"application_a_jour": "oui"}
    timeline = [(event["event"], event["node"]) for event in records.events(call.call_sid)]
    assert timeline[-4:] == [("answer", "etape1_a_jour"), ("enter", "etape1_android"), ("error", "etape_supprimee"), ("transfer", "etape_supprimee")]


def test_an_apology_puts_the_caller_through_with_what_they_already_said(app, caller, records):
    """Our code failed mid-call (the voice error handler calls `apologise`): sorry, and the agent
    gets the stored session's answers, not a blank call."""
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    body = _apologise(app, call.call_sid, call.caller)
    assert APOLOGY in body and f'workflowSid="{WORKFLOW}"' in body
    task = _task(body)
    assert (task["reason"], task["last_step"]) == ("technical_error", 1)
    assert "Application à jour : oui." in task["summary_fr"]
    record = records.get(call.call_sid)
    assert (record["outcome"], record["transfer_reason"], record["last_node"]) == ("transferred", "technical_error", "etape1_android")
    assert record["context"]["answers"] == {"application_a_jour": "oui"}


def _apologise(app, call_sid: str, caller_number: str) -> str:
    from ivr.web import calls
    from ivr.web.voice import FlaskUrls

    with app.test_request_context("/voice/answer", method="POST"):
        body = calls.apologise(app.extensions["ivr"], call_sid, caller_number, FlaskUrls())
    app.extensions["ivr"].settle()  # what it wrote is applied from the journal
    return body


def test_an_apology_for_a_call_whose_status_came_says_nothing(app, caller, records):
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="4"))
    assert _apologise(app, call.call_sid, call.caller) == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert records.get(call.call_sid)["outcome"] == "hung_up"  # no transfer written over the end


def test_an_apology_after_the_problem_was_solved_says_goodbye_and_transfers_nobody(app, caller, records):
    call = caller()
    result = call.call(["1", "1", "1", "5"], hang_up_status=False)  # not up to date, updated, solved, rated 5: the status is still to come
    assert "Parfait, votre problème est résolu." in result.said
    assert _apologise(app, call.call_sid, call.caller) == '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>'
    assert records.get(call.call_sid)["outcome"] == "solved"


def test_an_apology_for_a_call_already_put_through_puts_it_through_again_with_its_context(app, caller, records):
    call = caller()
    call.call(["2", "2", "0"], hang_up_status=False)  # up to date, no Android, then 0: an agent (still on the line)
    body = _apologise(app, call.call_sid, call.caller)
    assert APOLOGY in body and f'workflowSid="{WORKFLOW}"' in body
    assert _task(body)["summary_fr"] == records.get(call.call_sid)["context"]["summary_fr"]


def _task(body: str) -> dict:
    return json.loads(body.split("<Task>")[1].split("</Task>")[0].replace("&quot;", '"'))


@pytest.mark.logs_errors("error while handling /voice/answer", "could not build the transfer")
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


@pytest.mark.logs_errors("fallback: Twilio error 11200")
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


@pytest.mark.parametrize("status", ["busy", "no-answer", "failed", "canceled"])
def test_a_final_status_other_than_completed_is_the_calls_outcome(caller, records, status):
    call = caller()
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/status", call.params(CallStatus=status))
    assert (records.get(call.call_sid)["outcome"], records.get(call.call_sid)["call_status"]) == (status, status)


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


@pytest.mark.only_backend("sqlite", "an SQLite file locked by another writer")
@pytest.mark.logs_errors("error while handling /voice")
def test_a_locked_sqlite_store_puts_the_caller_through_within_its_timeout_and_health_says_so(make_app, caller):
    """A backup or an open sqlite3 shell holds the embedded database's write lock. Before: each
    webhook waited the 10 s busy timeout twice (the store, then the apology's second try): 20 s,
    past Twilio's 15 s; /health said ok (reads pass in WAL mode). Now the store is down for the
    request after IVR_DB_TIMEOUT: the caller is put through, and /health says which part fails."""
    import sqlite3
    import time

    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_DB_TIMEOUT="1")
    call = caller(target=app)
    call.post("http://localhost/voice", call.params())
    other = sqlite3.connect(app.extensions["ivr"].db.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        began = time.monotonic()
        status, body = call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
        took = time.monotonic() - began
        assert status == 200 and APOLOGY in body and "<Enqueue" in body and took < 2.5, took
        health = app.test_client().get("/health")
        assert health.status_code == 503 and "sessions" in health.get_json()["failing"]
    finally:
        other.execute("ROLLBACK")
        other.close()
