"""The stock plumbing under the webhooks: what each part depends on, retries, placeholders, forms,
and the command's entry points. Each of these once went wrong in a hand-made stand-in."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REDIS, ROOT, TOKEN
from faults import LossyProxy
from twilio.request_validator import RequestValidator
from werkzeug.formparser import parse_form_data
from werkzeug.test import EnvironBuilder

PARAMS = {"CallSid": "CA" + "4" * 32, "From": "+33612345678"}


def test_a_question_built_under_a_proxy_prefix_is_not_served_without_it(make_app):
    """The TwiML cache keys a document on the prefix its URLs carry: a request through a proxy that
    adds /ecps must not hand its URLs to a request that comes without the prefix."""
    app = make_app(IVR_TRUSTED_PROXIES="1")
    client = app.test_client()
    validator = RequestValidator(TOKEN)
    prefixed = {"X-Forwarded-Prefix": "/ecps", "X-Twilio-Signature": validator.compute_signature("http://localhost/ecps/voice", PARAMS)}
    body = client.post("/voice", data=PARAMS, headers=prefixed).get_data(as_text=True)
    assert 'action="/ecps/voice/answer?node=etape1_a_jour' in body
    other = {**PARAMS, "CallSid": "CA" + "5" * 32}
    plain = {"X-Twilio-Signature": validator.compute_signature("http://localhost/voice", other)}
    body = client.post("/voice", data=other, headers=plain).get_data(as_text=True)
    assert 'action="/voice/answer?node=etape1_a_jour' in body and "/ecps/" not in body


@pytest.mark.parametrize("sql, params, expected", [
    ("SELECT '?' AS q, ? AS p", ("x",), {"q": "?", "p": "x"}),
    ("SELECT ? AS p -- is it a ? here", ("x",), {"p": "x"}),
    ("SELECT /* ?, % */ ? AS p", ("x",), {"p": "x"}),
    ("SELECT 'it''s 100 %' AS q, ? AS p", ("x",), {"q": "it's 100 %", "p": "x"}),
    ('SELECT ? AS "what?"', ("x",), {"what?": "x"}),
])
def test_question_marks_in_strings_names_and_comments_are_not_parameters(make_app, sql, params, expected):
    """Our SQL is written with `?` placeholders: on PostgreSQL they become psycopg's, and only them."""
    assert make_app().extensions["ivr"].db.one(sql, params) == expected


def test_a_form_that_is_not_utf8_reads_as_werkzeug_reads_it(client):
    """Twilio's forms are UTF-8; anything else is read exactly as werkzeug reads it, and the
    signature is checked on that."""
    body = "CallSid=CA" + "6" * 32 + "&From=caf%E9"
    environ = EnvironBuilder(method="POST", data=body, content_type="application/x-www-form-urlencoded").get_environ()
    _, form, _ = parse_form_data(environ)
    signature = RequestValidator(TOKEN).compute_signature("http://localhost/voice", form)
    response = client.post("/voice", data=body, content_type="application/x-www-form-urlencoded", headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200
    assert "<Gather action=\"/voice/answer?node=etape1_a_jour&amp;phase=ask\"" in response.get_data(as_text=True)  # the call starts as any other


@pytest.fixture
def lossy_redis(make_app, backend):
    """An app whose Redis is behind a proxy that can lose one reply (tests marked Redis only)."""
    assert backend.get("REDIS_URL"), "a test of lossy_redis is marked only_backend('redis+postgres')"
    proxy = LossyProxy(REDIS)
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0", TWILIO_WORKFLOW_SID="WW" + "a" * 32)
    yield app, proxy
    proxy.close()


@pytest.mark.only_backend("redis+postgres", "redis-py's retry of a command whose reply was lost")
def test_a_wrong_key_whose_save_reply_was_lost_counts_once(lossy_redis, caller):
    """redis-py sends a command again when its reply is lost; the compare-and-set save recognises
    its own write instead of replaying the key press on top of it."""
    app, proxy = lossy_redis
    call = caller(target=app)
    call.post("http://localhost/voice", call.params())
    proxy.arm(b"EVALSHA")
    status, body = call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="5"))
    assert status == 200 and proxy.cuts == 1
    assert "La touche 5 ne correspond à aucun choix." in body
    session = app.extensions["ivr"].store.load(call.call_sid)
    assert session.failures == 1 and [entry["event"] for entry in session.history].count("invalid") == 1


@pytest.mark.only_backend("redis+postgres", "redis-py's retry of a command whose reply was lost")
def test_the_end_of_a_call_whose_read_reply_was_lost_still_records_its_events(lossy_redis, caller):
    app, proxy = lossy_redis
    call = caller(target=app)
    call.post("http://localhost/voice", call.params())
    call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    proxy.arm(b"EVALSHA")  # the status callback's one command: take the session
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="40"))
    assert proxy.cuts == 1
    records = app.extensions["ivr"].records
    assert [e["event"] for e in records.events(call.call_sid)] == ["enter", "enter", "answer", "enter"]
    assert records.get(call.call_sid)["outcome"] == "hung_up"


def test_python_m_ivr_cli_has_every_command_of_ivr():
    shown = subprocess.run([sys.executable, "-m", "ivr.cli", "--help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for command in ("validate", "preview", "simulate", "graph", "user", "report", "prompts", "callbacks"):
        assert f"  {command} " in shown, command


def test_health_names_what_fails_without_saying_where_it_is(make_app, caplog):
    """/health is public (load balancers): it says which part fails and what kind of error, never
    the database's or Redis' host and port (those are in the server's log)."""
    from servers import free_port

    port = free_port()
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{port}/0", IVR_REDIS_TIMEOUT="0.2")
    response = app.test_client().get("/health")
    body = response.get_data(as_text=True)
    assert response.status_code == 503 and response.get_json()["failing"]["sessions"].startswith("ConnectionError")
    assert str(port) not in body and "127.0.0.1" not in body
    assert str(port) in caplog.text  # the operator finds it in the log


def test_health_says_when_the_data_folder_is_short_of_space(make_app):
    """Before: "ok" with the spool's disk full. The threshold is set above this disk's free space."""
    import shutil

    app = make_app()
    free_mb = shutil.disk_usage(app.extensions["ivr"].spool.path.parent).free / 1e6
    assert app.test_client().get("/health").get_json()["status"] == "ok"
    short = make_app(IVR_MIN_FREE_MB=str(int(free_mb * 2) + 1))
    report = short.test_client().get("/health").get_json()
    assert report["status"] == "degraded" and "MB free" in report["disk"]


def test_the_data_folder_is_the_servers_alone_whatever_the_umask(make_app, tmp_path):
    """Before: the data folder followed the umask (777 under umask 000)."""
    import os
    import stat

    previous = os.umask(0)
    try:
        app = make_app(IVR_DATA_DIR=str(tmp_path / "fresh" / "data"))
    finally:
        os.umask(previous)
    folder = app.extensions["ivr"].spool.path.parent
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_console_and_guide_pages_are_not_cached_but_the_style_sheet_is(client):
    login = client.get("/console/login")
    assert login.headers["Cache-Control"] == "no-store"
    style = client.get("/console/static/console.css")
    assert style.status_code == 200 and "no-store" not in style.headers.get("Cache-Control", "")
