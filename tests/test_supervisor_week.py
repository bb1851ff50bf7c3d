"""Issue 34: where two supervisor tools meet (file and console, rollback and experiments, hours and
simulator), they agree on what callers hear. Each numbered defect of the issue has its test here."""

from __future__ import annotations

from datetime import datetime

import pytest
from click.testing import CliRunner
from conftest import TOKEN, WORKFLOW, heard
from test_console import EDITOR, login

from ivr.call.hours import PARIS
from ivr.cli import main
from ivr.storage.users import Users


@pytest.fixture
def live(make_app, files):
    app = make_app(IVR_FLOW=str(files / "flows" / "ecps.yaml"), IVR_PROMPTS=str(files / "prompts"), IVR_RELOAD_INTERVAL="0")
    Users(app.extensions["ivr"].db).add(*EDITOR, "editor")
    return app


ORIGINAL = "Étape 1. Vérifiez sur votre téléphone si l'application e-CPS est à jour. Si elle n'est pas à jour, tapez 1. Si elle est à jour, tapez 2."
CONSOLE_TEXT = "Étape 1. Votre application e-CPS est-elle à jour ? Pas à jour : tapez 1. À jour : tapez 2."
FILE_TEXT = "Étape 1. Regardez si l'application e-CPS est à jour. Pas à jour : tapez 1. À jour : tapez 2."


def say_first(app, caller) -> str:
    """What a new caller hears at step 1's question, over signed webhooks."""
    result = caller(target=app).call(["0"])
    return result.said[1]


def publish(client, key, text, **form):
    return client.post(f"/console/prompts/{key}", data={"text": text, "csrf_token": client.token, **form})


def set_question_in_file(files, text):
    path = files / "prompts" / "fr-FR.yaml"
    lines = path.read_text(encoding="utf-8").split("\n")
    at = lines.index("  question: >-", lines.index("etape1:"))
    end = at + 1
    while lines[end].startswith("    "):
        end += 1
    lines[at:end] = ["  question: >-", f"    {text}"]
    path.write_text("\n".join(lines), encoding="utf-8")


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


# ---- 2. a rollback to the file's wording leaves no frozen copy ------------------------------------
def test_a_rollback_to_the_files_wording_withdraws_the_console_change(live, files, caller, cli):
    client = login(live, EDITOR)
    publish(client, "etape1.question", CONSOLE_TEXT)
    assert say_first(live, caller) == heard(CONSOLE_TEXT)
    (entry,) = live.extensions["ivr"].overrides.history()
    client.post(f"/console/history/{entry['id']}/rollback", data={"csrf_token": client.token})
    assert live.extensions["ivr"].overrides.all() == {}
    exported = cli("prompts", "export")
    assert exported.exit_code == 0 and "Aucune phrase modifiée dans la console" in exported.output
    assert "Modifiées dans la console" not in cli("validate").output
    # A later edit of that sentence in the file reaches callers.
    set_question_in_file(files, FILE_TEXT)
    assert say_first(live, caller) == heard(FILE_TEXT)


def test_a_file_edit_under_a_console_change_is_reported_with_the_one_action_that_resolves_it(live, files, caller, cli):
    client = login(live, EDITOR)
    publish(client, "etape1.question", CONSOLE_TEXT)
    set_question_in_file(files, FILE_TEXT)
    assert say_first(live, caller) == heard(CONSOLE_TEXT)  # the console's wording still wins: said, not silent
    checked = cli("validate")
    assert checked.exit_code == 0
    assert "« etape1.question » a été modifiée dans le fichier depuis sa modification dans la console (claire)" in checked.output
    assert "« ivr prompts reset etape1.question »" in checked.output
    page = client.get("/console/prompts/etape1.question").get_data(as_text=True)
    assert 'id="origin-advice"' in page and "Reprendre le texte du fichier" in page
    assert "a été modifiée dans le fichier" in cli("prompts", "export").output
    reset = cli("prompts", "reset", "etape1.question", "--par", "Nadia Benali")
    assert reset.exit_code == 0, reset.output
    assert say_first(live, caller) == heard(FILE_TEXT)
    last = live.extensions["ivr"].overrides.history()[0]
    assert (last["who"], last["action"], last["after"]) == ("Nadia Benali", "retour au texte du fichier", FILE_TEXT)
    assert "a été modifiée dans le fichier" not in cli("validate").output


def test_the_console_button_takes_the_files_wording_back(live, files, caller):
    client = login(live, EDITOR)
    publish(client, "etape1.question", CONSOLE_TEXT)
    set_question_in_file(files, FILE_TEXT)
    client.post("/console/prompts/etape1.question/reset", data={"csrf_token": client.token})
    assert live.extensions["ivr"].overrides.all() == {} and say_first(live, caller) == heard(FILE_TEXT)


