"""Issue 38, RGAA 4.1 (WCAG 2.1 AA): every console page, the visual guide, the device pages, the
agent's page and the accessibility statement, in their states, pass axe-core (the npm registry's,
pinned in tests/a11y/package.json, installed by .ci/run) in Debian's chromium, on a phone and on a
desktop; no page scrolls sideways at 320 px; the guide says the step it moves to in a polite live
region without moving the focus; a keyboard alone publishes a sentence and plays « Essayer un appel »
to the agent."""

from __future__ import annotations

import re
import shutil
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from conftest import ROOT, TOKEN, VALID_RPPS, WORKFLOW
from servers import free_port
from test_calls import TO_STEP6
from test_console_e2e import CALLS, CHROMIUM, FLAGS, sync_api
from werkzeug.serving import make_server

from ivr.storage.users import Users
from ivr.supervisor.simulator import Caller, FlaskTransport

AXE = ROOT / "tests" / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
              pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (npm ci --prefix tests/a11y)")]
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PHONE, DESKTOP, NARROW = {"width": 390, "height": 844}, {"width": 1280, "height": 900}, {"width": 320, "height": 700}
EDITOR = ("claire", "mot-de-passe-editeur")


@dataclass
class Site:
    base: str
    app: object
    live_guide: str  # a call at step 2: the guide with its buttons
    agent_guide: str  # a call in the queue: « un conseiller va vous répondre »
    over_guide: str  # a call ended: the whole guide
    agent_page: str
    journey: str
    live_call: Caller


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from ivr import create_app

    tmp = tmp_path_factory.mktemp("a11y")
    shutil.copytree(ROOT / "flows", tmp / "flows")
    shutil.copytree(ROOT / "prompts", tmp / "prompts")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app({"TESTING": True, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_WORKFLOW_SID": WORKFLOW, "IVR_ALWAYS_OPEN": "1",
                      "IVR_DATA_DIR": str(tmp / "data"), "IVR_PUBLIC_URL": base, "IVR_API_TOKEN": "api", "REDIS_URL": "", "DATABASE_URL": "",
                      "IVR_FLOW": str(tmp / "flows" / "ecps.yaml"), "IVR_PROMPTS": str(tmp / "prompts"), "IVR_RELOAD_INTERVAL": "0"})
    Users(app.extensions["ivr"].db).add(*EDITOR, "editor")

    def caller(number="+33611224471"):
        return Caller(FlaskTransport(app.test_client()), base, TOKEN, caller=number)

    for keys in CALLS * 2:
        caller().call(keys)
    api = {"Authorization": "Bearer api"}

    def links(call):
        return app.test_client().get(f"/api/calls/{call.call_sid}/context", headers=api).get_json()

    live = caller()
    live.call(["2", "1"], hang_up_status=False)  # step 2, its first action
    queued = caller()
    queued.call([*TO_STEP6, "1", VALID_RPPS, "1"], hang_up_status=False)
    queued_links = links(queued)
    over = caller()
    over.call(["2", "1"], hang_up_status=False)
    over_links = links(over)
    over.post(base + "/voice/status", over.params(CallStatus="completed", CallDuration="60"))
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield Site(base, app, urlsplit(links(live)["visual_guide_url"]).path, urlsplit(queued_links["visual_guide_url"]).path,
               urlsplit(over_links["visual_guide_url"]).path, urlsplit(queued_links["agent_url"]).path,
               f"/console/appels/{queued.call_sid}", live)
    httpd.shutdown()
    app.extensions["ivr"].stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def _logged_in(browser, site, viewport):
    context = browser.new_context(viewport=viewport, locale="fr-FR", bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(site.base + "/console/login")
    page.get_by_label("Identifiant").fill(EDITOR[0])
    page.get_by_label("Mot de passe").fill(EDITOR[1])
    page.get_by_role("button", name="Se connecter").click()
    sync_api.expect(page.get_by_role("heading", name="Tableau de bord")).to_be_visible()
    return page


def violations(page) -> list[str]:
    """axe-core's WCAG 2.1 A/AA violations of the page as it is now, one line each."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}}).then(r => r.violations)", TAGS)
    return [f"{v['id']} ({v['impact']}): {v['help']} — " + "; ".join(" ".join(n["target"]) for n in v["nodes"][:4]) for v in found]


def wider_than(page, width: int) -> int:
    """How far the page scrolls sideways (0: it reflows)."""
    return page.evaluate("() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)") - width


CONSOLE = {
    "dashboard": "/console/",
    "calls": "/console/appels",
    "journey": None,  # the site's queued call
    "prompts": "/console/prompts",
    "prompt": "/console/prompts/etape1.question",
    "history": "/console/history",
    "flow": "/console/flow",
    "try": "/console/try",
    "incident": "/console/incident",
    "missing": "/console/nulle-part",
}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_console_page_passes_axe_and_reflows(site, browser, viewport):
    page = _logged_in(browser, site, viewport)
    found = {}
    for name, path in CONSOLE.items():
        page.goto(site.base + (path or site.journey))
        found[name] = violations(page)
    # States: a sentence refused (an error on its field), a try-a-call under way.
    page.goto(site.base + "/console/prompts/etape1.question")
    page.get_by_label("Texte").fill("Tapez 7 pour rien.")
    page.get_by_role("button", name="Vérifier et publier").click()
    found["prompt refused"] = violations(page)
    page.goto(site.base + "/console/incident")
    page.get_by_label("Texte de l'annonce (30 secondes au plus)").fill("")
    page.get_by_role("button", name="Vérifier et annoncer").click()
    found["incident refused"] = violations(page)
    assert page.title().startswith("Erreur")
    assert page.evaluate("() => document.activeElement.getAttribute('aria-invalid')") == "true"
    page.goto(site.base + "/console/try")
    page.get_by_role("button", name="Appeler").click()
    sync_api.expect(page.locator("#transcript")).to_contain_text("Étape 1")
    found["try under way"] = violations(page)
    page.locator("#keypad button[data-key='0']").click()  # to an agent: the call ends, its result shown
    sync_api.expect(page.locator("#outcome")).to_contain_text("transféré")
    found["try ended"] = violations(page)
    page.context.close()
    login = browser.new_page(viewport=viewport, locale="fr-FR", bypass_csp=True)
    login.goto(site.base + "/console/login")
    found["login"] = violations(login)
    login.get_by_label("Identifiant").fill("claire")
    login.get_by_label("Mot de passe").fill("faux")
    login.get_by_role("button", name="Se connecter").click()
    found["login refused"] = violations(login)
    login.close()
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_callers_pages_pass_axe_on_a_phone(site, browser):
    page = browser.new_page(viewport=PHONE, locale="fr-FR", bypass_csp=True)
    page.set_default_timeout(10_000)
    found = {}
    for name, path in {"guide live": site.live_guide, "guide with an agent": site.agent_guide, "guide over": site.over_guide,
                       "device consent": site.agent_guide + "/appareil", "computer code": "/code", "unknown link": "/g/inconnu",
                       "agent page": site.agent_page, "statement": "/accessibilite"}.items():
        page.goto(site.base + path)
        found[name] = violations(page)
    page.goto(site.base + "/code")
    page.get_by_label("Le code entendu au téléphone").fill("0000")
    page.get_by_role("button", name="Valider le code").click()
    found["computer code refused"] = violations(page)
    page.close()
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_no_page_scrolls_sideways_at_320_px(site, browser):
    page = _logged_in(browser, site, NARROW)
    wide = {}
    for name, path in {**CONSOLE, "journey": site.journey}.items():
        page.goto(site.base + path)
        wide[name] = wider_than(page, NARROW["width"])
    for name, path in {"guide": site.live_guide, "over": site.over_guide, "agent": site.agent_page, "code": "/code",
                       "statement": "/accessibilite"}.items():
        page.goto(site.base + path)
        wide[name] = wider_than(page, NARROW["width"])
    page.context.close()
    assert {name: px for name, px in wide.items() if px > 0} == {}


def test_the_guide_says_the_new_step_without_a_reload_and_keeps_the_focus(site, browser):
    page = browser.new_page(viewport=PHONE, locale="fr-FR", bypass_csp=True)
    page.set_default_timeout(10_000)
    page.goto(site.base + site.live_guide)
    page.evaluate("() => { window.loadedOnce = true; }")  # gone if the page reloads
    assert re.match(r"Étape 2 sur 6", page.title())
    page.locator("#appareil a").focus()  # on « Envoyer les informations de ce téléphone », replaced when the call moves
    focused_before = page.evaluate("() => document.activeElement.outerHTML")
    # The call moves on by the keypad (signed webhook): the page follows within 2 s.
    call = site.live_call
    status, body = call.post(site.base + "/voice/answer?node=etape2_informations_application&phase=ask", call.params(Digits="1"))
    assert status == 200
    live = page.locator("[aria-live=polite]")
    sync_api.expect(live).to_contain_text(re.compile(r"Étape 2 sur 6|Étape 3 sur 6"), timeout=8000)
    assert page.evaluate("() => window.loadedOnce") is True  # updated in place
    assert page.evaluate("() => document.activeElement !== document.body")
    assert page.evaluate("() => document.activeElement.outerHTML") == focused_before  # the same button, in the new step's page
    assert "Guide e-CPS" in page.title()
    page.close()


def test_a_keyboard_alone_publishes_a_sentence_and_plays_a_call_to_the_agent(site, browser):
    context = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    page = context.new_page()
    page.set_default_timeout(10_000)
    keys = page.keyboard
    page.goto(site.base + "/console/login")
    assert page.evaluate("() => document.activeElement.id") == "username"  # the login starts in its field
    keys.type(EDITOR[0])
    keys.press("Tab")
    keys.type(EDITOR[1])
    keys.press("Enter")
    sync_api.expect(page.get_by_role("heading", name="Tableau de bord")).to_be_visible()
    keys.press("Tab")  # the skip link first
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Aller au contenu"
    keys.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "contenu"
    page.goto(site.base + "/console/prompts/etape1.question")
    keys.press("Tab")
    keys.press("Enter")  # « Aller au contenu »
    for _ in range(12):
        keys.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "text":
            break
    assert page.evaluate("() => document.activeElement.id") == "text"
    keys.press("Control+a")
    keys.type("Étape 1. Votre application est-elle à jour ? Si elle n'est pas à jour, tapez 1. Si elle est à jour, tapez 2.")
    for _ in range(6):
        keys.press("Tab")
        if page.evaluate("() => document.activeElement.textContent.trim()") == "Vérifier et publier":
            break
    keys.press("Enter")
    sync_api.expect(page.get_by_role("status").first).to_contain_text("publiée")
    page.goto(site.base + "/console/try")
    for _ in range(20):
        keys.press("Tab")
        if page.evaluate("() => document.activeElement.textContent.trim()") == "Appeler":
            break
    keys.press("Enter")
    sync_api.expect(page.locator("#transcript")).to_contain_text("Votre application est-elle à jour")
    assert page.evaluate("() => document.activeElement !== document.body")
    for _ in range(20):  # to the keypad's 0
        if page.evaluate("() => document.activeElement.dataset.key") == "0":
            break
        keys.press("Tab")
    keys.press("Enter")
    sync_api.expect(page.locator("#outcome")).to_contain_text("transféré")
    assert page.evaluate("() => document.activeElement !== document.body")
    sync_api.expect(page.locator("#status")).to_have_attribute("role", "status")
    context.close()


def test_the_accessibility_statement_says_what_is_met_and_what_is_not_and_every_page_links_to_it(site):
    client = site.app.test_client()
    page = client.get("/accessibilite").get_data(as_text=True)
    assert "Déclaration d&#39;accessibilité" in page or "Déclaration d'accessibilité" in page
    assert "RGAA 4.1" in page and "partiellement conformes" in page and "Non-conformités et dérogations connues" in page
    assert "Défenseur des droits" in page
    for path in ("/console/login", site.live_guide, "/code"):
        assert 'href="/accessibilite">Accessibilité : partiellement conforme</a>' in client.get(path).get_data(as_text=True), path
