"""What a call writes besides its answer, whatever happens to the writes: a line the database refuses
while it answers is set aside and the rest flows on; a replay killed midway is taken over; a fact
written twice (a statement that ran when a frozen database resumed, and its spooled copy) counts
once; facts landing in any order merge into the same record; a transfer made by the fallback
writes its record and its helpdesk document. Signed webhooks, real files and databases, both
backends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import responses
from click.testing import CliRunner

from ivr.cli.base import main
from ivr.storage.spool import Spool
from ivr.web import writes

BASE = "http://localhost"
HELPDESK = "https://helpdesk.example.fr/hooks/ivr"


@pytest.fixture
def app(make_app):
    return make_app(TWILIO_WORKFLOW_SID="WW" + "0" * 32, HANDOFF_WEBHOOK_URL=HELPDESK, IVR_WEBHOOK_SECRET="s3cret", IVR_OUTBOX_THREAD="0",
                    IVR_SPOOL_INTERVAL="3600")


def replay(ivr) -> tuple[int, int]:
    """A replay, as the server's timer makes it; if the server's own replay (nudged) holds the
    lines, until it is done with them."""
    written, deadline = 0, time.monotonic() + 10
    while True:
        done, waiting = ivr.spool.replay(writes.writers(ivr), ivr.set_aside.add, ivr.database_answers)
        written += done
        if not waiting or time.monotonic() > deadline or done == 0 and not any(_locked(path) for path in ivr.spool.taken()):
            return written, waiting
        time.sleep(0.02)


def _locked(path) -> bool:
    import fcntl

    try:
        with open(path) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
    except BlockingIOError:
        return True
    except FileNotFoundError:
        return False


@pytest.mark.logs_errors("was set aside (ivr journal)")
def test_a_line_the_database_refuses_is_set_aside_and_the_rest_flows_on(app, caller, backend):
    """Before: replay stopped at the first line that fails and put every later one back, for good."""
    ivr = app.extensions["ivr"]
    first, second = caller(), caller()
    for call in (first, second):
        call.post(BASE + "/voice", call.params())
    # A close that can never be written (its time is not a number) between two good ones: an older
    # release's line, or a value that got past the door.
    ivr.spool.add("close", {"call_sid": first.call_sid, "status": "completed", "ended_at": time.time(), "duration": 30, "caller": ""})
    ivr.spool.add("close", {"call_sid": "CA" + "f" * 32, "status": "completed", "ended_at": "jamais", "duration": "x", "caller": ""})
    ivr.spool.add("transfer_result", {"call_sid": second.call_sid, "result": "bridged"})
    ivr.spool.add("nonsense", {"call_sid": second.call_sid})
    with open(ivr.spool.path, "a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    written, waiting = replay(ivr)
    assert (written, waiting, len(ivr.spool)) == (2, 0, 0)
    assert ivr.records.get(first.call_sid)["call_status"] == "completed"
    assert ivr.records.get(second.call_sid)["transfer_result"] == "bridged"
    aside = ivr.set_aside.list()
    assert [item["kind"] for item in aside] == ["close", "nonsense", "?"]
    assert all(item["reason"] for item in aside) and aside[0]["call_sid"] == "CA" + "f" * 32
    health = app.test_client().get("/health").get_json()
    assert health["status"] == "degraded" and "3" in health["set_aside"]


@pytest.mark.logs_errors("was set aside (ivr journal)")
def test_ivr_journal_lists_retries_and_drops_what_was_set_aside(make_app, tmp_path, monkeypatch, backend):
    app = make_app(IVR_SPOOL_INTERVAL="3600")
    ivr = app.extensions["ivr"]
    ivr.spool.add("close", {"call_sid": "CA" + "1" * 32, "status": "completed", "ended_at": "jamais", "duration": 1, "caller": ""})
    ivr.spool.add("nonsense", {"call_sid": "CA" + "2" * 32})
    replay(ivr)
    for name, value in backend.items():
        monkeypatch.setenv(name, value)
    runner, data = CliRunner(), ["--data-dir", str(tmp_path / "data")]
    listed = runner.invoke(main, ["journal", *data])
    assert listed.exit_code == 0, listed.output
    assert "2 écriture(s) mise(s) de côté" in listed.output and "close" in listed.output and "•••11" in listed.output
    first = ivr.set_aside.list()[0]["id"]
    retried = runner.invoke(main, ["journal", "--retry", str(first), *data])
    assert retried.exit_code == 1 and "toujours refusée" in retried.output and "Traceback" not in retried.output
    dropped = runner.invoke(main, ["journal", "--drop", str(first), *data])
    assert dropped.exit_code == 0 and "supprimée" in dropped.output
    assert [item["kind"] for item in ivr.set_aside.list()] == ["nonsense"]
    unknown = runner.invoke(main, ["journal", "--drop", "999999", *data])
    assert unknown.exit_code == 1 and "aucune écriture mise de côté n° 999999" in unknown.output


def test_a_replay_killed_midway_is_taken_over_in_order(tmp_path):
    """Before: every replay renamed to the same file; the next one renamed a new spool onto the one a
    killed worker had taken, and its lines were gone."""
    spool = Spool(tmp_path / "spool.jsonl")
    for number in range(4):
        spool.add("write", {"n": number})
    written = tmp_path / "written"
    script = textwrap.dedent(f"""
        import sys, time
        from ivr.storage.spool import Spool
        def write(args):
            with open({str(written)!r}, "a") as handle:
                handle.write(str(args["n"]) + "\\n")
            if args["n"] == 1:
                print("stuck", flush=True)
                time.sleep(600)
        Spool({str(tmp_path / "spool.jsonl")!r}).replay({{"write": write}})
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "stuck"
        spool.add("write", {"n": 4})  # a new line while the replay is stuck
        done: list[int] = []
        assert spool.replay({"write": lambda args: done.append(args["n"])}) == (1, 4)  # the stuck one is left to its owner
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    assert spool.replay({"write": lambda args: done.append(args["n"])}) == (4, 0)
    assert done == [4, 0, 1, 2, 3] and len(spool) == 0  # its whole file again: each write counts once (below)
    assert written.read_text().split() == ["0", "1"]


