"""What callers said is kept where it must be, readable by the server alone, and not past the
retention period; numbers they said aloud are masked in what is kept for figures."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest
import responses
from click.testing import CliRunner
from conftest import ROOT

from ivr.call.identifiers import masked
from ivr.cli import main
from ivr.storage.callbacks import Callbacks
from ivr.storage.db import SQLite
from ivr.storage.records import CallRecords
from ivr.storage.retention import purge

DAY = 86400


def test_the_embedded_database_is_readable_by_the_server_user_only(tmp_path):
    SQLite(tmp_path / "ivr.sqlite3").execute("INSERT INTO revisions (name, value) VALUES ('x', 1)")
    for name in ("ivr.sqlite3", "ivr.sqlite3-wal"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


@pytest.mark.parametrize("said, kept", [("mon RPPS c'est 10012345673", "mon RPPS c'est •••••••••73"), ("oui", "oui"),
                                        ("le 12 puis 4567", "le 12 puis ••67")])
def test_numbers_said_aloud_are_masked(said, kept):
    assert masked(said) == kept


def test_words_not_understood_are_kept_masked_in_the_events(app, caller):
    call = caller()
    call.call(["dit:mon numéro est 10012345673", "0"])
    events = app.extensions["ivr"].records.events(call.call_sid)
    heard = [event["detail"]["heard"] for event in events if "heard" in event["detail"]]
    assert heard == ["mon numéro est •••••••••73"]


def test_purge_removes_what_is_past_the_period_and_keeps_the_rest(app, caller):
    db = app.extensions["ivr"].db
    old, recent = caller(), caller()
    for call in (old, recent):
        call.call(["0"])
    db.execute("UPDATE calls SET started_at = started_at - ? WHERE call_sid = ?", (40 * DAY, old.call_sid))
    db.execute("UPDATE events SET at = at - ? WHERE call_sid = ?", (40 * DAY, old.call_sid))
    Callbacks(db).add(old.call_sid, "+33612345678", "callback", {}, None, time.time() - 40 * DAY)
    removed = purge(db, time.time() - 30 * DAY)
    assert (removed["calls"], removed["callbacks"]) == (1, 1) and removed["events"] >= 3
    records = CallRecords(db)
    assert records.get(old.call_sid) is None and records.events(old.call_sid) == []
    assert records.get(recent.call_sid) is not None and records.events(recent.call_sid)


def test_ivr_purge_says_what_it_removed_and_refuses_a_bad_period_in_french(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["purge", "--older-than", "30", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "aucune base de données" in missing.output  # none made quietly
    assert not (tmp_path / "ivr.sqlite3").exists()
    SQLite(tmp_path / "ivr.sqlite3")  # the server's database
    done = runner.invoke(main, ["purge", "--older-than", "30", "--data-dir", str(tmp_path)])
    assert done.exit_code == 0 and done.output.startswith("Supprimé : événements d'appel : 0, appels : 0")
    for args, message in ((["purge"], "il manque l'option « --older-than »"),
                          (["purge", "--older-than", "-3"], "valeur refusée pour l'option « --older-than »"),
                          (["nimporte"], "cette commande n'existe pas"),
                          (["report", "--nope"], "l'option « --nope » n'existe pas")):
        result = subprocess.run([sys.executable, "-m", "ivr.cli", *args, "--data-dir", str(tmp_path)] if args[0] == "purge" else
                                [sys.executable, "-m", "ivr.cli", *args], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1  # one sentence


@responses.activate
def test_purge_deletes_the_voice_messages_at_twilio_and_keeps_what_could_not_be(make_app, caller):
    """Callers are told their message is kept N days: past them it is deleted at Twilio too."""
    from test_calls import TO_STEP6

    from ivr.delivery.sms import recording_deleter

    app = make_app(AGENT_NUMBER="+33140000000")  # a message is left before the transfer
    db = app.extensions["ivr"].db
    calls = [caller(target=app), caller(target=app)]
    for call in calls:
        call.call([*TO_STEP6, "9", ".", "1", "1", "1", "2", "15", "1", "#", "1", "11", "2", "1", "rec"])
    urls = [CallRecords(db).get(call.call_sid)["context"]["questionnaire"]["voice_message_url"] for call in calls]
    db.execute("UPDATE calls SET started_at = started_at - ?", (40 * DAY,))
    account = "AC" + "1" * 32
    base = f"https://api.twilio.com/2010-04-01/Accounts/{account}/Recordings"
    sids = [url.rsplit("/", 1)[-1] for url in urls]
    responses.delete(f"{base}/{sids[0]}.json", status=204)
    responses.delete(f"{base}/{sids[1]}.json", status=500, json={"code": 20500, "message": "error", "status": 500})
    removed = purge(db, time.time() - 30 * DAY, recording_deleter(account, "token"))
    assert removed["calls"] == 1
    assert CallRecords(db).get(calls[0].call_sid) is None
    assert CallRecords(db).get(calls[1].call_sid) is not None  # its message is still at Twilio: tried again next time
    responses.replace(responses.DELETE, f"{base}/{sids[1]}.json", status=404, json={"code": 20404, "message": "not found", "status": 404})
    assert purge(db, time.time() - 30 * DAY, recording_deleter(account, "token"))["calls"] == 1


@pytest.mark.logs_errors()
def test_purge_without_twilio_credentials_keeps_the_only_link_to_a_message_still_at_twilio(make_app, caller, caplog):
    """Before: `ivr purge` without TWILIO_ACCOUNT_SID deleted the record holding the message's URL,
    the only way anyone could ever delete the recording that stays at Twilio."""
    from test_calls import TO_STEP6

    app = make_app(AGENT_NUMBER="+33140000000")
    db = app.extensions["ivr"].db
    with_message, without = caller(target=app), caller(target=app)
    with_message.call([*TO_STEP6, "9", ".", "1", "1", "1", "2", "15", "1", "#", "1", "11", "2", "1", "rec"])
    without.call(["0"])
    db.execute("UPDATE calls SET started_at = started_at - ?", (40 * DAY,))
    db.execute("UPDATE events SET at = at - ?", (40 * DAY,))
    removed = purge(db, time.time() - 30 * DAY)  # what `ivr purge` does without TWILIO_ACCOUNT_SID
    assert removed["calls"] == 1
    assert CallRecords(db).get(with_message.call_sid) is not None and CallRecords(db).get(without.call_sid) is None
    assert "set TWILIO_ACCOUNT_SID" in caplog.text
