"""Evidence for supervisors, end to end over signed webhooks and the `ivr` command, on both backends:
incident announcements, sentence experiments (A/B) and callers' ratings."""

from __future__ import annotations

import json
import time
from datetime import datetime
from urllib.parse import parse_qs

import pytest
import responses
from click.testing import CliRunner
from conftest import ROOT, TOKEN, WORKFLOW, heard
from test_calls import TO_STEP4
from test_sms import ACCOUNT, twilio_accepts

from ivr.call import engine
from ivr.call.hours import PARIS
from ivr.call.session import Experiment
from ivr.cli import main
from ivr.supervisor import stats
from ivr.supervisor.simulator import Caller, FlaskTransport

TEXT = "Pro Santé Connect est en panne dans toute la France depuis 9 heures. Le rétablissement est prévu vers midi."
ANNOUNCED = f"Information importante : {TEXT}"


@pytest.fixture
def ivr_cli(tmp_path, backend):
    """`ivr` on the same data as the apps of the test (the embedded database, or PostgreSQL)."""
    data = tmp_path / "data"

    def run(*args, input=None):
        env = {"DATABASE_URL": backend.get("DATABASE_URL", ""), "USER": "nadia"}
        return CliRunner().invoke(main, [*args, "--data-dir", str(data)], env=env, input=input)

    return run


@pytest.fixture
def live(make_app):
    """An app that reads incidents and experiments at every call (no reload interval)."""
    return make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_RELOAD_INTERVAL="0")


# ---- incidents ---------------------------------------------------------------------------------------
def test_an_incident_is_announced_after_the_welcome_then_the_diagnostic_goes_on(live, caller, ivr_cli, make_app):
    other = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_RELOAD_INTERVAL="0")  # another server on the same data
    caller(target=live).call(["1", "1", "1", "."])  # before: nothing
    done = ivr_cli("incident", "set", TEXT)
    assert done.exit_code == 0, done.output
    for app in (live, other):
        call = caller(target=app)
        result = call.call(["1", "1", "1", "."])
        assert result.said[1:3] == [ANNOUNCED, "Pour continuer le diagnostic, restez en ligne. Sinon, vous pouvez raccrocher et rappeler plus tard."]
        assert result.said[0].startswith(heard("Bonjour, vous êtes sur l'assistance e-CPS"))
        assert result.end == "hangup"
        record = app.extensions["ivr"].records.get(call.call_sid)
        assert record["incident"] is not None and record["outcome"] == "solved"
    gone = caller(target=live)
    gone.call([])  # hangs up right after the announcement
    shown = ivr_cli("incident", "show")
    assert "En cours" in shown.output and TEXT in shown.output and "par nadia" in shown.output
    report = ivr_cli("report")
    assert "Pendant une annonce d'incident : 3 appels, dont 1 raccroché juste après l'annonce" in report.output
    figures = json.loads(ivr_cli("report", "--json").output)["incident"]
    assert figures == {"calls": 3, "hung_up_after_announcement": 1}
    assert ivr_cli("incident", "clear").exit_code == 0
    assert ANNOUNCED not in caller(target=live).call(["1", "1", "1", "."]).said
    assert "arrêtée le" in ivr_cli("incident", "show").output


def test_an_incident_ends_by_itself_at_its_until(live, make_app, caller, ivr_cli):
    until = datetime(2030, 1, 6, 12, 0, tzinfo=PARIS).timestamp()
    assert ivr_cli("incident", "set", TEXT, "--until", "2030-01-06 12:00").exit_code == 0
    before = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_RELOAD_INTERVAL="0", IVR_CLOCK=lambda: until - 60)
    after = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_RELOAD_INTERVAL="0", IVR_CLOCK=lambda: until + 60)
    assert ANNOUNCED in caller(target=before).call(["1"]).said
    assert ANNOUNCED not in caller(target=after).call(["1"]).said


@pytest.mark.parametrize(("text", "why"), [("mot " * 150, "secondes à l'oral"), ("Panne <grave>", "les signes < et >"), ("   ", "vide"),
                                           ("Panne {jours}", "accolades")])