def test_lines_stay_in_order_when_the_database_stops_answering(tmp_path):
    """Before: the lines still waiting went after the newer ones."""
    spool = Spool(tmp_path / "spool.jsonl")
    for number in range(3):
        spool.add("write", {"n": number})
    done, down = [], {"now": True}

    def write(args):
        if down["now"] and args["n"] == 1:
            raise ConnectionError("database down")
        done.append(args["n"])

    assert spool.replay({"write": write}) == (1, 2)
    spool.add("write", {"n": 3})
    down["now"] = False
    assert spool.replay({"write": write}) == (3, 0)
    assert done == [0, 1, 2, 3]


def test_facts_written_twice_or_in_any_order_make_one_record(app, caller, backend):
    """A frozen PostgreSQL runs the statements it had received when it resumes, and their spooled
    copies run too; a write spooled during an outage lands after newer ones. Each order and each
    repeat of a transferred call's facts gives the same record and events."""
    ivr = app.extensions["ivr"]
    call = caller()
    call.call(["2", "0"])
    call.post(BASE + "/voice/transfer-done", call.params(QueueResult="bridged", QueueTime="30"))
    expected = _record(ivr, call.call_sid)
    lines = _facts_of(ivr, call.call_sid)
    assert [line["kind"] for line in lines][:1] == ["progress"] and "close" in [line["kind"] for line in lines]
    for order in (lines, lines[::-1], lines + lines, [lines[-1], *lines[::2], *lines]):
        _forget(ivr, call.call_sid)
        for line in order:
            writes.writers(ivr)[line["kind"]](line["args"])
        assert _record(ivr, call.call_sid) == expected, [line["kind"] for line in order]