# ---- 5. an experiment locks its sentence -------------------------------------------------------------
B_TEXT = "Étape 1. Votre application e-CPS est-elle à jour ? Si non, tapez 1. Si oui, tapez 2."


def test_publishing_sentence_a_during_its_experiment_is_refused_with_the_two_ways_out(live, caller, cli):
    client = login(live, EDITOR)
    client.post("/console/prompts/etape1.question/experiment", data={"text_b": B_TEXT, "share": "50", "csrf_token": client.token})
    (running,) = live.extensions["ivr"].experiments.running()
    refused = publish(client, "etape1.question", CONSOLE_TEXT)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 409 and "fausserait la comparaison" in page.replace("&#39;", "'")
    assert "Arrêter et garder A" in page and "Publier quand même et arrêter l'expérience" in page
    assert live.extensions["ivr"].overrides.all() == {} and live.extensions["ivr"].experiments.running() != []
    assert client.post("/console/history/1/rollback", data={"csrf_token": client.token}).status_code in (302, 404)
    published = publish(client, "etape1.question", CONSOLE_TEXT, end_experiment="1")
    assert published.status_code == 302
    assert live.extensions["ivr"].experiments.running() == []
    assert live.extensions["ivr"].overrides.all() == {"etape1.question": CONSOLE_TEXT}
    shown = cli("experiment", "show", "etape1.question")
    assert f"Expérience n° {running['id']}" in shown.output and "gardée : aucune, une nouvelle formulation a été publiée" in shown.output
    assert say_first(live, caller) == heard(CONSOLE_TEXT)


def test_sentence_a_edited_in_the_file_during_its_experiment_is_said(live, files, cli):
    assert cli("experiment", "start", "etape1.question", B_TEXT).exit_code == 0
    set_question_in_file(files, FILE_TEXT)
    checked = cli("validate")
    assert "la phrase A de l'expérience n° 1 sur « etape1.question » a changé depuis son début" in checked.output
    assert "la comparaison n'est plus valable" in cli("experiment", "show", "etape1.question").output


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


# ---- 3. opening hours are a supervised file like the others ------------------------------------------
TUESDAY_10 = datetime(2026, 12, 1, 10, 0, tzinfo=PARIS).timestamp()


@pytest.fixture
def hours_app(make_app, files, tmp_path):
    def build(**more):
        return make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_ALWAYS_OPEN="", IVR_HOURS=str(files / "flows" / "horaires.yaml"),
                        IVR_FLOW=str(files / "flows" / "ecps.yaml"), IVR_PROMPTS=str(files / "prompts"), IVR_CLOCK=lambda: TUESDAY_10,
                        IVR_RELOAD_INTERVAL="0", IVR_DATA_DIR=str(tmp_path / "data"), **more)

    return build


def agent_or_closed(app, caller) -> str:
    """What a caller pressing 0 at the first question gets: the queue, or the closed service."""
    result = caller(target=app).call(["0", "."])
    return "queue" if result.end == "enqueue" else "closed" if any("fermé" in text for text in result.said) else result.end


@pytest.mark.logs_errors("edited opening hours refused", "opening hours refused at start")
def test_hours_are_reloaded_live_a_broken_edit_is_refused_and_a_restart_serves_the_last_good_ones(hours_app, files, caller, cli):
    app = hours_app()
    assert agent_or_closed(app, caller) == "queue"
    hours = files / "flows" / "horaires.yaml"
    edit(hours, '  mardi: ["08:30-18:00"]', "  mardi: []")  # closed on Tuesdays from now on: no restart
    assert agent_or_closed(app, caller) == "closed"
    health = app.test_client().get("/health").json
    assert health["status"] == "ok" and "hours_refused" not in health
    edit(hours, "  mardi: []", "  mardi: 08:30-18:00")  # the natural slip
    assert agent_or_closed(app, caller) == "closed"  # the last good hours keep serving
    health = app.test_client().get("/health").json
    assert health["status"] == "degraded"
    (refused,) = health["hours_refused"]
    assert "horaires.yaml:8:" in refused and 'mardi: ["08:30-18:00"]' in refused
    checked = cli("validate", "--hours", str(hours))
    assert checked.exit_code == 1 and "mardi : les plages s'écrivent entre crochets et guillemets" in checked.output
    # A restart days later, on the broken file: the line stays up on the last hours accepted.
    again = hours_app()
    assert agent_or_closed(again, caller) == "closed"
    assert again.test_client().get("/health").json["status"] == "degraded"
    edit(hours, "  mardi: 08:30-18:00", '  mardi: ["08:30-18:00"]')  # fixed: served at once
    assert agent_or_closed(again, caller) == "queue" and again.test_client().get("/health").json["status"] == "ok"