def test_an_announcement_twilio_cannot_read_is_refused_in_french(live, ivr_cli, text, why):
    result = ivr_cli("incident", "set", text)
    assert result.exit_code == 1 and why in result.output and "Traceback" not in result.output


def test_an_until_in_the_past_or_malformed_is_refused(live, ivr_cli):
    assert "déjà passée" in ivr_cli("incident", "set", TEXT, "--until", "2020-01-01 10:00").output
    assert "AAAA-MM-JJ HH:MM" in ivr_cli("incident", "set", TEXT, "--until", "demain").output


# ---- experiments -------------------------------------------------------------------------------------
B_TEXT = "Étape 1. Votre application e-CPS est-elle à jour ? Si non, tapez 1. Si oui, tapez 2."


def test_an_experiment_gives_each_call_a_stable_arm_heard_recorded_and_passed_to_the_agent(live, caller, ivr_cli, make_app):
    started = ivr_cli("experiment", "start", "etape1.question", B_TEXT, "--share", "50", "--flow", str(ROOT / "flows" / "ecps.yaml"),
                      "--prompts", str(ROOT / "prompts"))
    assert started.exit_code == 0, started.output
    other = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_RELOAD_INTERVAL="0")
    (running,) = live.extensions["ivr"].experiments.running()
    experiment = Experiment(running["id"], "etape1.question", B_TEXT, 50)
    seen = set()
    # Calls with random CallSids: at least 8, and until both arms came (all 8 in one arm happens
    # once in 128 runs at a share of 50 %).
    for number in range(64):
        if number >= 8 and seen == {"A", "B"}:
            break
        call = caller(target=(live, other)[number % 2])  # the call's arm is the same on every server
        result = call.call(["0"])
        arm = engine.arm_of(call.call_sid, experiment)
        seen.add(arm)
        assert (heard(B_TEXT) in result.said) == (arm == "B")
        record = live.extensions["ivr"].records.get(call.call_sid)
        assert record["arms"] == {"etape1.question": arm}
        assert record["context"]["experiments"] == {"etape1.question": arm}
        events = live.extensions["ivr"].records.events(call.call_sid)
        assert events[0]["event"] == "experiment" and events[0]["detail"]["arm"] == arm
    assert seen == {"A", "B"}
    shown = ivr_cli("experiment", "show", "etape1.question", "--flow", str(ROOT / "flows" / "ecps.yaml"), "--prompts", str(ROOT / "prompts"))
    assert shown.exit_code == 0 and "Verdict, sur la résolution sans conseiller : pas encore assez de données" in shown.output
    assert "l'étape « etape1_a_jour »" in shown.output


def test_the_wording_b_is_checked_before_the_experiment_starts(live, ivr_cli):
    files = ["--flow", str(ROOT / "flows" / "ecps.yaml"), "--prompts", str(ROOT / "prompts")]
    refused = ivr_cli("experiment", "start", "etape1.question", "Étape 1. Tapez {inconnu}.", *files)
    assert refused.exit_code == 1 and "{inconnu} n'est pas une valeur connue" in refused.output
    assert "n'existe pas" in ivr_cli("experiment", "start", "etape9.rien", "Bonjour.", *files).output
    assert ivr_cli("experiment", "show").output.startswith("Aucune expérience en cours")


def test_keeping_b_makes_it_a_console_change_with_history(live, caller, ivr_cli):
    files = ["--flow", str(ROOT / "flows" / "ecps.yaml"), "--prompts", str(ROOT / "prompts")]
    assert ivr_cli("experiment", "start", "etape1.question", B_TEXT, *files).exit_code == 0
    again = ivr_cli("experiment", "start", "etape1.question", B_TEXT, *files)
    assert again.exit_code == 1 and "déjà en cours" in again.output
    stopped = ivr_cli("experiment", "stop", "etape1.question", "--keep", "B", *files)
    assert stopped.exit_code == 0 and "B devient la phrase" in stopped.output
    (entry,) = live.extensions["ivr"].overrides.history()
    assert entry["after"] == B_TEXT and entry["who"] == "nadia" and "B gardé" in entry["action"]
    live.extensions["ivr"].library.current(now=time.monotonic() + 60)
    assert heard(B_TEXT) in caller(target=live).call(["1"]).said  # every call now


