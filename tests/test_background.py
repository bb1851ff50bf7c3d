"""What runs beside the webhooks, run for real: the spool's replay on its own timer, the Procfile's
outbox worker as its own process, and two deliverers racing for one helpdesk document."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import responses
from conftest import ROOT, TOKEN

from ivr.delivery.outbox import signature

HELPDESK = "https://helpdesk.example.fr/hooks/ivr"
SECRET = "s3cret-for-hmac"


def eventually(check, seconds: float = 10.0):
    """`check()` once it is true (a background thread's work), or the test fails after `seconds`."""
    deadline, pause = time.monotonic() + seconds, threading.Event()
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        pause.wait(0.02)
    pytest.fail(f"still not done after {seconds:g} s: {check.__doc__ or check}")


def test_what_the_database_refused_is_written_by_the_spools_own_timer(make_app, caller):
    """No operator and no later webhook: the replayer thread writes the spooled close by itself."""
    app = make_app(IVR_SPOOL_INTERVAL="0.1")
    ivr = app.extensions["ivr"]
    call = caller(target=app)
    call.post("http://localhost/voice", call.params())
    ivr.db.execute("ALTER TABLE calls RENAME TO calls_away")  # a real failure of the records
    try:
        call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="7"))
        assert len(ivr.spool) >= 1
    finally:
        ivr.db.execute("ALTER TABLE calls_away RENAME TO calls")

    def closed():
        """the spooled close is written"""
        record = ivr.records.get(call.call_sid)
        return record if record and record["call_status"] == "completed" else None

    record = eventually(closed)
    assert (record["outcome"], record["duration_s"]) == ("hung_up", 7)
    eventually(lambda: len(ivr.spool) == 0)


class _Helpdesk(BaseHTTPRequestHandler):
    received: list

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def helpdesk():
    """A helpdesk webhook on this machine: the worker process's POSTs, as received."""
    handler = type("Handler", (_Helpdesk,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/ivr", handler.received
    server.shutdown()
    server.server_close()


def _worker(settings: dict) -> subprocess.Popen:
    """The Procfile's `worker` line, in its own process, with the server's settings in its environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("IVR_", "TWILIO_", "HANDOFF_"))}
    env.update(settings)
    return subprocess.Popen([sys.executable, "-m", "ivr.delivery.outbox"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_the_procfile_worker_delivers_what_the_web_process_queued(make_app, backend, caller, helpdesk, tmp_path):
    url, received = helpdesk
    settings = {"TWILIO_AUTH_TOKEN": TOKEN, "IVR_DATA_DIR": str(tmp_path / "data"), "HANDOFF_WEBHOOK_URL": url,
                "IVR_WEBHOOK_SECRET": SECRET, **backend}
    app = make_app(AGENT_NUMBER="+33140000000", IVR_OUTBOX_THREAD="0", HANDOFF_WEBHOOK_URL=url, IVR_WEBHOOK_SECRET=SECRET)
    call = caller(target=app)
    call.call(["0"])
    assert received == []  # the web process does not deliver (IVR_OUTBOX_THREAD=0): the worker does
    worker = _worker(settings)
    try:
        eventually(lambda: received, seconds=30)
        headers, body = received[0]
        assert headers["Idempotency-Key"] == f"{call.call_sid}:transfer"
        assert headers["X-IVR-Signature"] == signature(body, SECRET)
        assert json.loads(body)["call_sid"] == call.call_sid
        item, = app.extensions["ivr"].outbox.items()
        eventually(lambda: app.extensions["ivr"].outbox.items()[0]["delivered_at"] is not None)
        assert item["call_sid"] == call.call_sid
    finally:
        worker.terminate()
        output = worker.communicate(timeout=10)[0]
    assert len(received) == 1
    assert "outbox worker delivering to" in output
    assert "Traceback" not in output and " ERROR " not in output  # the worker's log: no crash, no error line


def test_the_procfile_worker_without_a_helpdesk_says_so_and_stops(tmp_path):
    worker = _worker({"TWILIO_AUTH_TOKEN": TOKEN, "IVR_DATA_DIR": str(tmp_path / "data")})
    output = worker.communicate(timeout=30)[0]
    assert worker.returncode == 1
    assert output.strip().splitlines()[-1] == "HANDOFF_WEBHOOK_URL n'est pas donné : le worker n'a rien à livrer."


@responses.activate
def test_two_deliverers_racing_for_one_document_send_it_once(make_app, caller):
    """Worker A has claimed the document and is sending it when worker B (another process, its own
    database connection) makes its round: B leaves it alone."""
    first = make_app(AGENT_NUMBER="+33140000000", IVR_OUTBOX_THREAD="0", HANDOFF_WEBHOOK_URL=HELPDESK, IVR_WEBHOOK_SECRET=SECRET)
    second = make_app(AGENT_NUMBER="+33140000000", IVR_OUTBOX_THREAD="0", HANDOFF_WEBHOOK_URL=HELPDESK, IVR_WEBHOOK_SECRET=SECRET)
    assert first.extensions["ivr"].db is not second.extensions["ivr"].db
    caller(target=first).call(["0"])
    rounds = []

    def helpdesk(request):
        if not rounds:  # while A's POST is in flight, B's whole round
            rounds.append(second.extensions["ivr"].outbox.deliver_due())
        return 200, {}, ""

    responses.add_callback(responses.POST, HELPDESK, callback=helpdesk)
    assert first.extensions["ivr"].outbox.deliver_due() == (1, 0)
    assert rounds == [(0, 0)]
    assert len(responses.calls) == 1
    assert second.extensions["ivr"].outbox.deliver_due() == (0, 0)  # and once delivered, nobody sends it again
