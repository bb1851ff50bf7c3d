"""The supervisors' `ivr` command, on good and deliberately broken copies of the files."""

from __future__ import annotations

import json
import shutil
import tempfile

import pytest
from click.testing import CliRunner
from conftest import VALID_RPPS

from ivr.cli import main


@pytest.fixture
def run(files):
    """Run `ivr` on the editable copies."""

    def runner(*args, input=None, env=None):
        options = ["--flow", str(files / "flows" / "ecps.yaml"), "--prompts", str(files / "prompts")]
        command, rest = args[0], list(args[1:])
        return CliRunner().invoke(main, [command, *options, *rest], input=input, env=env)

    return runner


def edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def append(path, text):
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_help_is_in_french():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Outils des superviseurs" in result.output and "Afficher cette aide" in result.output
    for command in ["validate", "preview", "simulate", "graph"]:
        assert command in result.output


def test_validate_clean_files(run):
    result = run("validate")
    assert result.exit_code == 0
    assert result.output.startswith("OK : ") and "0 avertissement(s)" in result.output


def test_validate_error_exits_1_with_file_and_line(run, files):
    edit(files / "flows" / "ecps.yaml", "prompt: etape4.deconnexion", "prompt: etape4.disconnexion")
    result = run("validate")
    assert result.exit_code == 1
    assert "ecps.yaml:" in result.output and "la phrase « etape4.disconnexion » n'existe pas" in result.output
    assert "REFUSÉ : 1 erreur(s)" in result.output


# Each lint finding, made to fire by one deliberate edit: (file, edit, expected text, severity).
def _unused(files):
    append(files / "prompts" / "fr-FR.yaml", "\nextra:\n  oubliee: Une phrase que plus personne ne dit.\n")


def _no_way_out(files):
    flow = files / "flows" / "ecps.yaml"
    edit(flow, '      "2": {answer: "oui", goto: etape6_transfert}', '      "2": {answer: "oui", goto: boucle_a}')
    append(flow, "\n  boucle_a:\n    type: wait\n    prompt: commun.quand_fait\n    choices:\n      \"1\": boucle_b\n"
                 "\n  boucle_b:\n    type: wait\n    prompt: commun.quand_fait\n    choices:\n      \"1\": boucle_a\n")


def _not_announced(files):
    edit(files / "flows" / "ecps.yaml", '      "2": {answer: oui, goto: etape1_android}\n',
         '      "2": {answer: oui, goto: etape1_android}\n      "3": {answer: ne sait pas, goto: etape1_android}\n')


def _announced_not_accepted(files):
    edit(files / "prompts" / "fr-FR.yaml", "    Si elle est à jour, tapez 2.\n", "    Si elle est à jour, tapez 2. Si vous ne savez pas, tapez 5.\n")


def _too_long(files):
    edit(files / "prompts" / "fr-FR.yaml", "    Étape 5. Nous allons réinstaller votre e-CPS, en trois actions.",
         "    Étape 5. " + "Nous allons réinstaller votre e-CPS, en trois actions, calmement. " * 8)


def _bad_characters(files):
    edit(files / "prompts" / "fr-FR.yaml", "Parfait, votre problème est résolu.", "Parfait \U0001F600, votre problème est résolu.")


def _duplicate_key(files):
    edit(files / "prompts" / "fr-FR.yaml", "  resolu_court: >-", "  resolu: Doublon.\n  resolu_court: >-")


def _twilio_limit(files):
    edit(files / "prompts" / "fr-FR.yaml", "Parfait, votre problème est résolu.", "Parfait. " * 460)


