"""The step-6 questionnaire asked while the caller waits for an agent (TaskRouter queue), over signed
webhooks: each answer kept at once, nothing lost when the agent picks up mid-question."""

from __future__ import annotations

from conftest import VALID_RPPS, WORKFLOW
from test_calls import TO_STEP6


def test_the_caller_joins_the_queue_after_the_identifier_and_answers_the_rest_while_waiting(make_app, caller):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_API_TOKEN="api")
    call = caller(target=app)
    call.call([*TO_STEP6, "1", VALID_RPPS], hang_up_status=False)  # the number, then its read-back
    status, body = call.post("http://localhost/voice/answer?node=etape6_rpps&phase=confirm", call.params(Digits="1"))
    assert "<Enqueue" in body and "En attendant, quelques dernières questions." in body.replace("&#39;", "'")
    assert "Si vous avez une carte" not in body  # not asked before the queue
    # The wait URL asks the next question; each answer is in the agent's document at once.
    _, wait = call.post("http://localhost/voice/wait", call.params(QueuePosition="3", QueueTime="5", AvgQueueTime="0"))
    assert "Vous êtes en position 3 dans la file d'attente." in wait.replace("&#39;", "'")
    assert "/voice/wait/answer?node=etape6_carte" in wait and "<Gather" in wait
    _, next_question = call.post("http://localhost/voice/wait/answer?node=etape6_carte&phase=ask", call.params(Digits="2100012345"))
    assert "Vous avez tapé" in next_question  # the card number read back, in the queue too
    # Built for this caller only: the server's documents built once hold no caller's digits.
    assert not any("2 1 0" in document for document in app.extensions["ivr"].twiml_cache._documents.values())
    _, next_question = call.post("http://localhost/voice/wait/answer?node=etape6_carte&phase=confirm", call.params(Digits="1"))
    assert "node=etape6_reproductible" in next_question
    api = app.test_client().get(f"/api/calls/{call.call_sid}/context", headers={"Authorization": "Bearer api"})
    document = api.get_json()
    assert document["questionnaire"]["card_number"] == "2100012345" and document["asked_in_queue"] == ["numero_carte"]
    # The agent picks up now: what was not asked is said, nothing given is lost.
    assert document["not_asked"][:2] == ["reproductible", "probleme_en_cours"]
    # The call ends with the agent: its record keeps the document with the answer given in the queue.
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="300"))
    kept = app.extensions["ivr"].records.get(call.call_sid)["context"]
    assert kept["questionnaire"]["card_number"] == "2100012345" and kept["asked_in_queue"] == ["numero_carte"]
    assert kept["not_asked"][:2] == ["reproductible", "probleme_en_cours"]
    assert app.test_client().get(f"/api/calls/{call.call_sid}/context", headers={"Authorization": "Bearer api"}).get_json() == kept


def test_a_question_left_unanswered_in_the_queue_is_skipped_if_it_may_be_or_asked_again(app, caller):
    call = caller()
    result = call.call([*TO_STEP6, "9"], hang_up_status=False)  # no identifier: to the queue at once
    assert result.questions[-1].node == "etape6_carte"  # the first turn of the wait asked for the card
    params = call.params(QueuePosition="1", QueueTime="5", AvgQueueTime="0")
    second = call.post("http://localhost/voice/wait", params)[1]  # silence at the optional card number: passed
    assert "node=etape6_reproductible" in second
    third = call.post("http://localhost/voice/wait", params)[1]  # silence at a menu: asked again, shorter
    assert "Je n'ai pas eu de réponse." in third.replace("&#39;", "'") and "node=etape6_reproductible" in third


def test_the_last_answer_ends_the_questions_and_the_wait_goes_on(app, caller):
    result = caller().call([*TO_STEP6, "9", ".", "1", "1", "1", "2", "15", "1", "#", "1", "11", "2"])
    assert result.end == "enqueue"
    assert "C'est tout pour les questions." in result.said
    assert result.said_before_queue < len(result.said)


def test_with_an_agents_number_the_questions_come_before_the_transfer(make_app, caller):
    app = make_app(AGENT_NUMBER="+33140000000")
    result = caller(target=app).call([*TO_STEP6, "9", ".", "1", "1", "1", "2", "15", "1", "#", "1", "11", "2", "2"])
    assert result.end == "dial" and "etape6_lps" in [q.node for q in result.questions]



def test_a_turn_of_the_wait_that_ends_with_the_call_answers_nothing_and_logs_no_error(app, caller, caplog):
    """The status callback comes while a turn of the wait is being answered (between reading the
    session and saving it): the call is over, the turn gets an empty answer, no error is logged."""
    call = caller()
    call.call([*TO_STEP6, "9"], hang_up_status=False)  # in the queue, with questions left
    ivr = app.extensions["ivr"]
    real_clock, client = ivr.clock, app.test_client()

    def clock_that_lets_the_call_end() -> float:  # read by the turn after it loaded the session
        ivr.clock = real_clock
        url, params = "http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="60")
        assert client.post(url, data=params, headers=call.headers(url, params)).status_code == 200
        return real_clock()

    ivr.clock = clock_that_lets_the_call_end
    with caplog.at_level("INFO"):
        status, body = call.post("http://localhost/voice/wait", call.params(QueuePosition="1", QueueTime="5"))
    assert status == 200 and "<Gather" not in body and "<Enqueue" not in body
    assert "the call ended while /voice/wait was handled" in caplog.text
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert ivr.store.load(call.call_sid) is None
