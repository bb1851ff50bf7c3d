"""The supervisor's side of « every path ends well »: console changes visible in the command line,
the simulator's keys as Twilio sends them, errors in one French sentence, and figures that read right."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from conftest import ROOT, TOKEN, VALID_RPPS, WORKFLOW
from test_cli import edit

from ivr.cli import main
from ivr.storage.db import SQLite
from ivr.storage.overrides import PromptOverrides
from ivr.storage.records import CallRecords
from ivr.supervisor import analytics

CONSOLE_TEXT = "Étape 5. Nous réinstallons ensemble votre application, en trois actions."


@pytest.fixture
def console_changed(files, tmp_path):
    """A server's data folder where the console changed one sentence."""
    data = tmp_path / "server-data"
    data.mkdir()
    PromptOverrides(SQLite(data / "ivr.sqlite3")).set("etape5.introduction", CONSOLE_TEXT, "nadia", None)
    return data


def cli(files, *args, data=None, **kwargs):
    options = ["--flow", str(files / "flows" / "ecps.yaml"), "--prompts", str(files / "prompts")]
    if data is not None:
        options += ["--data-dir", str(data)]
    return CliRunner().invoke(main, [args[0], *options, *args[1:]], **kwargs)


# ---- 11. console changes in the command line --------------------------------------------------------
def test_preview_shows_what_callers_hear_and_names_the_console_changes(files, console_changed):
    result = cli(files, "preview", "etape5_introduction", data=console_changed)
    assert result.exit_code == 0, result.output
    assert CONSOLE_TEXT in result.output and "etape5.introduction" in result.output.split("\n")[0]
    assert "--file-only" in result.output
    alone = cli(files, "preview", "etape5_introduction", "--file-only", data=console_changed)
    assert CONSOLE_TEXT not in alone.output and "Nous allons réinstaller votre e-CPS" in alone.output


@pytest.mark.only_backend("sqlite", "the console change is in the embedded database of --data-dir")
def test_validate_prints_the_version_the_server_serves(files, console_changed, make_app, backend):
    result = cli(files, "validate", data=console_changed)
    assert result.exit_code == 0, result.output
    app = make_app(IVR_DATA_DIR=str(console_changed), IVR_FLOW=str(files / "flows" / "ecps.yaml"), IVR_PROMPTS=str(files / "prompts"))
    served = app.extensions["ivr"].library.current().version
    assert f"version {served}" in result.output
    alone = cli(files, "validate", "--file-only", data=console_changed)
    assert f"version {served}" not in alone.output


def test_simulate_plays_the_console_changes(files, console_changed):
    result = cli(files, "simulate", "--keys", "2 2 2 1 2", "--service", "ouvert", data=console_changed)
    assert result.exit_code == 0, result.output
    assert CONSOLE_TEXT in result.output


def test_the_server_warns_when_a_file_edit_is_hidden_by_a_console_change(make_app, files, caplog):
    app = make_app(IVR_FLOW=str(files / "flows" / "ecps.yaml"), IVR_PROMPTS=str(files / "prompts"), IVR_RELOAD_INTERVAL="0")
    ivr = app.extensions["ivr"]
    ivr.overrides.set("etape5.introduction", CONSOLE_TEXT, "nadia", None)
    ivr.library.current(now=time.monotonic() + 10)
    edit(files / "prompts" / "fr-FR.yaml", "Étape 5. Nous allons réinstaller votre e-CPS, en trois actions.",
         "Étape 5. Réinstallons votre e-CPS, en trois actions.")
    with caplog.at_level(logging.WARNING):
        ivr.library.current(now=time.monotonic() + 20)
    assert "« etape5.introduction » edited in the file, but callers still hear the console's change" in caplog.text


# ---- 12. keys as Twilio posts them ----------------------------------------------------------------------
def test_simulate_strips_the_final_hash_as_twilio_does(files):
    keys = f"2 2 2 1 2 1 1 1 2 1 {VALID_RPPS}# 1 # 1 1 1 2 15# 1 # 1 11# 2 2"
    result = cli(files, "simulate", "--keys", keys, "--service", "ouvert")
    assert result.exit_code == 0, result.output
    assert "Vous avez tapé : 1 0 0, 1 2 3, 4 5 6, 7 3." in result.output
    document = json.loads(result.output.split("Fiche transmise au conseiller :\n", 1)[1])
    assert document["identifier"]["value"] == VALID_RPPS and document["questionnaire"]["card_number"] is None