def test_the_verdict_reads_the_intervals():
    clear = stats.difference(20, 100, 40, 100)
    assert clear.clear and round(clear.value, 2) == 0.2 and clear.low > 0
    # Newcombe's interval: one call each way is no evidence, and no bound passes 100 points.
    tiny = stats.difference(0, 1, 1, 1)
    assert not tiny.clear and tiny.high <= 1.0
    assert not stats.difference(1, 2, 2, 2).clear and stats.difference(1, 2, 2, 2).high <= 1.0
    # Calls still needed, against the standard formula (20 % vs 25 %, 80 % power): 1,982 at 50/50.
    unclear = stats.difference(20, 100, 25, 100)
    assert not unclear.clear and 1900 <= stats.calls_needed(unclear, 100, 100, 0.5) <= 2100
    assert stats.difference(5000, 10000, 5040, 10000).negligible  # no difference worth having
    assert stats.difference(0, 0, 1, 1) is None
    assert stats.points(0.042) == "+4,2 points"
    assert abs(stats.wilson(0, 10)[0]) < 1e-12 and 0.27 < stats.wilson(0, 10)[1] < 0.28


def synthetic_experiment(tmp_path):
    """An experiment on etape1.question in a database of its own: (flow, db, experiment, records)."""
    from ivr.call.library import load_bundle
    from ivr.storage.db import SQLite
    from ivr.storage.experiments import Experiments
    from ivr.storage.records import CallRecords

    flow = load_bundle(ROOT / "flows" / "ecps.yaml", ROOT / "prompts")[0].flow
    db = SQLite(tmp_path / "ivr.sqlite3")
    number = Experiments(db).start("etape1.question", B_TEXT, 50, "nadia", 1000.0)
    return flow, db, Experiment(number, "etape1.question", B_TEXT, 50), CallRecords(db)


def test_figures_per_arm_and_a_french_verdict(tmp_path):
    from ivr.call.session import Conditions, Keys
    from ivr.storage.experiments import Experiments
    from ivr.supervisor import experiments as figures_module

    flow, db, experiment, records = synthetic_experiment(tmp_path)
    for index in range(400):
        session, _ = engine.start(flow, f"CA{index:032d}", "+33612345678", 2000.0 + index, Conditions(experiments=(experiment,)))
        solved = session.arms["etape1.question"] == "B" or index % 3 == 0  # B solves every call, A one in three
        for key in (["1", "1", "1", "5"] if solved else ["0"]):
            session, _ = engine.step(flow, session, Keys(session.node, session.phase, key, 2001.0 + index))
        records.progress(session, None, 0)
    data = figures_module.figures(db, Experiments(db).get("etape1.question"), flow)
    assert data["arms"]["A"]["calls"] + data["arms"]["B"]["calls"] == 400
    assert data["verdict"].startswith("B fait mieux que A (écart de +")
    assert "intervalle à 95 % de +" in data["verdict"]


# ---- satisfaction --------------------------------------------------------------------------------------
def test_a_call_the_ivr_solved_is_rated_once_and_silence_ends_politely(live, caller):
    call = caller()
    result = call.call(["1", "1", "1", "4"])
    assert "Pour noter cet appel, tapez une touche de 1 à 5 : 1 pour pas du tout satisfait, 5 pour très satisfait." in result.said
    assert result.said[-2:] == ["Merci pour votre note.", "Merci de votre appel, au revoir."]
    record = live.extensions["ivr"].records.get(call.call_sid)
    assert (record["outcome"], record["rating"], record["rating_channel"]) == ("solved", 4, "voice")
    quiet = caller().call(["1", "1", "1", "."])
    assert quiet.said[-1] == "Merci de votre appel, au revoir." and quiet.said.count(quiet.questions[-1].said[0]) == 1
    other_key = caller().call(["2", "2", "1", "1", "9"])  # Bravo, then a key that is no rating: goodbye, not asked again
    assert other_key.end == "hangup" and "Merci pour votre note." not in other_key.said


