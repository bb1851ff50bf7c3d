"""The supervisors' console over HTTP: login, roles, CSRF, figures, prompt editing and the simulator."""

from __future__ import annotations

import re
import time

import pytest
from conftest import heard

from ivr.storage.users import Users
from ivr.web.guide import guide_token

EDITOR = ("claire", "mot-de-passe-editeur")
VIEWER = ("victor", "mot-de-passe-lecteur")
NEW_TEXT = "Étape 1. Votre application est-elle à jour ? Si elle n'est pas à jour, tapez 1. Si elle est à jour, tapez 2."
PAGES = ["/console/", "/console/calls.csv", "/console/appels", "/console/appels/CA" + "0" * 32, "/console/prompts",
         "/console/prompts/etape1.question", "/console/history", "/console/flow", "/console/try", "/console/try/context/CAtry" + "0" * 29]


@pytest.fixture
def console(make_app, files):
    app = make_app(TWILIO_WORKFLOW_SID="WW" + "d" * 32, IVR_FLOW=str(files / "flows" / "ecps.yaml"),
                   IVR_PROMPTS=str(files / "prompts"), IVR_RELOAD_INTERVAL="0")
    users = Users(app.extensions["ivr"].db)
    users.add(*EDITOR, "editor")
    users.add(*VIEWER, "viewer")
    return app


