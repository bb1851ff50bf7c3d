"""Issue 34: where two supervisor tools meet (file and console, rollback and experiments, hours and
simulator), they agree on what callers hear. Each numbered defect of the issue has its test here."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import heard

from ivr.cli import main


@pytest.fixture
def live(make_app, files):
    return make_app(IVR_FLOW=str(files / "flows" / "ecps.yaml"), IVR_PROMPTS=str(files / "prompts"), IVR_RELOAD_INTERVAL="0")


def edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def cli(tmp_path, backend, files):
    """`ivr COMMAND…` on the data of the test's apps and the editable files (`--flow`, `--prompts`
    added when `files=True`), as the person « nadia »."""

    def run(*args, input=None, files_too=True, **env):
        options = ["--flow", str(files / "flows" / "ecps.yaml"), "--prompts", str(files / "prompts")] if files_too else []
        environment = {"DATABASE_URL": backend.get("DATABASE_URL", ""), "USER": "nadia", "IVR_PUBLIC_URL": "", **env}
        return CliRunner().invoke(main, [*args, *options, "--data-dir", str(tmp_path / "data")], env=environment, input=input)

    return run


def ivr(files, *args, input=None, env=None):
    command, rest = args[0], list(args[1:])
    options = ["--flow", str(files / "flows" / "ecps.yaml"), "--prompts", str(files / "prompts")]
    return CliRunner().invoke(main, [*command.split(), *options, *rest], input=input, env=env)


# ---- 1. what breaks a call is an error, wherever the edit comes from ----------------------------
QUESTION = "    Si elle est à jour, tapez 2.\n"


@pytest.mark.logs_errors("edited flow or prompts refused")
def test_a_key_no_choice_has_is_refused_by_the_server_and_the_last_good_version_serves(live, files, caller):
    version = live.extensions["ivr"].library.current().version
    edit(files / "prompts" / "fr-FR.yaml", QUESTION, "    Si elle est à jour, tapez 3.\n")
    result = caller(target=live).call(["2"])
    assert heard("Si elle est à jour, tapez 2.") in result.said[1]  # callers still hear the last good wording
    assert live.extensions["ivr"].library.current().version == version
    health = live.test_client().get("/health").json
    assert any("annonce la touche 3, que l'étape « etape1_a_jour »" in problem for problem in health["refused"])
    check = ivr(files, "validate", "--file-only")
    assert check.exit_code == 1 and ": erreur: « etape1.question » annonce la touche 3" in check.output


@pytest.mark.logs_errors("edited flow or prompts refused")
def test_a_read_back_without_the_digits_is_refused(live, files, caller):
    edit(files / "prompts" / "fr-FR.yaml", "Vous avez tapé : {chiffres}.", "Vous avez tapé votre numéro.")
    assert any("« saisie.relecture » doit contenir {chiffres}" in p.message for p in live.extensions["ivr"].library.reload())
    check = ivr(files, "validate", "--file-only")
    assert check.exit_code == 1 and "« saisie.relecture » doit contenir {chiffres}" in check.output


def test_a_value_the_server_does_not_fill_there_is_refused(files):
    edit(files / "prompts" / "fr-FR.yaml", QUESTION, "    Si elle est à jour, tapez 2. Le service ouvre {quand}.\n")
    check = ivr(files, "validate", "--file-only")
    assert check.exit_code == 1 and "« etape1.question » : {quand} n'est pas rempli dans cette phrase" in check.output


LONG_B = "Étape 1. " + "Regardez bien votre téléphone, sans vous presser. " * 9 + "Pas à jour : tapez 1. À jour : tapez 2."


def test_an_experiment_with_warnings_asks_as_the_console_does(live, cli):
    refused = cli("experiment", "start", "etape1.question", LONG_B)
    assert refused.exit_code == 1 and "« etape1.question » dure environ" in refused.output
    assert "--malgre-avertissements" in refused.output and live.extensions["ivr"].experiments.running() == []
    started = cli("experiment", "start", "etape1.question", LONG_B, "--malgre-avertissements")
    assert started.exit_code == 0, started.output
    assert [row["text_b"] for row in live.extensions["ivr"].experiments.running()] == [LONG_B]


def test_an_experiment_b_that_breaks_a_call_is_refused_even_so(live, cli):
    refused = cli("experiment", "start", "etape1.question", "Étape 1. À jour : tapez 2.", "--malgre-avertissements")
    assert refused.exit_code == 1 and "n'annonce pas la touche 1" in refused.output


# ---- 4. every problem of every file in one run, each at its true line ----------------------------
def test_an_unclosed_quote_is_reported_where_it_opens(files):
    path = files / "prompts" / "fr-FR.yaml"
    lines = path.read_text(encoding="utf-8").split("\n")
    at = next(n for n, line in enumerate(lines) if line.startswith("  android:"))
    lines[at : at + 3] = ['  android: "Avez-vous un téléphone Android 15 ou plus ? Si oui, tapez 1. Sinon, tapez 2.']
    path.write_text("\n".join(lines), encoding="utf-8")
    check = ivr(files, "validate", "--file-only")
    assert check.exit_code == 1
    assert f"fr-FR.yaml:{at + 1}: erreur: YAML illisible : un guillemet (\") ouvert sur cette ligne n'est pas refermé" in check.output


def test_one_run_lists_every_error_of_every_file(files):
    prompts = files / "prompts" / "fr-FR.yaml"
    edit(prompts, QUESTION, "    Si elle est à jour, tapez 3.\n")  # a key no choice has
    edit(prompts, "Parfait, votre problème est résolu.", "Parfait \U0001F600, votre problème est résolu.")  # an emoji
    text = prompts.read_text(encoding="utf-8").split("\n")
    at = next(n for n, line in enumerate(text) if line.startswith("  android_court:"))
    del text[at : at + 2]  # a sentence the flow needs
    prompts.write_text("\n".join(text), encoding="utf-8")
    edit(files / "flows" / "horaires.yaml", '  lundi: ["08:30-18:00"]', "  lundi: 08:30-18:00")
    check = ivr(files, "validate", "--file-only", "--hours", str(files / "flows" / "horaires.yaml"))
    assert check.exit_code == 1
    assert "la phrase « etape1.android_court » n'existe pas" in check.output
    assert "U+1F600" in check.output
    assert "« etape1.question » annonce la touche 3" in check.output and "« etape1.question » n'annonce pas la touche 2" in check.output
    assert "horaires.yaml:" in check.output
    assert "lundi : les plages s'écrivent entre crochets et guillemets : lundi: [\"08:30-18:00\"]" in check.output
    assert "REFUSÉ : 5 erreur(s)" in check.output, check.output