# ---- 13. errors, not tracebacks ---------------------------------------------------------------------------
def one_sentence(result, *words):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert all(word in result.output for word in words), result.output


def test_simulate_against_nothing_or_with_a_wrong_token(files, live_server):
    one_sentence(cli(files, "simulate", "--url", "http://127.0.0.1:9", "--keys", "1"), "ne répond pas")
    one_sentence(cli(files, "simulate", "--url", live_server, "--token", "faux", "--keys", "1"),
                 "le jeton (--token ou TWILIO_AUTH_TOKEN) n'est pas celui du serveur")


def test_report_with_an_unreachable_database(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ivr.cli", "report"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "la base de données ne répond pas" in result.stderr and "DATABASE_URL" in result.stderr


def test_commands_outside_the_server_folder_make_no_database(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ivr.cli", "report"], cwd=tmp_path, capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "IVR_DATA_DIR")})
    assert result.returncode == 1 and "aucune base de données" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_report_refuses_a_period_backwards_and_gives_iso_dates(tmp_path):
    SQLite(tmp_path / "ivr.sqlite3")
    backwards = CliRunner().invoke(main, ["report", "--from", "2026-12-10", "--to", "2026-12-01", "--data-dir", str(tmp_path)])
    one_sentence(backwards, "après sa fin")
    as_json = CliRunner().invoke(main, ["report", "--from", "2026-11-01", "--to", "2026-11-30", "--json", "--data-dir", str(tmp_path)])
    assert json.loads(as_json.output)["period"] == {"from": "2026-11-01", "to": "2026-11-30"}


def test_version_and_help_in_french():
    assert CliRunner().invoke(main, ["--version"]).output.startswith("ivr, serveur vocal e-CPS, version ")
    bare = CliRunner().invoke(main, [], prog_name="ivr")
    assert bare.output.startswith("Utilisation : ivr") and "Commandes" in bare.output and "Usage" not in bare.output


def _commands(group, path=()):
    for name, command in group.commands.items():
        yield (*path, name)
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))


def test_every_command_s_help_is_french_down_to_click_s_own_words():
    """A supervisor reads `--help` of any command: no TEXT, FILE, INTEGER, [required] or Usage left."""
    english = re.compile(r"\b(TEXT|FILE|INTEGER|FLOAT|RANGE|PATH|DIRECTORY|KEY|NODE|USERNAME|Usage|required|default)\b")
    commands = list(_commands(main))
    assert ("experiment", "stop") in commands and ("purge",) in commands
    for command in commands:
        shown = CliRunner().invoke(main, [*command, "--help"], prog_name="ivr").output
        assert shown.startswith("Utilisation : ivr"), command
        assert not english.findall(shown), (command, english.findall(shown))
    assert "--older-than NOMBRE" in CliRunner().invoke(main, ["purge", "--help"]).output
    assert "[obligatoire]" in CliRunner().invoke(main, ["experiment", "stop", "--help"]).output


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_preview_audio_to_an_unwritable_place_fails(files):
    result = cli(files, "preview", "accueil", "--audio", "/nonexistent/folder/accueil.wav")
    one_sentence(result, "impossible d'écrire /nonexistent/folder/accueil.wav : le dossier /nonexistent/folder n'existe pas")