def test_a_server_that_never_accepted_hours_says_why_it_cannot_start(make_app, files, tmp_path):
    from ivr.web.services import ConfigurationError

    edit(files / "flows" / "horaires.yaml", '  lundi: ["08:30-18:00"]', "  lundi: 08:30-18:00")
    with pytest.raises(ConfigurationError, match="lundi : les plages s'écrivent entre crochets"):
        make_app(IVR_ALWAYS_OPEN="", IVR_HOURS=str(files / "flows" / "horaires.yaml"), IVR_DATA_DIR=str(tmp_path / "fresh"))
    with pytest.raises(ConfigurationError, match="fichier introuvable"):
        make_app(IVR_ALWAYS_OPEN="", IVR_HOURS=str(tmp_path / "nope.yaml"), IVR_DATA_DIR=str(tmp_path / "fresh2"))


def test_simulate_and_validate_say_a_missing_hours_file(files, cli, tmp_path):
    simulated = cli("simulate", "--keys", "0", "--hours", str(tmp_path / "nope.yaml"), files_too=True)
    assert simulated.exit_code == 1 and "fichier introuvable" in simulated.output and "Traceback" not in simulated.output
    checked = cli("validate", "--hours", str(tmp_path / "nope.yaml"))
    assert checked.exit_code == 1 and "nope.yaml: erreur: fichier introuvable" in checked.output


# ---- 6. the simulator never pollutes ----------------------------------------------------------------------
def test_local_simulation_works_with_production_settings(cli):
    result = cli("simulate", "--keys", "1 1 1", "--service", "ouvert", IVR_PUBLIC_URL="https://ivr.example.fr/ecps",
                 TWILIO_AUTH_TOKEN="the-real-servers-token")
    assert result.exit_code == 0, result.output
    assert "Résultat enregistré : résolu par le serveur vocal (solved), étape 1" in result.output


