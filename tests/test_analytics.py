"""Figures on a known set of calls, played through the real engine and records with a fixed clock."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from click.testing import CliRunner
from conftest import ROOT

from ivr.call import engine
from ivr.call.library import load_bundle
from ivr.call.session import Keys, NoInput
from ivr.cli import main
from ivr.storage.db import SQLite
from ivr.storage.records import CallRecords
from ivr.supervisor import analytics

DAY1 = analytics.day_bounds(date(2026, 11, 23), date(2026, 11, 23))[0] + 9 * 3600  # 09:00 Paris
DAY2 = DAY1 + 86400


@pytest.fixture(scope="module")
def flow():
    bundle, _ = load_bundle(ROOT / "flows" / "ecps.yaml", ROOT / "prompts")
    return bundle.flow


def play(records, flow, call_sid, start, script, end_status="completed"):
    """Play (node, key-or-None, seconds-after-previous) through the engine; record like the webhooks do."""
    session, _ = engine.start(flow, call_sid, "+33612345678", start)
    records.progress(session, None, 0)
    now = start
    for key, wait in script:
        now += wait
        seen = len(session.history)
        event = Keys(session.node, session.phase, key, now) if key else NoInput(session.node, session.phase, now)
        session, _ = engine.step(flow, session, event)
        records.progress(session, None, seen)
        if session.ended:
            break
    records.close(call_sid, end_status, now + 5, int(now + 5 - start))
    return session


@pytest.fixture
def db(tmp_path, flow):
    database = SQLite(tmp_path / "ivr.sqlite3")
    records = CallRecords(database)
    # Day 1: solved at step 1 (10 s on the question), Bravo, transfer by 0 at step 3 after a silence.
    play(records, flow, "CA1", DAY1, [("1", 10), ("1", 60), ("1", 5), (None, 6)])
    play(records, flow, "CA2", DAY1 + 100, [("2", 4), ("2", 6), ("1", 30), ("1", 3), (None, 6)])
    play(records, flow, "CA3", DAY1 + 200, [("2", 8), ("2", 6), (None, 26), ("0", 10)])
    # Day 2: a wrong key then hang-up at step 3; a call that hangs up at the first question.
    play(records, flow, "CA4", DAY2, [("2", 12), ("7", 5), ("2", 5)])
    play(records, flow, "CA5", DAY2 + 100, [("*", 20)])
    # A console simulation: never counted.
    play(records, flow, "CAtry" + "0" * 29, DAY2 + 200, [("1", 1), ("1", 1), ("1", 1), (None, 6)])
    return database


def test_outcomes_and_containment(db):
    data = analytics.figures(db, *analytics.day_bounds(date(2026, 11, 23), date(2026, 11, 24)))
    assert data["calls"] == 5
    assert data["outcomes"] == {"hung_up": 2, "solved": 1, "service": 1, "transferred": 1}
    assert data["contained"] == 2 and data["containment_rate"] == pytest.approx(0.4)
    assert data["solved_by_step"] == {1: 1}
    assert data["transferred_by_reason"] == {"caller_request": 1}
    assert data["hung_up_by_node"] == {"etape3_test": 1, "etape1_a_jour": 1}


def test_funnel(db):
    data = analytics.figures(db, *analytics.day_bounds(date(2026, 11, 23), date(2026, 11, 24)))
    assert data["funnel"] == {1: 5, 2: 0, 3: 3, 4: 0, 5: 0, 6: 0}


def test_per_node_figures(db):
    nodes = analytics.figures(db, *analytics.day_bounds(date(2026, 11, 23), date(2026, 11, 24)))["nodes"]
    first = nodes["etape1_a_jour"]
    assert first["reach"] == 5
    # Time at the first question: 10, 4, 8, 12 s, and CA5 until its hang-up 25 s after the start.
    assert first["median_time_s"] == 10
    assert first["repeat_rate"] == pytest.approx(1 / 5)
    assert first["drop_off_rate"] == pytest.approx(1 / 5)
    android = nodes["etape1_android"]
    assert android["reach"] == 3 and android["invalid_rate"] == pytest.approx(1 / 3)
    test = nodes["etape3_test"]
    assert test["reach"] == 3 and test["silence_rate"] == 0  # silence at a wait step is patience, not a failure
    assert test["drop_off_rate"] == pytest.approx(1 / 3)


def test_period_and_days(db):
    day1 = analytics.figures(db, *analytics.day_bounds(date(2026, 11, 23), date(2026, 11, 23)))
    assert day1["calls"] == 3
    both = analytics.figures(db, *analytics.day_bounds(date(2026, 11, 23), date(2026, 11, 24)))
    assert both["days"] == [{"day": "2026-11-23", "calls": 3, "contained": 2}, {"day": "2026-11-24", "calls": 2, "contained": 0}]
    assert analytics.figures(db, *analytics.day_bounds(date(2026, 11, 25), date(2026, 11, 25)))["calls"] == 0


def test_csv_one_row_per_call(db):
    text = analytics.calls_csv(db, *analytics.day_bounds(date(2026, 11, 23), date(2026, 11, 24)))
    assert text.startswith("\ufeff")  # a French Excel reads the accents right (issue 34)
    rows = list(csv.reader(io.StringIO(text[1:]), delimiter=";"))
    assert rows[0] == list(analytics.CSV_HEADINGS) and rows[0][3] == "Issue"
    assert [row[0] for row in rows[1:]] == ["CA1", "CA2", "CA3", "CA4", "CA5"]
    assert rows[1][3:7] == ["résolu par le serveur vocal", "1", "fin_resolu_au_revoir", ""]
    assert rows[3][6] == "l'appelant a demandé un conseiller"
    assert rows[1][1] == "23/11/2026 09:00"  # Paris time, as everywhere else


def test_ivr_report_prints_the_figures(db, tmp_path):
    result = CliRunner().invoke(main, ["report", "--from", "2026-11-23", "--to", "2026-11-24", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Appels du 23/11/2026 au 24/11/2026 : 5" in out
    assert "Taux de résolution sans conseiller : 40 % (2 appels)" in out
    assert "Transférés à un conseiller : 1 (l'appelant a demandé un conseiller : 1)" in out
    assert "Entonnoir : étape 1 : 5 → étape 2 : 0 → étape 3 : 3" in out
    assert any(line.startswith("etape1_a_jour") and "20 %" in line for line in out.splitlines())


def test_ivr_report_json_and_bad_date(db, tmp_path):
    result = CliRunner().invoke(main, ["report", "--from", "2026-11-23", "--to", "2026-11-24", "--json", "--data-dir", str(tmp_path)])
    assert '"containment_rate": 0.4' in result.output
    bad = CliRunner().invoke(main, ["report", "--from", "23/11/2026", "--data-dir", str(tmp_path)])
    assert bad.exit_code != 0 and "AAAA-MM-JJ" in bad.output
