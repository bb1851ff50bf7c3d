"""Issue 37, what operators watch: Prometheus metrics summed over gunicorn's workers, closed to the
public; JSON logs that name the call and never a caller's number; alerts as code, checked by
promtool and evaluated by a real Prometheus scraping two workers of ours."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, TOKEN, VALID_RPPS, WORKFLOW
from servers import free_port
from test_calls import TO_STEP6

from ivr.supervisor.simulator import Caller, HttpTransport

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMTOOL, PROMETHEUS = shutil.which("promtool"), shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(PROMTOOL is None or PROMETHEUS is None,
                                      reason="Debian's prometheus is not installed (apt-get install prometheus)")
METRICS = "metrics-token-0123456789"
CALLER = "+33611224471"
FAMILIES = ("ivr_webhook_duration_seconds", "ivr_webhooks_total", "ivr_calls_started_total", "ivr_calls_ended_total", "ivr_fallbacks_total",
            "ivr_transfers_total", "ivr_queue_questions_asked_total", "ivr_queue_questions_answered_total", "ivr_outbox_pending",
            "ivr_outbox_oldest_age_seconds", "ivr_spool_facts", "ivr_sms_total", "ivr_reloads_total", "ivr_files_refused",
            "ivr_flow_version_info", "ivr_experiment_arms_served_total", "ivr_store_errors_total", "ivr_database_up", "ivr_set_aside_facts",
            "ivr_outbox_abandoned")


def test_metrics_are_served_to_the_bearer_of_the_token_only(make_app, caller):
    closed = make_app(TWILIO_WORKFLOW_SID=WORKFLOW)
    assert closed.test_client().get("/metrics").status_code == 404  # no token set: no metrics at all
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_METRICS_TOKEN=METRICS)
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    caller(target=app).call(["1", "1", "1", "."])  # solved at step 1
    served = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"})
    assert served.status_code == 200 and served.headers["Content-Type"].startswith("text/plain; version=")
    text = served.get_data(as_text=True)
    assert re.search(r'^ivr_calls_ended_total\{outcome="solved",step="1"\} [1-9]', text, re.M)
    assert re.search(r'^ivr_webhook_duration_seconds_bucket\{backend="[a-z+]+",le="15.0",route="voice.incoming"\}', text, re.M)
    assert "CA" not in re.sub(r"^#.*$", "", text, flags=re.M) and CALLER[3:] not in text  # no call, no number in a label


def _gunicorn(tmp_path: Path, **env) -> tuple[subprocess.Popen, str, Path]:
    """The Procfile's web line (gunicorn.conf.py: 2 workers) on a free port, on the embedded backend
    of `tmp_path`: (process, base URL, its log file)."""
    log = tmp_path / "server.log"
    # Port 0: the system gives gunicorn a free one, read from its log (a port chosen here could be taken
    # meanwhile by another test's server, whose answers would be counted as ours).
    settings = {**os.environ, "PORT": "0", "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_WORKFLOW_SID": WORKFLOW, "IVR_ALWAYS_OPEN": "1",
                "IVR_DATA_DIR": str(tmp_path / "data"), "IVR_METRICS_TOKEN": METRICS,
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "IVR_RELOAD_INTERVAL": "1", **env}
    settings["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # the venv's gunicorn, as the Procfile runs it
    for name in ("REDIS_URL", "DATABASE_URL"):
        settings.pop(name, None)
    with open(log, "wb") as out:
        server = subprocess.Popen(["sh", "-c", "exec " + Path(ROOT / "Procfile").read_text().split("web:", 1)[1].splitlines()[0].strip()],
                                  cwd=ROOT, env=settings, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listening = re.search(r"Listening at: http://0\.0\.0\.0:(\d+)", log.read_text(errors="replace"))
        try:
            if listening:
                base = f"http://127.0.0.1:{listening.group(1)}"
                urllib.request.urlopen(base + "/health", timeout=1).read()
                return server, base, log
        except OSError:
            assert server.poll() is None, log.read_text()
            time.sleep(0.2)
    server.kill()
    raise AssertionError("gunicorn did not start: " + log.read_text()[-2000:])


def _scrape(base: str) -> str:
    request = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {METRICS}"})
    return urllib.request.urlopen(request, timeout=5).read().decode()


def _value(text: str, name: str, **labels) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        found = re.match(rf"^{name}(\{{([^}}]*)\}})? (\S+)$", line)
        if found and all(f'{key}="{value}"' in (found.group(2) or "") for key, value in labels.items()):
            total += float(found.group(3))
    return total


def _files(tmp_path: Path, flow_edit=None) -> dict:
    """The flow and prompts copied where the test may edit them."""
    shutil.copytree(ROOT / "flows", tmp_path / "flows")
    shutil.copytree(ROOT / "prompts", tmp_path / "prompts")
    return {"IVR_FLOW": str(tmp_path / "flows" / "ecps.yaml"), "IVR_PROMPTS": str(tmp_path / "prompts"),
            "IVR_HOURS": str(tmp_path / "flows" / "horaires.yaml")}


def _calls(base: str, count: int) -> list[Caller]:
    """`count` calls put through to the queue, each answering two questions there, the agent taking
    it (QueueResult bridged), then its end; one more caller presses 8 (no SMS configured) and hangs up."""
    played = []
    for _ in range(count):
        call = Caller(HttpTransport(), base, TOKEN, caller=CALLER)
        # Queued: no card (silence), reproducible, happening now; then the agent takes the call.
        result = call.call([*TO_STEP6, "1", VALID_RPPS, "1", "#", "1", "1"], hang_up_status=False)
        assert result.end == "enqueue", result.end
        call.post(base + "/voice/transfer-done", call.params(QueueResult="bridged", CallStatus="in-progress"))
        call.post(base + "/voice/status", call.params(CallStatus="completed", CallDuration="300"))
        played.append(call)
    sms = Caller(HttpTransport(), base, TOKEN, caller=CALLER)
    sms.call(["2", "2", "8"], hang_up_status=True)  # step 3's guide by SMS: SMS not configured here
    return played


def test_a_scrape_of_two_gunicorn_workers_sums_every_family(tmp_path):
    files = _files(tmp_path)
    env = {**files, "HANDOFF_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/helpdesk", "IVR_WEBHOOK_SECRET": "s" * 32}
    server, base, log = _gunicorn(tmp_path, **env)
    try:
        started = subprocess.run([sys.executable, "-m", "ivr.cli", "experiment", "start", "accueil.bienvenue",
                                  "Bonjour, ici l'assistance e-CPS. Mettez votre téléphone sur haut-parleur. À tout moment, tapez étoile "
                                  "pour réécouter, ou 0 pour parler à un conseiller.", "--par", "Claire"],
                       cwd=ROOT, env={**{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}, **env,
                                      "IVR_DATA_DIR": str(tmp_path / "data")}, check=False, capture_output=True, text=True)
        assert started.returncode == 0, started.stdout + started.stderr
        time.sleep(2.5)  # each worker reads the experiments every IVR_RELOAD_INTERVAL (1 s)
        _calls(base, 6)
        flow = Path(files["IVR_FLOW"])
        flow.write_text(flow.read_text(encoding="utf-8") + "\n# une modification acceptée\n", encoding="utf-8")
        time.sleep(1.0)
        for _ in range(8):  # each worker reads the edit at its next call or watcher turn
            urllib.request.urlopen(base + "/health").read()
        flow.write_text(flow.read_text(encoding="utf-8").replace("start: accueil", "start: nulle_part"), encoding="utf-8")
        time.sleep(1.0)
        text = _scrape(base)
        for family in FAMILIES:
            assert re.search(rf"^# TYPE ({family}|{re.sub(r'_total$', '', family)}) ", text, re.M), family
        # Summed over both workers: each call counted once, whichever worker took each webhook.
        workers = {path.name.rsplit("_", 1)[-1] for path in (tmp_path / "metrics").glob("counter_*.db")}
        assert len(workers) == 2, workers
        assert _value(text, "ivr_calls_started_total") == 7
        assert _value(text, "ivr_calls_ended_total", outcome="transferred", step="6") == 6
        assert _value(text, "ivr_calls_ended_total", outcome="hung_up", step="3") == 1
        assert _value(text, "ivr_transfers_total", result="bridged") == 6
        assert _value(text, "ivr_queue_questions_answered_total") == 12
        assert _value(text, "ivr_queue_questions_asked_total") >= 12
        assert _value(text, "ivr_webhooks_total", route="voice.incoming", status="200") == 7
        assert _value(text, "ivr_webhook_duration_seconds_count", route="voice.wait_answer") == 12
        assert _value(text, "ivr_sms_total", kind="guide", status="unavailable") == 1  # the guide asked for with 8
        assert _value(text, "ivr_experiment_arms_served_total", prompt="accueil.bienvenue") == 7
        assert _value(text, "ivr_reloads_total", result="accepted") == 2  # each worker read the accepted edit
        assert _value(text, "ivr_reloads_total", result="refused") >= 1 and _value(text, "ivr_files_refused") == 1
        assert _value(text, "ivr_outbox_pending") >= 6 and _value(text, "ivr_outbox_oldest_age_seconds") > 0  # the helpdesk does not answer
        assert _value(text, "ivr_database_up") == 1 and _value(text, "ivr_store_errors_total") == 0
        assert _value(text, "ivr_fallbacks_total") == 0
        assert "CA" not in re.sub(r"^#.*$", "", text, flags=re.M) and "1224471" not in text
        refused = urllib.request.Request(base + "/metrics")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(refused, timeout=5)
        assert error.value.code == 401
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_json_logs_name_the_call_on_each_line_and_never_an_identifier_or_a_number(tmp_path):
    server, base, log = _gunicorn(tmp_path, IVR_LOG_FORMAT="json", IVR_API_TOKEN="api")
    try:
        call = Caller(HttpTransport(), base, TOKEN, caller=CALLER)
        call.call([*TO_STEP6, "1", VALID_RPPS, "1", "2100012345", "1", "1"], hang_up_status=False)
        context = urllib.request.Request(f"{base}/api/calls/{call.call_sid}/context", headers={"Authorization": "Bearer api"})
        agent_url = json.loads(urllib.request.urlopen(context, timeout=5).read())["agent_url"]
        urllib.request.urlopen(agent_url, timeout=5).read()  # the agent opens the call's page
        call.post(base + "/voice/status", call.params(CallStatus="completed", CallDuration="300"))
        unsigned = urllib.request.Request(base + "/voice/answer?node=etape1_a_jour&phase=ask",
                                          data=urllib.parse.urlencode({"CallSid": call.call_sid, "Digits": "1"}).encode())
        with pytest.raises(urllib.error.HTTPError):  # refused (403), and logged with the call it claims
            urllib.request.urlopen(unsigned, timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=20)
    text = log.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is one JSON object
    webhook = [line for line in lines if str(line.get("route", "")).startswith("voice.")]
    assert len(webhook) >= 10 and all(line.get("call_sid") == call.call_sid for line in webhook)
    assert any(line.get("logger") == "ivr.access" and line.get("status") == 403 for line in webhook)  # the unsigned one
    assert any(line["logger"] == "gunicorn.error" for line in lines)  # gunicorn's own lines are JSON too
    assert any(line["message"] == "GET /agent/<token> 200" for line in lines)  # the route, never the signed link
    assert agent_url.rsplit("/", 1)[-1] not in text
    assert VALID_RPPS not in text and "2100012345" not in text and CALLER not in text and CALLER[1:] not in text
    assert "0611224471" not in text and "06 11 22 44 71" not in text


@needs_prometheus
def test_the_alert_rules_and_the_scrape_configuration_pass_promtool():
    rules = subprocess.run([PROMTOOL, "check", "rules", str(PROMETHEUS_DIR / "alerts.yml")], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 11 rules found" in rules.stdout
    config = subprocess.run([PROMTOOL, "check", "config", "--syntax-only", str(PROMETHEUS_DIR / "prometheus.yml")],
                            capture_output=True, text=True)
    assert config.returncode == 0, config.stdout + config.stderr
    # Each alert fires when it should and not before: the unit tests of alerts_test.yml.
    tested = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS_DIR, capture_output=True, text=True)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def _prometheus(tmp_path: Path, target: str) -> tuple[subprocess.Popen, str]:
    """Debian's Prometheus, on the shipped configuration with this test's target, token file and a 1 s cadence."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / "alerts.yml")]
    job = config["scrape_configs"][0]
    (tmp_path / "token").write_text(METRICS)
    job["authorization"]["credentials_file"] = str(tmp_path / "token")
    job["static_configs"] = [{"targets": [target]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prom.log", "wb"))
    return process, f"http://127.0.0.1:{port}"


def _query(prometheus: str, expression: str) -> list:
    url = prometheus + "/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    answer = json.loads(urllib.request.urlopen(url, timeout=5).read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def _until(check, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds} s")


@needs_prometheus
def test_a_real_prometheus_scrapes_two_workers_and_evaluates_the_alerts(tmp_path):
    files = _files(tmp_path)
    server, base, _ = _gunicorn(tmp_path, **files)
    prometheus, api = _prometheus(tmp_path, base.removeprefix("http://"))
    try:
        _until(lambda: _query(api, 'up{job="ivr"} == 1'))
        _calls(base, 1)  # 2 calls: their series scraped, then more calls for the rates
        _until(lambda: _query(api, "sum(ivr_calls_started_total) >= 2"))
        _calls(base, 2)
        # The alert expressions as shipped, evaluated by Prometheus on what it scraped.
        rules = {rule["alert"]: rule["expr"] for rule in yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"][0]["rules"]}
        started = _until(lambda: _query(api, "sum(ivr_calls_started_total) >= 5"))
        assert float(started[0]["value"][1]) == 5  # summed over the two workers
        p99 = _until(lambda: _query(api, rules["IvrWebhookSlow"].replace("> 2", ">= 0")))
        assert 0 < float(p99[0]["value"][1]) < 2  # the p99 of the webhooks, far below the alert
        assert _query(api, rules["IvrReloadRefused"]) == []
        flow = Path(files["IVR_FLOW"])
        flow.write_text(flow.read_text(encoding="utf-8").replace("start: accueil", "start: nulle_part"), encoding="utf-8")
        refused = _until(lambda: _query(api, rules["IvrReloadRefused"]))
        assert float(refused[0]["value"][1]) == 1
        # Prometheus loaded every rule, and the alert is on its way (pending for its minute).
        loaded = json.loads(urllib.request.urlopen(api + "/api/v1/rules", timeout=5).read())["data"]["groups"][0]["rules"]
        assert {rule["name"] for rule in loaded} == set(rules) and all(rule["health"] == "ok" for rule in loaded)
        _until(lambda: any(alert["labels"]["alertname"] == "IvrReloadRefused"
                           for alert in json.loads(urllib.request.urlopen(api + "/api/v1/alerts", timeout=5).read())["data"]["alerts"]))
    finally:
        prometheus.terminate()
        server.terminate()
        prometheus.wait(timeout=20)
        server.wait(timeout=20)


@pytest.mark.parametrize(("text", "shown"), [
    ("RPPS 10012345673 tapé", "RPPS •••••••••73 tapé"), ("+33611223344", "•••••••••44"), ("06 11 22 33 44", "••••••••44"),
    ("06.11.22.33.44", "••••••••44"), ("06-11-22-33-44", "••••••••44"), ("from=%2B33611223344", "from=••••••••••44"),
    ("[CA0123456789abcdef0123456789abcdef] a call", "[CA0123456789abcdef0123456789abcdef] a call"), ("port 54321", "port 54321"),
])
def test_log_lines_mask_numbers_but_keep_call_sids(text, shown):
    from ivr.logs import masked

    assert masked(text) == shown


def test_a_transfer_result_sent_again_after_the_status_and_a_question_asked_again_count_once(make_app):
    from prometheus_client import REGISTRY

    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_METRICS_TOKEN=METRICS)

    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    from ivr.supervisor.simulator import FlaskTransport

    call = Caller(FlaskTransport(app.test_client()), "http://localhost", TOKEN, caller=CALLER)
    call.call([*TO_STEP6, "1", VALID_RPPS, "1"], hang_up_status=False)  # in the queue, the card question asked
    asked = value("ivr_queue_questions_asked_total")
    for _ in range(2):  # the wait goes on without an answer: the same question, asked again, is not a new one
        call.post("http://localhost/voice/wait", call.params(QueuePosition="1"))
    assert value("ivr_queue_questions_asked_total") - asked <= 1  # at most the next question after the card was passed
    before = value("ivr_transfers_total", result="bridged")
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="60"))
    headers = {"I-Twilio-Idempotency-Token": "retry-1"}
    for _ in range(2):  # Twilio sends the Enqueue's action again (same token), after the status
        call.transport.post("http://localhost/voice/transfer-done", call.params(QueueResult="bridged", CallStatus="completed"),
                            {**call.headers("http://localhost/voice/transfer-done",
                                            call.params(QueueResult="bridged", CallStatus="completed")), **headers})
    assert value("ivr_transfers_total", result="bridged") - before == 1