def _facts_of(ivr, call_sid: str) -> list[dict]:
    """The call's facts, rebuilt from the session the status callback took… as the spool would hold them:
    the writes of a transferred call, in the order the webhooks made them."""
    record = ivr.records.get(call_sid)
    events = ivr.records.events(call_sid)
    history = [{"at": e["at"], "node": e["node"], "step": e["step"], "event": e["event"], **e["detail"]} for e in events]
    from ivr.call.session import Session

    session = Session(call_sid, record["caller"], record["started_at"], record["flow_version"], node=record["last_node"],
                      outcome=record["outcome"], transfer_reason=record["transfer_reason"], history=tuple(history))
    start = session.evolve(outcome=None, transfer_reason=None, history=tuple(history[:2]))
    return [
        {"kind": "progress", "args": {"session": start.to_dict(), "context": None, "events_from": 0}},
        {"kind": "progress", "args": {"session": session.to_dict(), "context": record["context"], "events_from": 2}},
        {"kind": "transfer_result", "args": {"call_sid": call_sid, "result": record["transfer_result"]}},
        {"kind": "close", "args": {"call_sid": call_sid, "status": "completed", "ended_at": record["ended_at"], "duration": record["duration_s"],
                                   "caller": record["caller"]}},
    ]


def _record(ivr, call_sid: str) -> tuple:
    record = ivr.records.get(call_sid)
    events = [(e["event"], e["node"], e["at"]) for e in ivr.records.events(call_sid)]
    return (record["outcome"], record["transfer_reason"], record["transfer_result"], record["call_status"], record["last_node"],
            bool(record["context"]), events)


def _forget(ivr, call_sid: str) -> None:
    ivr.db.execute("DELETE FROM events WHERE call_sid = ?", (call_sid,))
    ivr.db.execute("DELETE FROM calls WHERE call_sid = ?", (call_sid,))


@pytest.mark.logs_errors("fallback: Twilio error")
@pytest.mark.parametrize("when", ["first webhook", "mid-call"])
def test_a_transfer_by_the_fallback_writes_its_record_and_its_helpdesk_document(app, caller, when):
    """Before: /voice/fallback sent nothing to the helpdesk, and fallback → transfer-done bridged →
    status left a record « hung_up » with no reason."""
    ivr = app.extensions["ivr"]
    call = caller()
    if when == "mid-call":
        call.post(BASE + "/voice", call.params())
        call.post(BASE + "/voice/answer?node=accueil&phase=ask", call.params(Digits="1"))
    _, body = call.post(BASE + "/voice/fallback", call.params(ErrorCode="11200", ErrorUrl=BASE + "/voice/answer"))
    assert "<Enqueue" in body
    replay(ivr)  # the server's replay, nudged, writes it at once: the agent is still talking to the caller then
    call.post(BASE + "/voice/transfer-done", call.params(QueueResult="bridged", QueueTime="20"))
    call.post(BASE + "/voice/status", call.params(CallStatus="completed", CallDuration="200"))
    replay(ivr)
    record = ivr.records.get(call.call_sid)
    assert (record["outcome"], record["transfer_reason"], record["transfer_result"], record["call_status"]) == \
        ("transferred", "technical_error", "bridged", "completed")
    documents = [json.loads(item["body"]) for item in ivr.outbox.items()]
    assert [(d["call_sid"], d["reason"]) for d in documents] == [(call.call_sid, "technical_error")]
    assert documents[0]["context_url"].endswith(f"/api/calls/{call.call_sid}/context")
    if when == "mid-call":  # what the session held when the fallback's write was made
        assert {"answers", "asked_in_queue", "summary_fr"} <= set(documents[0]) and documents[0]["caller"] == call.caller


@responses.activate
@pytest.mark.logs_errors("fallback: Twilio error")
def test_the_fallbacks_helpdesk_document_is_delivered_by_the_server_on_its_own(make_app, caller, backend):
    """The fallback's write waits in the spool for a second at most: the server's own replay (nudged)
    writes it and the helpdesk gets it, nobody calling `replay` by hand."""
    responses.post(HELPDESK, status=200)
    app = make_app(TWILIO_WORKFLOW_SID="WW" + "0" * 32, HANDOFF_WEBHOOK_URL=HELPDESK, IVR_WEBHOOK_SECRET="s3cret")
    call = caller(target=app)
    call.post(BASE + "/voice/fallback", call.params(ErrorCode="11205"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not [c for c in responses.calls if c.request.url == HELPDESK]:
        time.sleep(0.05)
    delivered = [json.loads(c.request.body) for c in responses.calls if c.request.url == HELPDESK]
    assert [(d["call_sid"], d["reason"]) for d in delivered] == [(call.call_sid, "technical_error")]