@pytest.fixture
def served(make_app):
    """A running server with a helpdesk, reached over real HTTP by `ivr simulate --url`."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, HANDOFF_WEBHOOK_URL="https://helpdesk.example.fr/hook", IVR_WEBHOOK_SECRET="s" * 32,
                   IVR_OUTBOX_THREAD="0")
    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_simulated_call_on_a_running_server_stays_out_of_the_figures_and_the_helpdesk(served, cli):
    app, url = served
    result = cli("simulate", "--url", url, "--token", TOKEN, "--keys", "0")
    assert result.exit_code == 0, result.output
    ivr = app.extensions["ivr"]
    ivr.settle()
    (row,) = ivr.db.query("SELECT call_sid, simulated, outcome FROM calls")
    assert row["call_sid"].startswith("CAtry") and row["simulated"] == 1 and row["outcome"] == "transferred"
    assert ivr.db.query("SELECT * FROM outbox") == []
    assert "Aucun appel sur la période" in cli("report", files_too=False).output


# ---- 8. the small things a team meets on day one -------------------------------------------------------
@pytest.mark.parametrize(("args", "allowed"), [
    (["simulate", "--service", "nuit"], "(valeurs possibles : horaires, ouvert, ferme)"),
    (["user", "add", "marc", "--role", "admin"], "(valeurs possibles : viewer, editor)"),
    (["purge", "--older-than", "0"], "(un nombre plus grand que 0, par exemple 30 ou 0,5)"),
    (["experiment", "start", "etape1.question", "B", "--share", "100"], "(un nombre entier, au moins 1 et au plus 99)"),
])
def test_a_refused_value_says_the_allowed_ones(args, allowed):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and allowed in result.output and "Traceback" not in result.output


def test_purge_says_what_it_removed_in_french(live, cli):
    result = cli("purge", "--older-than", "30", files_too=False)
    assert result.exit_code == 0, result.output
    assert "appels : 0" in result.output and "demandes de rappel : 0" in result.output and "calls" not in result.output


def test_changes_are_recorded_under_the_persons_name_and_dates_read_one_way(live, cli):
    set_ = cli("incident", "set", "Pro Santé Connect est en panne.", "--until", "2099-12-06 12:30", "--par", "Nadia Benali", files_too=False)
    assert set_.exit_code == 0, set_.output
    assert "jusqu'au 06/12/2099 12:30" in set_.output
    shown = cli("incident", "show", files_too=False).output
    assert "jusqu'au 06/12/2099 12:30" in shown and "par Nadia Benali" in shown
    assert cli("experiment", "start", "etape1.question", B_TEXT).exit_code == 0  # --par defaults to the system user
    assert live.extensions["ivr"].experiments.running()[0]["started_by"] == "nadia"


def test_an_agent_without_done_is_refused(live, cli):
    result = cli("callbacks", "--agent", "nadia", files_too=False)
    assert result.exit_code == 1 and "--agent dit qui a traité une demande : il va avec --done N" in result.output


def test_the_ab_verdict_reads_like_a_person():
    from ivr.supervisor.experiments import _compare

    same = _compare("containment", "la résolution", True, 40, 100, 40, 100, 50, "appel")
    assert "+0,0" not in same["verdict"] and "écart de moins de 0,1 point" in same["verdict"]
    unclear = _compare("containment", "la résolution", True, 40, 100, 44, 100, 50, "appel")
    needed = unclear["verdict"].split("il faudrait environ ")[1].split(" appels")[0]
    assert needed.replace(" ", "").isdigit() and needed.replace(" ", "")[2:].strip("0") == "", needed  # two figures, « 2 300 »


# ---- the week, replayed --------------------------------------------------------------------------------
@pytest.mark.logs_errors("edited flow or prompts refused")
def test_a_supervisors_week_ends_with_every_tool_agreeing_on_what_callers_hear(hours_app, files, caller, cli):
    app = hours_app()
    Users(app.extensions["ivr"].db).add(*EDITOR, "editor")
    client = login(app, EDITOR)
    ivr_ = app.extensions["ivr"]

    def everyone_says(text: str, origin: str) -> None:
        """The server (a real signed call), the console's page, validate, preview and export agree."""
        assert say_first(app, caller) == heard(text)
        page = client.get("/console/prompts/etape1.question").get_data(as_text=True)
        assert ("la version de la console" in page) == (origin == "console")
        assert ("texte du fichier <code>" in page) == (origin == "fichier")
        preview = cli("preview", "etape1_a_jour")
        assert preview.exit_code == 0 and f"« {text} »  [etape1.question, {origin}]" in preview.output, preview.output
        exported = cli("prompts", "export", files_too=True).output
        assert ("Aucune phrase modifiée" in exported) == (origin == "fichier")
        checked = cli("validate", "--hours", str(files / "flows" / "horaires.yaml"))
        assert checked.exit_code == 0 and "avertissement: " not in checked.output, checked.output

    # Monday: a file edit.
    set_question_in_file(files, FILE_TEXT)
    everyone_says(FILE_TEXT, "fichier")
    # Tuesday: a console edit, then its rollback: the file speaks again, no copy left.
    publish(client, "etape1.question", CONSOLE_TEXT)
    everyone_says(CONSOLE_TEXT, "console")
    entry = ivr_.overrides.history()[0]
    client.post(f"/console/history/{entry['id']}/rollback", data={"csrf_token": client.token})
    everyone_says(FILE_TEXT, "fichier")
    # Wednesday: the file again, and a slip that would break calls, refused while the last good serves.
    set_question_in_file(files, ORIGINAL)
    everyone_says(ORIGINAL, "fichier")
    set_question_in_file(files, ORIGINAL.replace("tapez 2", "tapez 3"))
    assert say_first(app, caller) == heard(ORIGINAL)
    assert cli("validate").exit_code == 1
    set_question_in_file(files, ORIGINAL)
    # Thursday: an experiment, and an attempt to publish A during it.
    assert cli("experiment", "start", "etape1.question", B_TEXT, "--share", "50").exit_code == 0
    assert publish(client, "etape1.question", CONSOLE_TEXT).status_code == 409
    assert f"50 % des nouveaux appels entendent B « {B_TEXT} »" in cli("preview", "etape1_a_jour").output
    assert cli("experiment", "stop", "etape1.question", "--keep", "A").exit_code == 0
    everyone_says(ORIGINAL, "fichier")
    # Friday: the hours change (closed on Tuesdays from now on), no restart; the simulator with production settings.
    edit(files / "flows" / "horaires.yaml", '  mardi: ["08:30-18:00"]', "  mardi: []")
    assert agent_or_closed(app, caller) == "closed"
    simulated = cli("simulate", "--keys", "1 1 1", "--service", "ouvert", IVR_PUBLIC_URL="https://ivr.example.fr", TWILIO_AUTH_TOKEN="prod")
    assert simulated.exit_code == 0 and f"« {heard(ORIGINAL)} »" in simulated.output, simulated.output
    assert app.test_client().get("/health").json["status"] == "ok"