@pytest.mark.parametrize(("field", "result"), [("DialCallStatus", "completed"), ("QueueResult", "bridged")])
def test_after_the_agent_the_caller_is_asked_to_rate(make_app, caller, field, result):
    app = make_app(AGENT_NUMBER="+33140000000")
    call = caller(target=app)
    call.call([*TO_STEP4, "0"], hang_up_status=False)
    _, body = call.post("http://localhost/voice/transfer-done", call.params(**{field: result}))
    assert "Votre échange avec le conseiller est terminé. Pour le noter" in body and "<Gather" in body
    _, body = call.post("http://localhost/voice/answer?node=note_conseiller&phase=ask", call.params(Digits="5"))
    assert "Merci pour votre note." in body and "<Hangup" in body
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="300"))
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert (record["outcome"], record["rating"], record["rating_channel"]) == ("transferred", 5, "voice")


@responses.activate
def test_a_caller_gone_after_the_agent_is_asked_by_sms_and_the_reply_is_kept(make_app, caller):
    twilio_accepts()
    app = make_app(AGENT_NUMBER="+33140000000", TWILIO_ACCOUNT_SID=ACCOUNT, IVR_SMS_FROM="+33700000000")
    call = caller(target=app)
    call.call([*TO_STEP4, "0"], hang_up_status=False)
    _, body = call.post("http://localhost/voice/transfer-done", call.params(DialCallStatus="completed", CallStatus="completed"))
    assert "<Gather" not in body  # the caller is gone: nobody would hear the question
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="300"))
    (sent,) = responses.calls
    assert parse_qs(sent.request.body)["Body"][0].startswith("e-CPS : notez votre appel à l'assistance de 1 à 5")
    sms = Caller(FlaskTransport(app.test_client()), "http://localhost", TOKEN, caller=call.caller)

    def text(body):
        status, answer = sms.post("http://localhost/sms", {"From": call.caller, "To": "+33700000000", "Body": body, "MessageSid": "SM1"})
        assert status == 200 and "<Message>" in answer
        return answer

    assert "répondez par un seul chiffre, de 1 à 5" in text("super !")
    assert "Merci pour votre note." in text("4")
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert (record["rating"], record["rating_channel"]) == (4, "sms")
    stranger = Caller(FlaskTransport(app.test_client()), "http://localhost", TOKEN)
    _, answer = stranger.post("http://localhost/sms", {"From": "+33699999999", "To": "+33700000000", "Body": "5", "MessageSid": "SM2"})
    assert "Ce numéro ne reçoit pas de messages." in answer.replace("&#39;", "'")
    unsigned = app.test_client().post("/sms", data={"From": call.caller, "Body": "1"})
    assert unsigned.status_code == 403


def test_satisfaction_false_in_the_flow_asks_no_rating(make_app, caller, files):
    path = files / "flows" / "ecps.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("satisfaction: note_conseiller", "satisfaction: false"), encoding="utf-8")
    app = make_app(IVR_FLOW=str(path), IVR_PROMPTS=str(files / "prompts"), AGENT_NUMBER="+33140000000")
    result = caller(target=app).call(["1", "1", "1"])
    assert result.end == "hangup" and not any("Pour noter cet appel" in text for text in result.said)
    call = caller(target=app)
    call.call(["0"], hang_up_status=False)
    _, body = call.post("http://localhost/voice/transfer-done", call.params(DialCallStatus="completed"))
    assert "<Gather" not in body


def test_ratings_in_the_report_per_outcome(live, caller, ivr_cli):
    for rating in ("5", "4", "2"):
        caller().call(["1", "1", "1", rating])
    caller().call(["2", "2", "1", "1", "3"])
    report = ivr_cli("report")
    assert "Satisfaction : 3,5 sur 5 (4 notes ; 1 : 0, 2 : 1, 3 : 1, 4 : 1, 5 : 1)" in report.output
    assert "par issue : " in report.output and "résolu par le serveur vocal : 3,67 sur 5 (3)" in report.output
    assert "orienté vers le service (test « Bravo ») : 3 sur 5 (1)" in report.output
    assert "par version du parcours : " in report.output
    data = json.loads(ivr_cli("report", "--json").output)["satisfaction"]
    assert data["answers"] == 4 and data["distribution"]["5"] == 1 and data["by_outcome"]["service"]["mean"] == 3