def csrf(client, path="/console/login"):
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def login(app, account):
    client = app.test_client()
    token = csrf(client)
    response = client.post("/console/login", data={"username": account[0], "password": account[1], "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    client.token = token
    return client


@pytest.mark.parametrize("path", PAGES)
def test_every_page_and_export_needs_a_login(console, path):
    response = console.test_client().get(path)
    assert response.status_code == 302 and response.location.startswith("/console/login")


def test_wrong_password_is_refused(console):
    client = console.test_client()
    response = client.post("/console/login", data={"username": EDITOR[0], "password": "nope", "csrf_token": csrf(client)})
    assert response.status_code == 401 and "Identifiant ou mot de passe incorrect." in response.get_data(as_text=True)
    assert client.get("/console/").status_code == 302


def test_passwords_are_hashed(console):
    row = console.extensions["ivr"].db.one("SELECT password_hash FROM users WHERE username = ?", (EDITOR[0],))
    assert EDITOR[1] not in row["password_hash"] and row["password_hash"].startswith(("scrypt:", "pbkdf2:"))


def test_post_without_csrf_token_is_refused(console):
    client = login(console, EDITOR)
    response = client.post("/console/prompts/etape1.question", data={"text": NEW_TEXT})
    assert response.status_code == 400 and "Jeton de sécurité" in response.get_data(as_text=True)
    login_form = console.test_client().post("/console/login", data={"username": EDITOR[0], "password": EDITOR[1]})
    assert login_form.status_code == 400


@pytest.mark.parametrize("column, hours_ago", [("seen_at", 0.52), ("created_at", 12.1)], ids=["idle 31 min", "older than 12 h"])
def test_a_login_ends_after_30_idle_minutes_and_after_12_hours_however_active(console, column, hours_ago):
    client = login(console, VIEWER)
    assert client.get("/console/").status_code == 200
    console.extensions["ivr"].db.execute(f"UPDATE console_logins SET {column} = ?", (time.time() - hours_ago * 3600,))
    assert client.get("/console/").status_code == 302


def test_logout_ends_the_login_on_the_server_a_copied_cookie_opens_nothing(console):
    client = login(console, VIEWER)
    copied = client.get_cookie("session").value
    client.post("/console/logout", data={"csrf_token": client.token})
    assert client.get("/console/").status_code == 302
    thief = console.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/console/").status_code == 302


def from_address(app, address: str):
    """A browser at another address than the tests' 127.0.0.1."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_ten_wrong_passwords_from_one_address_lock_it_out_of_that_account(console):
    client = console.test_client()
    token = csrf(client)
    for _ in range(10):
        assert client.post("/console/login", data={"username": EDITOR[0], "password": "faux", "csrf_token": token}).status_code == 401
    refused = client.post("/console/login", data={"username": EDITOR[0], "password": EDITOR[1], "csrf_token": token})
    assert refused.status_code == 429 and "essais : réessayez dans 15 minutes." in refused.get_data(as_text=True)
    colleague = console.test_client()  # the same address (an office behind one NAT), another account: not locked out
    assert colleague.post("/console/login", data={"username": VIEWER[0], "password": VIEWER[1], "csrf_token": csrf(colleague)}).status_code == 302


def test_a_storm_of_wrong_passwords_does_not_lock_the_supervisor_out_from_elsewhere(console):
    """Before: after 10 wrong tries from anywhere, the right password from another address was refused
    for 15 minutes: anyone who knew a username could lock a supervisor out."""
    attacker = from_address(console, "203.0.113.9")
    token = csrf(attacker)
    codes = [attacker.post("/console/login", data={"username": EDITOR[0], "password": f"faux{n}", "csrf_token": token}).status_code
             for n in range(40)]
    assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
    supervisor = from_address(console, "198.51.100.7")
    assert supervisor.post("/console/login", data={"username": EDITOR[0], "password": EDITOR[1],
                                                   "csrf_token": csrf(supervisor)}).status_code == 302


def test_a_burst_of_parallel_logins_gets_no_more_passwords_checked_than_the_limit(console):
    """Before: 40 parallel logins for one account got 16 passwords checked against a limit of 10."""
    import threading

    from werkzeug.security import check_password_hash  # noqa: F401  (the check the limit protects)

    barrier, codes = threading.Barrier(40), []

    def attempt():
        client = from_address(console, "203.0.113.10")
        token = csrf(client)
        barrier.wait()
        codes.append(client.post("/console/login", data={"username": EDITOR[0], "password": "faux", "csrf_token": token}).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # At most the limit gets its password checked (one more key past its own limit can refuse one more).
    assert set(codes) == {401, 429} and 8 <= codes.count(401) <= 10, str(sorted(codes))


@pytest.mark.logs_errors("is locked for everyone")
def test_an_account_tried_from_many_addresses_is_locked_with_an_alert_and_unlocked_by_the_cli(console, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from ivr.cli.base import main

    for n in range(101):
        client = from_address(console, f"203.0.{n // 200}.{n % 200 + 1}")
        client.post("/console/login", data={"username": EDITOR[0], "password": "faux", "csrf_token": csrf(client)})
    supervisor = from_address(console, "198.51.100.7")
    locked = supervisor.post("/console/login", data={"username": EDITOR[0], "password": EDITOR[1], "csrf_token": csrf(supervisor)})
    assert locked.status_code == 429
    data_dir = console.config["IVR_DATA_DIR"]
    for name in ("DATABASE_URL", "REDIS_URL"):
        if console.config.get(name):
            monkeypatch.setenv(name, console.config[name])
    opened = CliRunner().invoke(main, ["user", "unlock", EDITOR[0], "--data-dir", data_dir])
    assert opened.exit_code == 0 and "rouvert" in opened.output, opened.output
    assert supervisor.post("/console/login", data={"username": EDITOR[0], "password": EDITOR[1],
                                                   "csrf_token": csrf(supervisor)}).status_code == 302


@pytest.mark.parametrize("path", ["/console/login", "/console/", "/api/calls/CA1/context"])
def test_console_and_api_pages_cannot_be_framed_nor_sniffed(console, path):
    headers = console.test_client().get(path).headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"] and "script-src 'self'" in headers["Content-Security-Policy"]
    assert (headers["X-Frame-Options"], headers["X-Content-Type-Options"], headers["Referrer-Policy"]) == ("DENY", "nosniff", "same-origin")


def test_the_cookie_is_secure_behind_a_trusted_proxy_that_says_https(make_app):
    app = make_app(IVR_TRUSTED_PROXIES="1")
    Users(app.extensions["ivr"].db).add(*VIEWER, "viewer")
    client = app.test_client()
    page = client.get("/console/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in page.headers["Set-Cookie"]
    assert "Secure" not in app.test_client().get("/console/login").headers["Set-Cookie"]


def test_dashboard_shows_the_figures(console, caller):
    for keys in (["1", "1", "1"], ["2", "2", "1"], ["0"], ["2"]):
        caller(target=console).call(keys)
    page = login(console, VIEWER).get("/console/").get_data(as_text=True)
    assert 'id="containment">50 %<' in page and 'id="calls">4<' in page
    assert "Entonnoir des six étapes" in page and "<svg" in page
    assert "l&#39;appelant a demandé un conseiller" in page


def test_csv_export(console, caller):
    call = caller(target=console)
    call.call(["1", "1", "1", "5"])
    response = login(console, VIEWER).get("/console/calls.csv")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")  # UTF-8 with its BOM: French Excel opens it right
    header, row = body.decode("utf-8-sig").strip().splitlines()
    assert header == ("Appel;Début;Fin;Issue;Étape de l'issue;Dernière étape;Motif du transfert;Résultat du transfert;Durée (s);"
                      "Annonce d'incident n°;Expériences (phrase : version);Note;Note donnée")
    assert row.startswith(call.call_sid + ";") and ";résolu par le serveur vocal;1;fin_resolu_au_revoir;" in row
    assert row.endswith(";5;au téléphone")


def test_prompts_list_and_search(console):
    page = login(console, VIEWER).get("/console/prompts?q=batterie").get_data(as_text=True)
    assert "etape2.batterie" in page and "etape1.question" not in page


def test_viewer_cannot_edit(console):
    client = login(console, VIEWER)
    page = client.get("/console/prompts/etape1.question").get_data(as_text=True)
    assert "<textarea" not in page and "Lecture seule" in page
    response = client.post("/console/prompts/etape1.question", data={"text": NEW_TEXT, "csrf_token": client.token})
    assert response.status_code == 403
    assert console.extensions["ivr"].overrides.all() == {}


def test_editor_change_goes_live_is_kept_in_history_and_can_be_rolled_back(console, caller):
    client = login(console, EDITOR)
    response = client.post("/console/prompts/etape1.question", data={"text": NEW_TEXT, "csrf_token": client.token})
    assert response.status_code == 302
    result = caller(target=console).call(["1", "1", "1"])
    assert NEW_TEXT in result.said
    (entry,) = console.extensions["ivr"].overrides.history()
    assert (entry["key"], entry["who"], entry["after"], entry["action"]) == ("etape1.question", EDITOR[0], NEW_TEXT, "edit")
    assert entry["before"].startswith("Étape 1. Vérifiez sur votre téléphone")
    history = client.get("/console/history").get_data(as_text=True)
    assert NEW_TEXT.replace("'", "&#39;") in history
    client.post(f"/console/history/{entry['id']}/rollback", data={"csrf_token": client.token})
    assert caller(target=console).call(["1", "1", "1"]).said[1] == heard(entry["before"])
    assert console.extensions["ivr"].overrides.history()[0]["action"] == f"rollback #{entry['id']} : retour au texte du fichier"
    assert console.extensions["ivr"].overrides.all() == {}  # back to the file's wording: no frozen copy left (issue 34)


@pytest.mark.parametrize(
    ("text", "message"),
    [("   ", "la phrase est vide"), ("Tapez {inconnu}.", "{inconnu} n&#39;est pas une valeur connue"), ("<b>Bonjour</b>", "les signes"),
     # What breaks a call cannot be published, even with a second click (issue 34).
     ("Étape 1. Pas à jour : tapez 1. À jour : tapez 3.", "annonce la touche 3, que l&#39;étape « etape1_a_jour »"),
     ("Étape 1. À jour : tapez 2.", "n&#39;annonce pas la touche 1"),
     ("Étape 1, ouvert {quand}. Pas à jour : tapez 1. À jour : tapez 2.", "{quand} n&#39;est pas rempli dans cette phrase")],
)
def test_invalid_change_is_refused_and_not_published(console, caller, text, message):
    client = login(console, EDITOR)
    response = client.post("/console/prompts/etape1.question", data={"text": text, "csrf_token": client.token})
    assert response.status_code == 200 and message in response.get_data(as_text=True)
    assert console.extensions["ivr"].overrides.all() == {}


def test_change_with_warnings_needs_a_second_click(console):
    client = login(console, EDITOR)
    text = "Étape 1. " + "Regardez bien votre téléphone, sans vous presser. " * 9 + "Pas à jour : tapez 1. À jour : tapez 2."
    page = client.post("/console/prompts/etape1.question", data={"text": text, "csrf_token": client.token}).get_data(as_text=True)
    assert "« etape1.question » dure environ" in page
    assert "Publier malgré les avertissements" in page
    assert console.extensions["ivr"].overrides.all() == {}
    client.post("/console/prompts/etape1.question", data={"text": text, "csrf_token": client.token, "confirm": "1"})
    assert console.extensions["ivr"].overrides.all() == {"etape1.question": text}


def test_change_reaches_every_server_without_restart(console, make_app, files, caller):
    other = make_app(TWILIO_WORKFLOW_SID="WW" + "d" * 32, IVR_FLOW=str(files / "flows" / "ecps.yaml"),
                     IVR_PROMPTS=str(files / "prompts"), IVR_RELOAD_INTERVAL="0")
    client = login(console, EDITOR)
    client.post("/console/prompts/etape1.question", data={"text": NEW_TEXT, "csrf_token": client.token})
    assert NEW_TEXT in caller(target=other).call(["1", "1", "1"]).said


def test_flow_page_shows_the_diagram_and_figures(console, caller):
    caller(target=console).call(["1", "1", "1"])
    client = login(console, VIEWER)
    assert "etape6_transfert" in client.get("/console/flow?section=etape6").get_data(as_text=True)
    assert "etape6_transfert" not in client.get("/console/flow?section=etape2").get_data(as_text=True)
    assert "etape6_transfert" in client.get("/console/flow?section=tout").get_data(as_text=True)
    page = client.get("/console/flow").get_data(as_text=True)  # the first part: the welcome and step 1
    assert "<svg" in page and "etape1_a_jour" in page
    assert re.search(r"<td>etape1_a_jour</td>.*?<td class=\"num\">1</td>", page, re.S)


def test_try_webhook_plays_a_simulated_call_outside_the_figures(console):
    client = login(console, VIEWER)
    sid = "CAtry" + "1" * 29
    params = {"CallSid": sid, "From": "+33600000000"}
    first = client.post("/console/try/webhook", json={"url": "/voice", "params": params}, headers={"X-CSRF-Token": client.token})
    assert first.json["status"] == 200 and "Bonjour" in first.json["body"]
    answer = client.post("/console/try/webhook", json={"url": "/voice/answer?node=etape1_a_jour&phase=ask", "params": {**params, "Digits": "0"}},
                         headers={"X-CSRF-Token": client.token})
    assert "<Enqueue" in answer.json["body"]
    context = client.get(f"/console/try/context/{sid}").json
    assert context["outcome"] == "transferred" and context["context"]["reason"] == "caller_request"
    assert client.get("/console/").get_data(as_text=True).count('id="calls">0<') == 1


def test_try_webhook_refuses_real_calls_and_other_urls(console):
    client = login(console, VIEWER)
    headers = {"X-CSRF-Token": client.token}
    assert client.post("/console/try/webhook", json={"url": "/voice", "params": {"CallSid": "CA" + "1" * 32}}, headers=headers).status_code == 400
    other_url = {"url": "/api/calls/x/context", "params": {"CallSid": "CAtry1"}}
    assert client.post("/console/try/webhook", json=other_url, headers=headers).status_code == 400
    assert client.post("/console/try/webhook", json={"url": "/voice", "params": {"CallSid": "CAtry1"}}).status_code == 400  # no CSRF


def test_incident_page_editors_set_and_clear_viewers_read(console, caller):
    editor = login(console, EDITOR)
    refused = editor.post("/console/incident", data={"text": "mot " * 150, "csrf_token": editor.token})
    assert refused.status_code == 400 and "secondes à l&#39;oral" in refused.get_data(as_text=True)
    assert editor.post("/console/incident", data={"text": "Panne nationale de Pro Santé Connect.", "until": "2030-01-01T10:00",
                                                  "csrf_token": editor.token}).status_code == 302
    assert "Information importante : Panne nationale de Pro Santé Connect." in caller(target=console).call(["1"]).said
    viewer = login(console, VIEWER)
    page = viewer.get("/console/incident").get_data(as_text=True)
    assert "Panne nationale" in page and "par claire" in page and "Arrêter l&#39;annonce" not in page
    assert viewer.post("/console/incident/clear", data={"csrf_token": viewer.token}).status_code == 403
    assert editor.post("/console/incident/clear", data={"csrf_token": editor.token}).status_code == 302
    assert "Information importante" not in " ".join(caller(target=console).call(["1"]).said)


def test_experiment_on_a_sentence_page(console, caller):
    editor = login(console, EDITOR)
    b_text = "Étape 1. Votre application est-elle à jour ? Si non, tapez 1. Si oui, tapez 2."
    bad = editor.post("/console/prompts/etape1.question/experiment", data={"text_b": "Étape 1 {x}", "share": "50", "csrf_token": editor.token})
    assert bad.status_code == 302 and not console.extensions["ivr"].experiments.running()
    editor.post("/console/prompts/etape1.question/experiment", data={"text_b": b_text, "share": "99", "csrf_token": editor.token})
    (running,) = console.extensions["ivr"].experiments.running()
    assert running["started_by"] == "claire" and running["share"] == 99
    page = editor.get("/console/prompts/etape1.question").get_data(as_text=True)
    assert "99 % des nouveaux appels entendent B" in page and "Verdict" in page
    editor.post("/console/prompts/etape1.question/experiment/stop", data={"keep": "B", "csrf_token": editor.token})
    assert console.extensions["ivr"].overrides.all()["etape1.question"] == b_text
    assert "B gardé" in editor.get("/console/history").get_data(as_text=True)


def test_a_visual_guide_text_is_edited_like_a_sentence_and_shown_on_the_callers_page(console, caller):
    client = login(console, EDITOR)
    page = client.get("/console/prompts/visuel.batterie").get_data(as_text=True)
    assert "Affichée sur le guide visuel" in page and "etape2_batterie" in page and "à l&#39;oral</p>" not in page
    text = "Touchez « Batterie » : selon les téléphones, « Utilisation de la batterie »."
    published = client.post("/console/prompts/visuel.batterie", data={"text": text, "csrf_token": client.token}, follow_redirects=True)
    assert "le guide visuel l&#39;affiche dès maintenant" in published.get_data(as_text=True)
    call = caller(target=console)
    call.call(["2", "1", "1"], hang_up_status=False)  # at the battery step
    with console.test_request_context():
        token = guide_token(call.call_sid)
    shown = console.test_client().get(f"/g/{token}").get_data(as_text=True)
    assert '<span class="label">Batterie</span>' in shown and '<span class="label">Utilisation de la batterie</span>' in shown
    # The page's own words are sentences too: a button renamed in the console.
    client.post("/console/prompts/page.fait", data={"text": "Je l'ai fait", "csrf_token": client.token})
    assert 'value="fait" class="button fait">Je l&#39;ai fait</button>' in console.test_client().get(f"/g/{token}").get_data(as_text=True)
