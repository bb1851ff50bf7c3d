"""End to end in a real headless Chromium (Debian's `chromium`) driven by Playwright: log in, read the
dashboard, edit a prompt, and play a call in the browser simulator that speaks the new sentence.

Set IVR_SCREENSHOTS=docs/screenshots to refresh the screenshots of the documentation."""

from __future__ import annotations

import shutil
import threading

import pytest
from test_calls import TO_STEP6
from werkzeug.serving import make_server

from ivr.storage.users import Users

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
NEW_TEXT = "Étape 1. Votre application est-elle à jour ? Si elle n'est pas à jour, tapez 1. Si elle est à jour, tapez 2."
CALLS = [["1", "1", "1", "5"], ["2", "1", "1", "1", "1", "1", "1", "1", "4"], ["2", "2", "1", "1", "3"], ["2", "2", "2", "1", "1", "5"],
         ["0"], ["2", "2"],
         [".", ".", "."], ["2", "2", "2", "1", "2", "1", "1", "1", "2", "9", ".", "9", "2", "9", "9", ".", "9", "9", "2"]]


@pytest.fixture
def server(make_app, files, caller):
    app = make_app(TWILIO_WORKFLOW_SID="WW" + "e" * 32, IVR_FLOW=str(files / "flows" / "ecps.yaml"),
                   IVR_PROMPTS=str(files / "prompts"), IVR_RELOAD_INTERVAL="0")
    Users(app.extensions["ivr"].db).add("claire", "mot-de-passe-editeur", "editor")
    for index in range(24):  # figures worth a look on the dashboard
        caller(target=app).call(CALLS[index % len(CALLS)])
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_supervisor_logs_in_reads_edits_and_hears_the_change(server, shots):
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
        page.set_default_timeout(10_000)

        page.goto(server + "/console/")
        expect(page.get_by_role("heading", name="Connexion")).to_be_visible()
        page.get_by_label("Identifiant").fill("claire")
        page.get_by_label("Mot de passe").fill("mot-de-passe-editeur")
        page.get_by_role("button", name="Se connecter").click()

        expect(page.get_by_role("heading", name="Tableau de bord")).to_be_visible()
        expect(page.locator("#calls")).to_have_text("24")
        containment = page.locator("#containment").inner_text()
        assert containment.endswith("%") and containment != "—"
        expect(page.get_by_text("Entonnoir des six étapes")).to_be_visible()
        page.screenshot(path=str(shots / "tableau-de-bord.png"), full_page=True)

        page.get_by_role("link", name="Phrases").click()
        page.get_by_label("Rechercher").fill("etape1.question")
        page.get_by_role("button", name="Chercher").click()
        page.get_by_role("link", name="etape1.question", exact=True).click()
        page.get_by_label("Texte").fill(NEW_TEXT)
        page.screenshot(path=str(shots / "modifier-une-phrase.png"), full_page=True)
        page.get_by_role("button", name="Vérifier et publier").click()
        expect(page.get_by_role("status").first).to_contain_text("publiée")

        page.get_by_role("link", name="Essayer un appel").click()
        page.get_by_label("lire à voix haute").uncheck()
        page.get_by_role("button", name="Appeler").click()
        transcript = page.locator("#transcript")
        expect(transcript).to_contain_text(NEW_TEXT)
        for _ in range(3):  # not up to date → done → solved
            page.locator("#keypad button[data-key='1']").click()
        page.locator("#keypad button[data-key='5']").click()  # the rating
        expect(page.locator("#outcome")).to_contain_text("résolu par le serveur vocal (étape 1)")
        expect(transcript).to_contain_text("Parfait, votre problème est résolu.")
        page.screenshot(path=str(shots / "essayer-un-appel.png"), full_page=True)
        # A new call without reloading the page: to an agent, with the summary the agent reads.
        page.get_by_role("button", name="Nouvel appel").click()
        expect(transcript).to_contain_text(NEW_TEXT)
        page.locator("#keypad button[data-key='0']").click()
        expect(page.locator("#summary")).to_contain_text("Transfert : l'appelant a demandé un conseiller.")
        expect(page.locator("#outcome")).to_contain_text("transféré à un conseiller")
        # To step 6 with a queue: the simulator waits in the queue as Twilio does, where the last questions are asked.
        page.get_by_role("button", name="Nouvel appel").click()
        expect(transcript).to_contain_text(NEW_TEXT)
        for key in [*TO_STEP6, "9"]:  # no identifier at hand: into the queue at once
            page.locator(f"#keypad button[data-key='{key}']").click()
        expect(transcript).to_contain_text("(en file d'attente)")
        expect(transcript).to_contain_text("Si vous avez une carte CPS ou CPE, tapez son numéro, puis dièse.")
        page.locator("#keypad button[data-key='#']").click()  # no card: the next question, still in the queue
        expect(transcript).to_contain_text("Le problème se produit-il à chaque fois que vous essayez ?")
        page.locator("#keypad button[data-key='1']").click()
        expect(transcript).to_contain_text("Le problème se produit-il en ce moment")
        page.get_by_role("button", name="Raccrocher").click()
        expect(page.locator("#outcome")).to_contain_text("transféré à un conseiller")

        page.get_by_role("link", name="Parcours").click()
        expect(page.get_by_role("heading", name="Parcours de l'appel")).to_be_visible()
        # Readable at 100 %: one part at a time, drawn at its natural size (issue 34: the whole flow
        # squeezed into the page width had text about 3 px high).
        for part in ["Étape 1", "Étape 6", "Fins, notes et service fermé", "Tout le parcours"]:
            page.get_by_role("navigation", name="Parties du parcours").get_by_role("link", name=part, exact=True).click()
            expect(page.locator("#part-title")).to_have_text(part)
            heights = page.eval_on_selector_all("#diagram svg text", "texts => texts.map(t => t.getBoundingClientRect().height)")
            assert heights and min(heights) >= 12, (part, min(heights))
            if part == "Étape 1":
                page.screenshot(path=str(shots / "parcours.png"))
        page.get_by_role("navigation", name="Parties du parcours").get_by_role("link", name="Étape 1", exact=True).click()
        page.locator("#diagram a", has_text="etape2_introduction").first.click()  # a step of another part leads to it
        expect(page.locator("#part-title")).to_have_text("Étape 2")

        # An incident announcement, heard by the next call in the simulator.
        page.get_by_role("link", name="Annonce d'incident").click()
        page.get_by_label("Texte de l'annonce").fill("Pro Santé Connect est en panne depuis 9 heures ; le retour est prévu vers midi.")
        page.get_by_role("button", name="Vérifier et annoncer").click()
        expect(page.locator("#current")).to_contain_text("Pro Santé Connect est en panne depuis 9 heures")
        expect(page.locator("#current")).to_contain_text("par claire")
        page.screenshot(path=str(shots / "annonce-incident.png"), full_page=True)
        page.get_by_role("link", name="Essayer un appel").click()
        page.get_by_label("lire à voix haute").uncheck()
        page.get_by_role("button", name="Appeler").click()
        expect(page.locator("#transcript")).to_contain_text("Information importante : Pro Santé Connect est en panne")
        page.get_by_role("link", name="Annonce d'incident").click()
        page.get_by_role("button", name="Arrêter l'annonce").click()
        expect(page.locator("#current")).to_contain_text("Aucune annonce en cours")

        # An experiment on a sentence, from its page.
        page.get_by_role("link", name="Phrases").click()
        page.get_by_label("Rechercher").fill("etape1.android")
        page.get_by_role("button", name="Chercher").click()
        page.get_by_role("link", name="etape1.android", exact=True).click()
        page.get_by_label("Formulation B").fill("Avez-vous un téléphone Android 15 ou plus, avec un navigateur comme Chrome ? "
                                               "Si oui, tapez 1. Sinon, tapez 2.")
        page.get_by_label("Part des nouveaux appels").fill("50")
        page.get_by_role("button", name="Vérifier et lancer l'expérience").click()
        expect(page.locator("#experiment")).to_contain_text("50 % des nouveaux appels entendent B")
        expect(page.locator("#verdict")).to_contain_text("Verdict")
        page.screenshot(path=str(shots / "experience-ab.png"), full_page=True)
        page.get_by_role("button", name="Arrêter et garder A").click()
        expect(page.locator("#experiment")).to_contain_text("formulation gardée : A")
        browser.close()