@responses.activate
def test_a_flex_call_ended_by_the_conference_is_asked_by_sms_and_only_asked_calls_may_answer(make_app, caller):
    twilio_accepts()
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, TWILIO_ACCOUNT_SID=ACCOUNT, IVR_SMS_FROM="+33700000000")
    solved = caller(target=app)
    solved.call(["1", "1", "1", "5"])  # rated on the line: never asked by SMS
    flex = caller(target=app, caller="+33611111111")
    flex.call(["0"], hang_up_status=False)  # to the queue; an agent accepts the Task: Flex moves the call to its conference
    flex.post("http://localhost/voice/transfer-done", flex.params(QueueResult="redirected", QueueTime="20"))
    flex.post("http://localhost/voice/status", flex.params(CallStatus="completed", CallDuration="300"))  # the conference ends the call
    sent = [c for c in responses.calls if "/Messages.json" in c.request.url and "From=%2B33700000000" in (c.request.body or "")]
    assert len(sent) == 1 and parse_qs(sent[0].request.body)["To"] == ["+33611111111"]  # (not what an earlier test's thread sends)
    sms = Caller(FlaskTransport(app.test_client()), "http://localhost", TOKEN)

    def text(number, body):
        return sms.post("http://localhost/sms", {"From": number, "To": "+33700000000", "Body": body, "MessageSid": "SM1"})[1].replace("&#39;", "'")

    assert "Ce numéro ne reçoit pas de messages." in text(solved.caller, "1")  # not asked: its voice rating stays
    assert app.extensions["ivr"].records.get(solved.call_sid)["rating"] == 5
    assert "Merci pour votre note." in text("+33611111111", "3")
    assert "Votre note est déjà enregistrée." in text("+33611111111", "1")
    assert app.extensions["ivr"].records.get(flex.call_sid)["rating"] == 3


def test_an_experiment_that_measures_nothing_is_refused(live, ivr_cli):
    files = ["--flow", str(ROOT / "flows" / "ecps.yaml"), "--prompts", str(ROOT / "prompts")]
    same = live.extensions["ivr"].bundle().prompts.text("etape1.question")
    assert "la même que l'actuelle" in ivr_cli("experiment", "start", "etape1.question", same, *files).output
    assert "n'est dite à aucune étape" in ivr_cli("experiment", "start", "incident.suite", "Restez en ligne.", *files).output


def test_a_caller_who_acted_after_the_announcement_is_not_counted_as_leaving_because_of_it(live, caller, ivr_cli):
    assert ivr_cli("incident", "set", TEXT).exit_code == 0
    caller(target=live).call(["9", "9"])  # two wrong keys at the first question, then hangs up
    caller(target=live).call([])  # hangs up at once
    assert json.loads(ivr_cli("report", "--json").output)["incident"] == {"calls": 2, "hung_up_after_announcement": 1}


def test_every_figure_at_the_nodes_is_compared_reach_and_median_time_included(tmp_path):
    from ivr.call.session import Conditions, Keys, NoInput
    from ivr.storage.experiments import Experiments
    from ivr.supervisor import experiments as figures_module

    flow, db, experiment, records = synthetic_experiment(tmp_path)
    for index in range(200):
        start = 2000.0 + index * 100
        session, _ = engine.start(flow, f"CA{index:032d}", "+33612345678", start, Conditions(experiments=(experiment,)))
        slow = 9 if session.arms["etape1.question"] == "B" else 3  # B's callers take longer to answer
        session, _ = engine.step(flow, session, Keys(session.node, session.phase, "1", start + slow + index % 3))
        session, _ = engine.step(flow, session, NoInput(session.node, session.phase, start + 40))
        records.progress(session, None, 0)
    data = figures_module.figures(db, Experiments(db).get("etape1.question"), flow)
    measures = {c["measure"]: c for c in data["comparisons"]}
    assert {"etape1_a_jour.reach", "etape1_a_jour.time", "etape1_a_jour.repeat", "etape1_a_jour.dropped"} <= set(measures)
    assert measures["etape1_a_jour.time"]["verdict"].startswith("B prend plus de temps que A (écart de +6,0 s")
    assert measures["etape1_a_jour.reach"]["verdict"].startswith("pas de différence qui compte")  # every call reaches it