# ---- found by a fresh-eyes run of the week ------------------------------------------------------------
ANDROID = "    Si oui, tapez 1. Sinon, tapez 2.\n  android_court:"


@pytest.mark.logs_errors("edited flow or prompts refused", "flow or prompts refused at start")
def test_a_file_error_under_a_console_change_is_refused_and_a_restart_serves_the_last_published_version(live, make_app, files, caller, cli):
    client = login(live, EDITOR)
    console_text = "Avez-vous un téléphone Android 15 ou plus pour Pro Santé Connect ? Oui : tapez 1. Non : tapez 2."
    publish(client, "etape1.android", console_text)
    version = live.extensions["ivr"].library.current().version
    edit(files / "prompts" / "fr-FR.yaml", ANDROID, "    Si oui, tapez 1. Sinon, tapez 3.\n  android_court:")
    checked = cli("validate")
    assert checked.exit_code == 1, checked.output
    assert "que la modification de la console de « etape1.android » cache aujourd'hui" in checked.output
    assert live.extensions["ivr"].library.current().version == version  # refused by the server too
    assert live.test_client().get("/health").json["status"] == "degraded"
    # A restart on that file: the line stays up on the version last published.
    again = make_app(IVR_FLOW=str(files / "flows" / "ecps.yaml"), IVR_PROMPTS=str(files / "prompts"), IVR_RELOAD_INTERVAL="0")
    assert again.extensions["ivr"].library.current().version == version
    health = again.test_client().get("/health").json
    assert health["status"] == "degraded" and any("tapez 3" in p or "touche 3" in p for p in health["refused"])
    edit(files / "prompts" / "fr-FR.yaml", "    Si oui, tapez 1. Sinon, tapez 3.\n  android_court:", ANDROID)
    assert again.test_client().get("/health").json["status"] == "ok"


def test_the_console_asks_a_second_click_for_an_experiment_b_with_warnings(live):
    client = login(live, EDITOR)
    form = {"text_b": LONG_B, "share": "30", "csrf_token": client.token}
    page = client.post("/console/prompts/etape1.question/experiment", data=form).get_data(as_text=True)
    assert "Lancer malgré les avertissements" in page and "dure environ" in page
    assert live.extensions["ivr"].experiments.running() == []
    client.post("/console/prompts/etape1.question/experiment", data={**form, "confirm": "1"})
    assert [(row["text_b"], row["share"]) for row in live.extensions["ivr"].experiments.running()] == [(LONG_B, 30)]


def test_an_announcement_the_voice_cannot_read_is_refused(live, cli):
    refused = cli("incident", "set", "Pro Santé Connect est en panne \U0001F6A8.", files_too=False)
    assert refused.exit_code == 1 and "(U+1F6A8)" in refused.output
    client = login(live, EDITOR)
    page = client.post("/console/incident", data={"text": "En panne \U0001F6A8.", "csrf_token": client.token})
    assert page.status_code == 400 and live.extensions["ivr"].incidents.current(0) is None


def test_the_command_line_takes_what_a_french_supervisor_writes(live, cli):
    assert "--par : donnez le nom" in cli("incident", "set", "En panne.", "--par", " ", files_too=False).output
    until = cli("incident", "set", "En panne.", "--until", "06/12/2099 12:30", files_too=False)
    assert until.exit_code == 0 and "jusqu'au 06/12/2099 12:30" in until.output
    assert cli("purge", "--older-than", "0,5", files_too=False).exit_code == 0
    assert "un nombre plus grand que 0" in cli("purge", "--older-than", "nan", files_too=False).output
    assert "un nombre plus grand que 0" in cli("purge", "--older-than", "inf", files_too=False).output


def test_export_clear_records_who_withdrew_the_console_changes(live, files, cli):
    client = login(live, EDITOR)
    publish(client, "etape1.question", CONSOLE_TEXT)
    done = cli("prompts", "export", "--write", "--clear", "--par", "Nadia Benali")
    assert done.exit_code == 0, done.output
    assert live.extensions["ivr"].overrides.all() == {}
    last = live.extensions["ivr"].overrides.history()[0]
    assert last["who"] == "Nadia Benali" and "reportée dans le fichier" in last["action"]


def test_simulate_without_a_token_says_so(served, cli):
    _, url = served
    result = cli("simulate", "--url", url, "--keys", "0", TWILIO_AUTH_TOKEN="")
    assert result.exit_code == 1 and "il n'accepte que les appels signés" in result.output