@pytest.mark.parametrize(
    ("breaker", "message", "exit_code"),
    [
        (_unused, "la phrase « extra.oubliee » n'est utilisée par aucune étape", 0),
        (_no_way_out, "étape « boucle_a » : boucle sans issue", 0),
        # What breaks a call is an error (issue 34): the last good version keeps serving.
        (_not_announced, "« etape1.question » n'annonce pas la touche 3, que l'étape « etape1_a_jour »", 1),
        (_announced_not_accepted, "« etape1.question » annonce la touche 5, que l'étape « etape1_a_jour »", 1),
        (_too_long, "« etape5.introduction » dure environ", 0),
        (_bad_characters, "caractères que la voix ne sait pas lire (U+1F600)", 1),
        (_duplicate_key, "la clé « resolu » est écrite deux fois", 1),
        (_twilio_limit, "Twilio n'en lit pas plus de 4096", 1),
    ],
    ids=["unused-prompt", "no-way-out", "key-not-announced", "announced-not-accepted", "too-long", "bad-characters",
         "duplicate-key", "twilio-length"],
)
def test_each_lint_finding(run, files, breaker, message, exit_code):
    breaker(files)
    result = run("validate")
    assert message in result.output, result.output
    line = next(line for line in result.output.splitlines() if message in line)
    assert (".yaml:" in line) and (": avertissement: " in line if exit_code == 0 else ": erreur: " in line)
    assert result.exit_code == exit_code
    if exit_code == 0:
        assert run("validate", "--strict").exit_code == 1


def test_max_seconds_is_adjustable(run):
    result = run("validate", "--max-seconds", "10")
    assert "« etape2.introduction » dure environ" in result.output
    assert result.exit_code == 0


def test_preview_shows_text_keys_timeouts_and_twiml(run):
    result = run("preview", "etape3_test")
    assert result.exit_code == 0
    out = result.output
    assert "Étape « etape3_test » (wait, étape 3 du guide)" in out
    assert "« Étape 3. Testez votre e-CPS" in out
    assert "1 → fin_service (réponse enregistrée : Bravo)" in out and "2 → etape4_deconnexion (réponse enregistrée : KO)" in out
    assert "Pendant qu'il agit (toutes les 20 s, jusqu'à 900 s)" in out
    assert '<Gather action="/voice/answer?node=etape3_test&amp;phase=ask"' in out and '<Pause length="20" />' in out


def test_preview_of_a_say_node_shows_what_follows(run):
    result = run("preview", "etape5_introduction")
    assert "« Étape 5. Nous allons réinstaller" in result.output and "« Première action : supprimez votre e-CPS." in result.output


def test_preview_unknown_node(run):
    result = run("preview", "etape9")
    assert result.exit_code != 0 and "l'étape « etape9 » n'existe pas" in result.output


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_preview_audio_writes_a_wav(run, tmp_path):
    target = tmp_path / "etape1.wav"
    result = run("preview", "etape1_a_jour", "--audio", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:4] == b"RIFF" and target.stat().st_size > 10_000


def test_preview_audio_without_espeak_says_so(run, tmp_path):
    result = run("preview", "etape1_a_jour", "--audio", str(tmp_path / "x.wav"), env={"PATH": str(tmp_path)})
    assert result.exit_code == 1
    assert "espeak-ng n'est pas installé" in result.output
    assert "« Étape 1." in result.output  # the text preview still came out


def test_simulate_scripted_call_to_solution(run, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the simulation's own database goes
    result = run("simulate", "--keys", "1 1 1")
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.glob("ivr-simulate-*"))  # and is gone once the call is played
    out = result.output
    assert "[etape1_a_jour] appelant : 1" in out
    assert "serveur : « Parfait, votre problème est résolu." in out
    assert "Résultat enregistré : résolu par le serveur vocal (solved), étape 1" in out


def test_simulate_scripted_transfer_prints_the_context(run):
    keys = f"2 2 2 1 2 1 1 1 2 1 {VALID_RPPS} 1 . 1 1 1 2 15 1 # 1 11 2 2"
    result = run("simulate", "--keys", keys, "--service", "ouvert")
    assert result.exit_code == 0, result.output
    assert "Fin de l'appel : transfert vers la file des conseillers" in result.output
    document = json.loads(result.output.split("Fiche transmise au conseiller :\n", 1)[1])
    assert document["identifier"]["value"] == VALID_RPPS and document["reason"] == "diagnostic_complete"


def test_simulate_with_the_service_closed_offers_a_callback(run):
    result = run("simulate", "--keys", "0 1 1", "--service", "ferme")
    assert result.exit_code == 0, result.output
    assert "Le service client est fermé, il ouvre demain à 8 heures 30" in result.output  # a Sunday night, said at the welcome
    assert "Nous vous rappellerons au 06 12 34 56 78." in result.output
    assert "Résultat enregistré : demande de rappel (callback)" in result.output


