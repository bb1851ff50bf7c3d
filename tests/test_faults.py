"""Fail to a human, always: this test's own Redis and PostgreSQL killed by PID under live calls, a
worker started while the database is down, an outside API that hangs. Every webhook answers
well-formed TwiML, the caller who asks reaches the agent destination, /health says what fails."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest
import responses
from conftest import ROOT, TOKEN, WORKFLOW, settled_client
from faults import HangingProxy
from servers import PostgresServer, RedisServer

from ivr import create_app
from ivr.supervisor.simulator import Caller, FlaskTransport

pytestmark = pytest.mark.skipif(not (RedisServer.available and PostgresServer.available),
                                reason="needs redis-server, and PostgreSQL's binaries run as root (to start them as postgres)")
MENU = "http://localhost/voice/answer?node=etape1_a_jour&phase=ask"


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def fault_app(tmp_path, postgres, redis_server):
    if postgres.process is None:
        postgres.start()
    apps = []

    def factory(**overrides):
        app = create_app({"TESTING": True, "TWILIO_AUTH_TOKEN": TOKEN, "IVR_DATA_DIR": str(tmp_path / "data"),
                          "IVR_FLOW": str(ROOT / "flows" / "ecps.yaml"), "IVR_PROMPTS": str(ROOT / "prompts"), "IVR_ALWAYS_OPEN": "1",
                          "TWILIO_WORKFLOW_SID": WORKFLOW, "DATABASE_URL": postgres.url, "REDIS_URL": redis_server.url,
                          "IVR_DB_TIMEOUT": "2", "IVR_REDIS_TIMEOUT": "1",
                          "IVR_RELOAD_INTERVAL": "3600",  # the watcher's rounds (edits, announcements) stay out of the faults' timing
                          **overrides})
        app.test_client_class = settled_client(apps)
        apps.append(app)
        return app

    yield factory
    for app in apps:  # its threads (retention, spool replay) stop with the test, its connections close
        services = app.extensions["ivr"]
        services.stop()
        services.db.forget_connection()
        services.db.close()


def gunicorn_on(data_dir, postgres, redis_server, workers: int, threads: int = 2):
    """gunicorn serving our app on our own PostgreSQL and Redis, on a free port: (process, base URL)."""
    import os
    import subprocess
    import sys

    from servers import free_port

    port = free_port()
    env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_WORKFLOW_SID": WORKFLOW, "IVR_ALWAYS_OPEN": "1", "IVR_DATA_DIR": str(data_dir),
           "DATABASE_URL": postgres.url, "REDIS_URL": redis_server.url, "IVR_DB_TIMEOUT": "2", "IVR_REDIS_TIMEOUT": "1"}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "ivr:create_app()", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                               "--threads", str(threads), "--log-level", "warning"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    return server, f"http://127.0.0.1:{port}"


def caller_on(app) -> Caller:
    return Caller(FlaskTransport(app.test_client()), "http://localhost", TOKEN)


def transfers(body: str) -> bool:
    root = ET.fromstring(body)
    return root.find("Enqueue") is not None and root.find("Enqueue").get("workflowSid") == WORKFLOW


@pytest.mark.logs_errors("error while handling /voice")
def test_redis_killed_mid_call_every_caller_reaches_an_agent_and_health_says_so(fault_app, redis_server):
    app = fault_app()
    call = caller_on(app)
    call.post("http://localhost/voice", call.params())
    redis_server.kill()
    for digits in ("2", "0", "7"):
        status, body = call.post(MENU, call.params(Digits=digits))
        assert status == 200 and transfers(body)
    status, body = caller_on(app).post("http://localhost/voice", caller_on(app).params())
    assert status == 200 and transfers(body)  # a new call too
    health = app.test_client().get("/health")
    assert health.status_code == 503 and set(health.get_json()["failing"]) == {"sessions"}
    redis_server.start()  # back: within the probe's quarter of a second, new calls run the diagnostic again
    began = time.monotonic()
    while True:
        fresh = caller_on(app)
        status, body = fresh.post("http://localhost/voice", fresh.params())
        if "node=etape1_a_jour" in body or time.monotonic() - began > 3:
            break
        time.sleep(0.05)
    assert status == 200 and "node=etape1_a_jour" in body and time.monotonic() - began < 1.5
    assert app.test_client().get("/health").status_code == 200


@responses.activate
@pytest.mark.logs_errors("fallback: Twilio error 11200")
def test_postgres_killed_mid_call_the_call_goes_on_and_zero_reaches_an_agent(fault_app, postgres):
    responses.post("https://helpdesk.example.fr/hook", status=200)
    app = fault_app(HANDOFF_WEBHOOK_URL="https://helpdesk.example.fr/hook", IVR_WEBHOOK_SECRET="s", IVR_OUTBOX_THREAD="0")
    call = caller_on(app)
    call.post("http://localhost/voice", call.params())
    postgres.kill()
    status, body = call.post(MENU, call.params(Digits="2"))
    assert status == 200 and "node=etape1_android" in body  # sessions live in Redis: the diagnostic goes on
    status, body = call.post("http://localhost/voice/answer?node=etape1_android&phase=ask", call.params(Digits="0"))
    assert status == 200 and transfers(body)
    for _ in range(3):
        status, body = call.post("http://localhost/voice/fallback", call.params(ErrorCode="11200"))
        assert status == 200 and transfers(body)
    health = app.test_client().get("/health")
    assert health.status_code == 503 and "database" in health.get_json()["failing"]
    postgres.start()


@pytest.mark.logs_errors("(database unreachable)")
def test_a_worker_started_while_the_database_is_down_serves_and_recovers(fault_app, postgres):
    postgres.kill()
    app = fault_app()  # a gunicorn worker booting now: no connection, no migration needed to start
    call = caller_on(app)
    status, body = call.post("http://localhost/voice", call.params())
    assert status == 200 and "node=etape1_a_jour" in body  # sessions in Redis; the record waits
    assert app.test_client().get("/health").status_code == 503
    postgres.start()
    status, body = call.post(MENU, call.params(Digits="0"))
    assert status == 200 and transfers(body)
    assert app.extensions["ivr"].records.get(call.call_sid)["transfer_reason"] == "caller_request"
    assert app.test_client().get("/health").status_code == 200


@pytest.mark.logs_errors("error while handling /voice/wait")
def test_with_the_store_down_a_finished_transfer_says_goodbye_and_the_wait_never_enqueues(fault_app, redis_server):
    app = fault_app()
    call = caller_on(app)
    redis_server.kill()
    status, body = call.post("http://localhost/voice/transfer-done", call.params(QueueResult="bridged"))
    assert status == 200 and "<Enqueue" not in body and "<Hangup" in body
    for url, extra in (("http://localhost/voice/wait", {"QueuePosition": "2"}), ("http://localhost/voice/wait/choice", {"Digits": "1"})):
        status, body = call.post(url, call.params(**extra))
        assert status == 200 and "<Enqueue" not in body and "<Dial" not in body


def test_a_hanging_sms_api_does_not_hold_the_call(fault_app, monkeypatch):
    """Twilio's API accepts and never answers: the caller is answered after 0.8 s with the SMS on its
    way (it goes on in the background until IVR_HTTP_TIMEOUT), and the call goes on."""
    proxy = HangingProxy()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    try:
        app = fault_app(TWILIO_ACCOUNT_SID="AC" + "1" * 32, IVR_SMS_FROM="+33700000000", IVR_HTTP_TIMEOUT="3")
        call = caller_on(app)
        result = call.call(["2", "2", "8", "0"])
        assert "Le guide part par SMS : vous le recevrez dans un instant." in result.said
        assert max(result.timings) < 1.5 and result.end == "enqueue"
    finally:
        proxy.close()


def test_twenty_callers_pressing_8_against_a_hanging_sms_api_are_each_answered_without_waiting_for_it(fault_app, monkeypatch):
    """Before: 20 presses of 8 within a second pushed 6 webhooks past Twilio's 15 s (each waited for
    the API in a thread the others needed)."""
    import threading
    import time

    from flask.testing import FlaskClient

    from ivr.supervisor.simulator import FlaskTransport

    proxy = HangingProxy()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    try:
        app = fault_app(TWILIO_ACCOUNT_SID="AC" + "1" * 32, IVR_SMS_FROM="+33700000000", IVR_HTTP_TIMEOUT="5")
        calls = [caller_on(app) for _ in range(20)]
        for call in calls:
            call.post("http://localhost/voice", call.params())
            call.post(MENU, call.params(Digits="2"))
            call.post("http://localhost/voice/answer?node=etape1_android&phase=ask", call.params(Digits="2"))
            call.transport = FlaskTransport(FlaskClient(app))  # the answer's own time: no wait for the journal after it
        barrier, answered = threading.Barrier(20), []

        def press_8(call):
            barrier.wait()
            began = time.perf_counter()
            status, body = call.post("http://localhost/voice/answer?node=etape3_test&phase=ask", call.params(Digits="8"))
            answered.append((time.perf_counter() - began, status, body))

        threads = [threading.Thread(target=press_8, args=(call,)) for call in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(answered) == 20 and all(status == 200 for _, status, _ in answered)
        # Each waits 0.5 s at most for the API; 20 threads of one process under a loaded test run take
        # longer to be scheduled, so the bound is 2.5 s: the fault it guards against (a wait for the
        # hanging API, IVR_HTTP_TIMEOUT = 5 s) lands far above it.
        assert max(seconds for seconds, _, _ in answered) < 2.5, sorted(round(s, 2) for s, _, _ in answered)
        assert all("SMS" in body for _, _, body in answered)
    finally:
        proxy.close()


@responses.activate
def test_what_could_not_be_written_during_the_outage_is_written_once_afterwards(fault_app, postgres):
    """Records, events and the helpdesk document of a call transferred while PostgreSQL was down are
    spooled on the server's disk, written once it is back, and the helpdesk gets the document once."""
    from ivr.web import writes

    responses.post("https://helpdesk.example.fr/hook", status=200)
    app = fault_app(HANDOFF_WEBHOOK_URL="https://helpdesk.example.fr/hook", IVR_WEBHOOK_SECRET="s", IVR_OUTBOX_THREAD="0",
                    IVR_SPOOL_INTERVAL="3600")
    ivr = app.extensions["ivr"]
    postgres.kill()
    during = [caller_on(app) for _ in range(3)]
    for call in during:
        result = call.call(["2", "0"])
        assert result.end == "enqueue"
    assert len(ivr.spool) >= 6  # each call: its record at the start, at the transfer, the helpdesk document, the close
    spooled = len(ivr.spool)
    postgres.start()
    total = 0
    for _ in range(2):  # the first write may meet the connection the restart broke: the rest waits for the next round
        written, waiting = ivr.spool.replay(writes.writers(ivr))
        total += written
        if not waiting:
            break
    assert (total, waiting) == (spooled, 0)
    assert ivr.spool.replay(writes.writers(ivr)) == (0, 0)  # once
    for call in during:
        record = ivr.records.get(call.call_sid)
        assert (record["outcome"], record["transfer_reason"], record["call_status"]) == ("transferred", "caller_request", "completed")
        assert [e["event"] for e in ivr.records.events(call.call_sid)].count("transfer") == 1
    delivered, failed = ivr.outbox.deliver_due()
    # This test's calls, each delivered once. (`responses` also catches what a thread an earlier test
    # of this worker left running sends, and a free port handed to this test's PostgreSQL may have
    # served an earlier one whose journal still had facts: not this test's business.)
    sent = [r for r in responses.calls if r.request.url.startswith("https://helpdesk.example.fr/")]
    ours = sorted(key for key in (r.request.headers["Idempotency-Key"] for r in sent) if key.split(":")[0] in {c.call_sid for c in during})
    assert ours == sorted(f"{c.call_sid}:transfer" for c in during), [r.request.headers["Idempotency-Key"] for r in sent]
    assert failed == 0 and delivered >= 3


