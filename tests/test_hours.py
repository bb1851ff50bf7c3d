"""Opening hours with a fixed clock, and what a caller gets when the service is closed."""

from __future__ import annotations

from datetime import datetime

import pytest
from click.testing import CliRunner
from conftest import ROOT

from ivr.call.hours import PARIS, load
from ivr.cli import main

API = {"Authorization": "Bearer cb-token"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


@pytest.fixture(scope="module")
def hours():
    opening, problems = load(ROOT / "flows" / "horaires.yaml")
    assert problems == []
    return opening


@pytest.mark.parametrize(
    ("moment", "is_open", "spoken"),
    [
        ("2026-11-26 10:00", True, None),  # a Thursday morning
        ("2026-11-26 08:29", False, "aujourd'hui à 8 heures 30"),  # before opening
        ("2026-11-26 21:00", False, "demain à 8 heures 30"),  # a weeknight
        ("2026-11-27 18:00", False, "lundi 30 novembre à 8 heures 30"),  # Friday, closing time
        ("2026-11-29 11:00", False, "demain à 8 heures 30"),  # a Sunday
        ("2026-11-11 10:00", False, "demain à 8 heures 30"),  # Armistice Day, a Wednesday
        ("2026-12-24 10:00", False, "lundi 28 décembre à 8 heures 30"),  # exceptional closure, Christmas, weekend
    ],
)
def test_opening_hours(hours, moment, is_open, spoken):
    assert hours.is_open(at(moment)) is is_open
    if spoken:
        assert hours.spoken_opening(at(moment)) == spoken


def test_no_hours_means_always_open(tmp_path):
    opening, _ = load(None)
    assert opening.is_open(at("2026-11-29 03:00"))
    forced, _ = load(ROOT / "flows" / "horaires.yaml", always_open=True)
    assert forced.is_open(at("2026-12-25 03:00"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('semaine:\n  lundi: ["8h30-18h"]\n', "n'est pas une plage"),
        ('semaine:\n  Lundi: ["08:30-18:00"]\n', "« Lundi » n'est pas un jour"),
        ('semaine:\n  lundi: ["18:00-08:30"]\n', "n'est pas une plage"),
        ("semaine: {}\nfermetures:\n  - {du: demain}\n", "une fermeture s'écrit"),
        ("semaine: {}\nouverture: 8\n", "rubrique inconnue « ouverture »"),
    ],
)
def test_broken_hours_are_refused_with_the_line(tmp_path, text, message):
    path = tmp_path / "horaires.yaml"
    path.write_text(text, encoding="utf-8")
    opening, problems = load(path)
    assert opening is None and any(message in p.message and p.line >= 1 for p in problems), problems


@pytest.fixture
def closed_app(make_app):
    sunday_night = at("2026-11-29 03:00").timestamp()
    return make_app(IVR_ALWAYS_OPEN="", IVR_HOURS=str(ROOT / "flows" / "horaires.yaml"), IVR_CLOCK=lambda: sunday_night,
                    TWILIO_WORKFLOW_SID="WW" + "f" * 32, IVR_API_TOKEN="cb-token")


def test_open_hours_transfer_as_usual(make_app, caller):
    tuesday = at("2026-11-24 10:00").timestamp()
    app = make_app(IVR_ALWAYS_OPEN="", IVR_HOURS=str(ROOT / "flows" / "horaires.yaml"), IVR_CLOCK=lambda: tuesday,
                   TWILIO_WORKFLOW_SID="WW" + "f" * 32)
    assert caller(target=app).call(["0"]).end == "enqueue"


def test_closed_caller_hears_when_it_opens_and_asks_to_be_called_back(closed_app, caller):
    call = caller(target=closed_app, caller="+33611223344")
    result = call.call(["2", "2", "2", "0", "1", "1"])
    assert "Le service client est fermé, il ouvre demain à 8 heures 30" in result.said[0]  # at the welcome, once
    assert "Nous vous rappellerons au 06 11 22 33 44. Si c'est le bon numéro, tapez 1. Pour en donner un autre, tapez 2." in result.said
    assert result.end == "hangup" and result.said[-1].startswith("C'est noté. Un conseiller vous rappellera")
    assert not any("relation avec un conseiller" in text for text in result.said)
    record = closed_app.extensions["ivr"].records.get(call.call_sid)
    assert (record["outcome"], record["transfer_reason"]) == ("callback", "caller_request")
    (request,) = closed_app.extensions["ivr"].callbacks.list()
    assert (request["number"], request["kind"], request["call_sid"]) == ("+33611223344", "callback", call.call_sid)
    assert request["context"]["ecps_test"] == "KO" and request["context"]["reason"] == "caller_request"


def test_callback_on_another_number_checked_on_the_keypad(closed_app, caller):
    result = caller(target=closed_app).call(["0", "1", "2", "0612", "0140000000", "1"])
    assert "Ce numéro a 4 chiffres ; il en faut 10." in result.said
    assert any("Vous avez tapé : 01 40 00 00 00." in text for text in result.said)
    assert closed_app.extensions["ivr"].callbacks.list()[0]["number"] == "+33140000000"


def test_closed_caller_can_leave_a_voice_message(closed_app, caller):
    result = caller(target=closed_app).call(["0", "2", "rec"])
    assert result.said[-1].startswith("Votre message est enregistré.")
    (request,) = closed_app.extensions["ivr"].callbacks.list()
    assert request["kind"] == "voicemail" and request["message_url"].startswith("https://api.twilio.com/")


def test_callbacks_api_oldest_first_and_done(closed_app, caller):
    first = caller(target=closed_app)
    first.call(["0", "1", "1"])
    caller(target=closed_app).call(["0", "2", "rec"])
    client = closed_app.test_client()
    listed = client.get("/api/callbacks", headers=API).json
    assert [item["call_sid"] for item in listed][0] == first.call_sid and len(listed) == 2
    assert client.get("/api/callbacks").status_code == 401
    done = client.post(f"/api/callbacks/{listed[0]['id']}/done", json={"agent": "nadia"}, headers=API)
    assert done.status_code == 200
    assert [item["id"] for item in client.get("/api/callbacks", headers=API).json] == [listed[1]["id"]]
    assert client.post(f"/api/callbacks/{listed[0]['id']}/done", headers=API).status_code == 404
    everything = client.get("/api/callbacks?all=1", headers=API).json
    assert everything[0]["status"] == "done" and everything[0]["done_by"] == "nadia"


@pytest.mark.only_backend("sqlite", "the command reads the embedded database of --data-dir")
def test_ivr_callbacks_lists_and_marks_done(make_app, caller, tmp_path, backend):
    sunday_night = at("2026-11-29 03:00").timestamp()
    app = make_app(IVR_ALWAYS_OPEN="", IVR_HOURS=str(ROOT / "flows" / "horaires.yaml"), IVR_CLOCK=lambda: sunday_night,
                   IVR_DATA_DIR=str(tmp_path / "cb"))
    caller(target=app).call(["0", "1", "1"])
    runner = CliRunner()
    listing = runner.invoke(main, ["callbacks", "--data-dir", str(tmp_path / "cb")])
    assert "29/11/2026 03:00  rappel  +33612345678" in listing.output and "Transfert : l'appelant a demandé un conseiller." in listing.output
    assert runner.invoke(main, ["callbacks", "--done", "1", "--agent", "nadia", "--data-dir", str(tmp_path / "cb")]).exit_code == 0
    assert "Aucune demande" in runner.invoke(main, ["callbacks", "--data-dir", str(tmp_path / "cb")]).output