def test_simulate_interactive_with_silence_and_hang_up(run):
    result = run("simulate", input=".\n2\nq\n")
    assert result.exit_code == 0, result.output
    assert "serveur : « Je n'ai pas eu de réponse. »" in result.output
    assert "Fin de l'appel : l'appelant a raccroché" in result.output
    assert "Résultat enregistré : raccroché en cours de route (hung_up)" in result.output


def test_graph_mermaid(run):
    result = run("graph")
    assert result.exit_code == 0
    assert result.output.startswith("flowchart TD\n")
    assert '    etape3_test -->|"1 Bravo"| fin_service' in result.output
    assert '    fin_resolu_au_revoir(["fin_resolu_au_revoir<br/>end"])' in result.output


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed (apt-get install graphviz)")
def test_graph_svg(run, tmp_path):
    result = run("graph", "--svg", str(tmp_path / "flow.svg"), "-o", str(tmp_path / "flow.mmd"))
    assert result.exit_code == 0, result.output
    assert "<svg" in (tmp_path / "flow.svg").read_text() and "etape6_transfert" in (tmp_path / "flow.svg").read_text()
    assert (tmp_path / "flow.mmd").read_text().startswith("flowchart TD")


def test_graph_svg_without_graphviz_says_so(run, tmp_path):
    result = run("graph", "--svg", str(tmp_path / "flow.svg"), env={"PATH": str(tmp_path)})
    assert result.exit_code == 1 and "Graphviz (dot) n'est pas installé" in result.output


def test_prompts_export_writes_console_changes_into_the_yaml(run, files, tmp_path):
    from ivr.storage.db import SQLite
    from ivr.storage.overrides import PromptOverrides

    data_dir = tmp_path / "data"
    overrides = PromptOverrides(SQLite(data_dir / "ivr.sqlite3"))
    overrides.set("etape1.question", "Étape 1. L'application est-elle à jour ? Si non, tapez 1. Si oui, tapez 2.", "claire", None)
    overrides.set("fin.resolu", "C'est réglé. Merci, au revoir.", "claire", None)
    options = ["--flow", str(files / "flows" / "ecps.yaml"), "--prompts", str(files / "prompts"), "--data-dir", str(data_dir)]
    shown = CliRunner().invoke(main, ["prompts", "export", *options])
    assert "console : C'est réglé. Merci, au revoir." in shown.output
    result = CliRunner().invoke(main, ["prompts", "export", *options, "--write", "--clear"])
    assert result.exit_code == 0, result.output
    text = (files / "prompts" / "fr-FR.yaml").read_text(encoding="utf-8")
    assert "  question: >-\n    Étape 1. L'application est-elle à jour ? Si non, tapez 1. Si oui, tapez 2.\n  question_courte:" in text
    assert "  resolu: >-\n    C'est réglé. Merci, au revoir.\n  service:" in text
    assert text.startswith("# Les phrases que l'appelant entend")  # comments kept
    assert run("validate").exit_code == 0
    assert overrides.all() == {}


def test_user_commands(tmp_path):
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    assert runner.invoke(main, ["user", "add", "claire", "--role", "editor", *data], input="mot-de-passe-long\nmot-de-passe-long\n").exit_code == 0
    short = runner.invoke(main, ["user", "add", "bob", "--password", "court", *data])
    assert short.exit_code == 1 and "trop court" in short.output
    again = runner.invoke(main, ["user", "add", "claire", "--password", "mot-de-passe-long", *data])
    assert "existe déjà" in again.output
    assert runner.invoke(main, ["user", "list", *data]).output == "claire\teditor\n"
    assert runner.invoke(main, ["user", "passwd", "claire", "--password", "nouveau-mot-de-passe", *data]).exit_code == 0
    assert runner.invoke(main, ["user", "remove", "claire", *data]).exit_code == 0
    assert runner.invoke(main, ["user", "list", *data]).output.startswith("Aucun compte")


def test_validate_checks_the_opening_hours_too(run, files):
    hours = files / "flows" / "horaires.yaml"
    hours.write_text('semaine:\n  lundi: ["8h30-18h"]\n', encoding="utf-8")
    result = run("validate", "--hours", str(hours))
    assert result.exit_code == 1
    assert f"{hours}:2: erreur: lundi : « 8h30-18h » n'est pas une plage" in result.output