def test_after_a_restart_of_postgresql_the_first_write_of_each_thread_is_not_lost(fault_app, postgres):
    app = fault_app()
    records = app.extensions["ivr"].records
    call = caller_on(app)
    call.post("http://localhost/voice", call.params())  # this thread now keeps a connection
    postgres.kill()
    postgres.start()
    assert app.test_client().get("/health").status_code == 200  # the kept connection was cut; the check reconnects
    call.post(MENU, call.params(Digits="0"))
    assert records.get(call.call_sid)["transfer_reason"] == "caller_request"


@pytest.mark.logs_errors("error while handling /voice/answer", "session cannot be read at its end")
def test_redis_that_fails_is_asked_once_a_request_and_the_status_still_closes_the_call(fault_app, redis_server):
    app = fault_app()
    call = caller_on(app)
    call.post("http://localhost/voice", call.params())
    redis_server.kill()
    status, body = call.post(MENU, call.params(Digits="2"))
    assert status == 200 and transfers(body)
    status, _ = call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="20"))
    assert status == 200
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert (record["call_status"], record["transfer_reason"]) == ("completed", "technical_error")


def test_a_gunicorn_worker_killed_while_the_database_is_down_is_replaced_and_serves(tmp_path, postgres, redis_server):
    """The operator's case: under gunicorn, PostgreSQL down, a worker dies; its replacement boots
    without the database, and the server keeps answering calls."""
    import os
    import signal
    import time
    import urllib.request

    from ivr.supervisor.simulator import HttpTransport

    if postgres.process is None:
        postgres.start()
    server, base = gunicorn_on(tmp_path, postgres, redis_server, workers=2)

    def workers() -> list[int]:
        with open(f"/proc/{server.pid}/task/{server.pid}/children") as handle:
            return [int(pid) for pid in handle.read().split()]

    def health() -> int:
        try:
            return urllib.request.urlopen(base + "/health", timeout=10).status
        except urllib.error.HTTPError as error:
            return error.code

    def wait_for(condition, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if condition():
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    try:
        assert wait_for(lambda: len(workers()) == 2 and health() == 200)
        postgres.kill()
        before = set(workers())
        os.kill(min(before), signal.SIGKILL)
        assert wait_for(lambda: len(set(workers()) - before) == 1 and len(workers()) == 2)  # a replacement, booted
        assert server.poll() is None  # gunicorn itself goes on
        for _ in range(6):  # whichever worker answers
            call = Caller(HttpTransport(), base, TOKEN)
            status, body = call.post(base + "/voice", call.params())
            assert status == 200 and "node=etape1_a_jour" in body
        assert health() == 503
        postgres.start()
        assert wait_for(lambda: health() == 200)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_frozen_postgresql_does_not_hold_the_call(fault_app, postgres, redis_server):
    """A server that accepts but never answers (stopped, its host gone): the caller is put through
    at once (no webhook waits on it); the journal's statement is cut after IVR_DB_TIMEOUT and tried
    again. When PostgreSQL resumes it runs the statement it had received, and the retry runs too:
    each event is counted once (before: 25 extra events in each call)."""
    import os
    import signal
    import threading
    import time

    from flask.testing import FlaskClient

    from ivr.web import writes

    app = fault_app(IVR_DB_TIMEOUT="1", IVR_SPOOL_INTERVAL="3600")
    call = caller_on(app)
    call.post("http://localhost/voice", call.params())
    call.transport = FlaskTransport(FlaskClient(app))  # the answer's own time, without waiting for the journal
    answered = []
    os.kill(postgres.process.pid, signal.SIGSTOP)
    try:
        began = time.perf_counter()
        worker = threading.Thread(target=lambda: answered.append(call.post(MENU, call.params(Digits="0"))), daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert answered and answered[0][0] == 200 and transfers(answered[0][1])
        assert time.perf_counter() - began < 0.5
        time.sleep(2.5)  # the journal's statement is sent, and cut after IVR_DB_TIMEOUT + 1 s
    finally:
        os.kill(postgres.process.pid, signal.SIGCONT)
    ivr = app.extensions["ivr"]
    deadline = time.monotonic() + 20
    while len(ivr.spool) and time.monotonic() < deadline:
        ivr.spool.replay(writes.writers(ivr))
        time.sleep(0.1)
    assert len(ivr.spool) == 0
    assert ivr.records.get(call.call_sid)["transfer_reason"] == "caller_request"
    events = ivr.records.events(call.call_sid)
    assert [e["event"] for e in events].count("transfer") == 1 and len(events) == len({(e["at"], e["event"], e["node"]) for e in events})


def test_with_redis_frozen_the_fallback_and_every_caller_are_answered_within_seconds(tmp_path, postgres, redis_server):
    """Redis accepts and never answers (stopped), under gunicorn 1 worker x 2 threads, while 8
    webhooks and Twilio's fallback arrive. Before: each webhook held a thread for Redis' timeout and
    its retry (2 s), the others queued behind (8 s for the last), the fallback too. Now the first
    failure stops this worker asking Redis: the rest are put through at once, the fallback with
    them, and a probe lets calls use Redis again as soon as it answers."""
    import os
    import signal
    import threading
    import time
    import urllib.request

    from ivr.supervisor.simulator import HttpTransport

    server, base = gunicorn_on(tmp_path, postgres, redis_server, workers=1)

    def caller() -> Caller:
        return Caller(HttpTransport(timeout=30), base, TOKEN)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(base + "/health", timeout=5).status == 200:
                break
        except OSError:
            time.sleep(0.1)
    try:
        calls = [caller() for _ in range(8)]
        for call in calls:
            assert call.post(base + "/voice", call.params())[0] == 200
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        answered: dict[str, tuple] = {}

        def post(name, call, url, params):
            began = time.perf_counter()
            status, body = call.post(url, params)
            answered[name] = (time.perf_counter() - began, status, body)

        threads = [threading.Thread(target=post, args=(f"answer {n}", call, base + "/voice/answer?node=etape1_a_jour&phase=ask",
                                                       call.params(Digits="2"))) for n, call in enumerate(calls)]
        fallen = caller()
        threads.append(threading.Thread(target=post, args=("fallback", fallen, base + "/voice/fallback", fallen.params(ErrorCode="11205"))))
        for thread in threads:
            thread.start()
            time.sleep(0.02)
        for thread in threads:
            thread.join(timeout=60)
        seconds = {name: round(took, 2) for name, (took, _, _) in answered.items()}
        assert len(answered) == 9 and all(status == 200 and transfers(body) for _, status, body in answered.values()), seconds
        assert seconds["fallback"] < 3.5 and max(seconds.values()) < 4.5, seconds
        os.kill(redis_server.process.pid, signal.SIGCONT)
        time.sleep(1.5)  # the probe finds Redis answering again
        fresh = caller()
        status, body = fresh.post(base + "/voice", fresh.params())
        assert status == 200 and "node=etape1_a_jour" in body
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.logs_errors("error while handling /voice")
def test_the_redis_probe_stops_with_its_services(make_app):
    """Before: a worker's probe kept knocking at a dead Redis's port after its services stopped; a
    test server that later took the port received Redis commands (« Bad request syntax ('*2') »)."""
    import socket
    import threading
    import time

    from servers import free_port

    port = free_port()
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, REDIS_URL=f"redis://127.0.0.1:{port}/0", IVR_REDIS_TIMEOUT="0.2")
    call = caller_on(app)
    assert transfers(call.post(MENU, call.params(Digits="2"))[1])  # Redis down: the probe starts
    app.extensions["ivr"].stop()
    # Its thread is gone (a free port may be handed to another worker of the test run, whose own
    # clients would knock: the thread, not the port, says whether this probe stopped).
    deadline = time.monotonic() + 2
    while any(t.name == "ivr-store-probe" and t.is_alive() for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "ivr-store-probe" and t.is_alive() for t in threading.enumerate())
    with socket.create_server(("127.0.0.1", port)) as listener:
        listener.settimeout(0.5)
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody knocks any more