def test_preview_audio_without_espeak_says_how_to_install_it(files, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on this PATH
    result = cli(files, "preview", "accueil", "--audio", str(tmp_path / "accueil.wav"))
    one_sentence(result, "espeak-ng n'est pas installé", "apt-get install espeak-ng")


@pytest.mark.parametrize(("setting", "value"), [("IVR_SESSION_TTL", "abc"), ("IVR_DB_TIMEOUT", "vite"), ("IVR_RETENTION_DAYS", "")])
def test_a_bad_setting_stops_the_server_in_one_french_sentence(tmp_path, setting, value):
    env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "IVR_DATA_DIR": str(tmp_path), setting: value}
    result = subprocess.run([sys.executable, "-c", "import ivr.wsgi"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 4
    lines = [line for line in result.stderr.splitlines() if "Le serveur vocal ne démarre pas" in line]
    assert len(lines) == 1 and setting in lines[0] and "Traceback" not in result.stderr


def test_a_broken_flow_stops_the_server_with_file_and_line(tmp_path, files):
    edit(files / "flows" / "ecps.yaml", "goto: etape1_android}", "goto: etape_inconnue}")
    env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "IVR_DATA_DIR": str(tmp_path), "IVR_FLOW": str(files / "flows" / "ecps.yaml")}
    result = subprocess.run([sys.executable, "-c", "import ivr.wsgi"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 4 and "Traceback" not in result.stderr
    assert "Le serveur vocal ne démarre pas" in result.stderr and "ecps.yaml:" in result.stderr and "etape_inconnue" in result.stderr


def test_yaml_mistakes_are_explained_in_french(files):
    line = (files / "prompts" / "fr-FR.yaml").read_text(encoding="utf-8").splitlines().index("accueil:") + 1
    edit(files / "prompts" / "fr-FR.yaml", "accueil:\n", "accueil: [\n")
    result = cli(files, "validate")
    assert result.exit_code == 1 and f"fr-FR.yaml:{line + 1}: erreur: YAML illisible : " in result.output  # where the parser stops
    assert not any(english in result.output for english in ("expected", "could not", "found", "while"))


# ---- 14. figures and the console --------------------------------------------------------------------------
def test_rates_are_per_visit_never_above_100(tmp_path):
    from ivr.call import engine
    from ivr.call.library import load_bundle
    from ivr.call.session import Keys

    flow = load_bundle(ROOT / "flows" / "ecps.yaml", ROOT / "prompts")[0].flow
    records = CallRecords(SQLite(tmp_path / "ivr.sqlite3"))
    session, _ = engine.start(flow, "CA1", "+33612345678", 1000.0)
    for key in ["2", "2", "2", "1", "2", "1", "1", "1", "2", "1", "1", "2", "3"]:  # three wrong RPPS in one visit
        session, _ = engine.step(flow, session, Keys(session.node, session.phase, key, 1001.0))
    records.progress(session, None, 0)
    node = analytics.figures(records.db, 0, 10**10)["nodes"]["etape6_rpps"]
    assert node["invalid_rate"] == 1.0


def test_outcomes_are_named_in_french_in_the_report():
    assert analytics.outcome_label("callback") == "demande de rappel"
    data = {"calls": 1, "contained": 0, "containment_rate": 0.0, "outcomes": {"callback": 1}, "solved_by_step": {},
            "transferred_by_reason": {}, "hung_up_by_node": {}, "funnel": {}, "nodes": {}}
    from datetime import date

    assert "demande de rappel : 1" in analytics.report(data, date(2026, 12, 1), date(2026, 12, 1))


def test_user_add_says_the_account_exists_before_asking_a_password(tmp_path):
    data = ["--data-dir", str(tmp_path)]
    assert CliRunner().invoke(main, ["user", "add", "claire", "--password", "un-mot-de-passe-long-1", *data]).exit_code == 0
    again = CliRunner().invoke(main, ["user", "add", "claire", *data], input="")
    assert again.exit_code == 1 and "existe déjà" in again.output and "Mot de passe" not in again.output


def test_user_list_with_nobody_says_so(tmp_path):
    SQLite(tmp_path / "ivr.sqlite3")
    assert CliRunner().invoke(main, ["user", "list", "--data-dir", str(tmp_path)]).output.startswith("Aucun compte")


def test_login_form_keeps_the_user_name_after_a_wrong_password(app):
    import re

    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/login").get_data(as_text=True)).group(1)
    page = client.post("/console/login", data={"username": "claire", "password": "faux", "csrf_token": token}).get_data(as_text=True)
    assert 'value="claire"' in page


def test_console_404_is_in_french(app):
    response = app.test_client().get("/console/nulle-part")
    assert response.status_code == 404 and "Cette page n&#39;existe pas" in response.get_data(as_text=True)


@pytest.fixture
def live_server(make_app):
    """A real HTTP server on a free port, for `ivr simulate --url`."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW)
    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_one_call_is_singular_in_the_figures():
    assert analytics.calls_word(1) == "1 appel" and analytics.calls_word(0) == "0 appel" and analytics.calls_word(12) == "12 appels"


# ---- ivr validate: the new lints ---------------------------------------------------------------------------
def test_validate_finds_a_loop_with_no_exit_when_no_agent_can_answer(files):
    # The after-hours menu only leads to an agent (which, at night, leads back to it) or to itself.
    (files / "flows" / "ecps.yaml").write_text("""
start: accueil
after_hours: ferme
nodes:
  accueil: {type: menu, prompt: etape1.question, choices: {"1": fin, "2": conseiller}}
  conseiller: {type: transfer, prompt: transfert.demande, reason: caller_request}
  fin: {type: end, prompt: fin.resolu, outcome: solved}
  ferme: {type: menu, prompt: horaires.choix, choices: {"1": conseiller, "2": ferme_bis, "3": ferme_bis}}
  ferme_bis: {type: menu, prompt: horaires.choix_court, choices: {"1": ferme, "2": ferme, "3": ferme}}
""", encoding="utf-8")
    result = cli(files, "validate")
    assert "étape « ferme » : quand aucun conseiller ne peut répondre" in result.output
    assert "étape « ferme_bis » : quand aucun conseiller ne peut répondre" in result.output
    assert "l'appelant tournerait en rond" in result.output
    assert "étape « accueil » : quand" not in result.output


def test_validate_asks_for_agreement_after_a_number(files):
    edit(files / "prompts" / "fr-FR.yaml", "Le temps d'attente est d'environ {minutes:minute}.",
         "Le temps d'attente est d'environ {minutes} minutes.")
    result = cli(files, "validate", "--strict")
    assert result.exit_code == 1
    assert "« {minutes} minutes » sera lu « 1 minutes » quand minutes vaut 1 ; écrivez {minutes:minute} pour l'accord" in result.output


def test_an_agreement_on_something_that_is_no_number_is_refused(files):
    edit(files / "prompts" / "fr-FR.yaml", "La touche {touche} ne correspond", "La touche {touche:touche} ne correspond")
    result = cli(files, "validate")
    assert result.exit_code == 1 and "{touche:touche} : seul un nombre" in result.output


def test_at_start_the_server_warns_of_a_file_edit_hidden_by_the_console(make_app, files, caplog, backend):
    app = make_app(IVR_FLOW=str(files / "flows" / "ecps.yaml"), IVR_PROMPTS=str(files / "prompts"))
    before = app.extensions["ivr"].bundle().prompts.text("etape5.introduction")
    app.extensions["ivr"].overrides.set("etape5.introduction", CONSOLE_TEXT, "nadia", before)
    edit(files / "prompts" / "fr-FR.yaml", "Étape 5. Nous allons réinstaller votre e-CPS, en trois actions.",
         "Étape 5. Réinstallons votre e-CPS, en trois actions.")
    with caplog.at_level(logging.WARNING):
        make_app(IVR_FLOW=str(files / "flows" / "ecps.yaml"), IVR_PROMPTS=str(files / "prompts"))  # a restart
    assert "« etape5.introduction » was edited in the file after the console changed it" in caplog.text


def test_a_guide_sms_without_a_link_is_flagged(files):
    edit(files / "prompts" / "fr-FR.yaml", "Guide pas à pas : {lien}\n  deconnexion", "Aide e-CPS : http://exemple\n  deconnexion")
    result = cli(files, "validate", "--strict")
    assert result.exit_code == 1 and "« sms.tester_ecps » : ce SMS n'a pas de lien https:// valide" in result.output


def test_the_whisper_spells_a_corsican_finess_and_says_dates():
    from ivr.call.twiml import dates_for_the_ear, digit_by_digit

    assert digit_by_digit("FINESS : 2A0012345.") == "FINESS : 2 A 0 0 1 2 3 4 5."
    assert dates_for_the_ear("Appel du 02/12/2026 à 03 h 41 depuis") == "Appel du 2 décembre à 3 heures 41 depuis"


def test_inference_rules_are_checked_and_drawn(files):
    good = cli(files, "graph")
    assert "déduit : si android_15_et_navigateur = oui, alors support = téléphone" in good.output
    assert "guide visuel : « C'est résolu » → fin_resolu ; « Ça ne marche pas » : étape 1 → etape1_android, étape 2 → etape3_test" \
        in good.output
    edit(files / "flows" / "ecps.yaml", "then: {support: téléphone,", "then: {support: ordinateur, inconnu: x,")
    result = cli(files, "validate")
    assert result.exit_code == 1
    assert "« ordinateur » n'est pas une réponse de l'étape « etape6_support »" in result.output
    assert "aucune étape ne demande « inconnu »" in result.output
