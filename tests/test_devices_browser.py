"""Issue 36, step 6 from the caller's devices in a real headless Chromium (Debian's `chromium`, driven
by Playwright): the visual guide on an emulated Android phone and an iPhone (Playwright's device
descriptors) sends the phone's facts after showing them; the computer page on a desktop profile
(Windows 11, told by Client Hints only: every Windows says « NT 10.0 ») takes the code heard in the
queue and sends the computer's. The agent's page and the API show them, and their questions are
not asked on the call (signed webhooks)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from conftest import TOKEN, WORKFLOW
from test_agent_page_browser import _free_port, _serve
from test_calls import TO_STEP6
from test_console_e2e import CHROMIUM, FLAGS, sync_api
from test_devices import QUEUED_ANSWERS, STEP6_QUEUED, WINDOWS

from ivr.supervisor.simulator import Caller, FlaskTransport

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
DEVICE_QUESTIONS = {"etape6_support", "etape6_systeme_mobile", "etape6_version_mobile", "etape6_navigateurs", "etape6_ordinateur",
                    "etape6_version_ordinateur"}
# The computer: Chrome 131 on Windows 11, as Chrome tells it (its User-Agent says « Windows NT 10.0 »).
WINDOWS_11 = {"userAgent": WINDOWS, "userAgentMetadata": {
    "brands": [{"brand": "Google Chrome", "version": "131"}, {"brand": "Chromium", "version": "131"}],
    "fullVersionList": [{"brand": "Google Chrome", "version": "131.0.6778.86"}, {"brand": "Chromium", "version": "131.0.6778.86"}],
    "platform": "Windows", "platformVersion": "15.0.0", "architecture": "x86", "model": "", "mobile": False}}


@pytest.mark.parametrize("phone", ["Pixel 7", "iPhone 13"])
def test_the_phone_and_the_computer_send_their_facts_and_step_6_does_not_ask_them(make_app, shots, phone):
    port = _free_port()
    public = f"http://127.0.0.1:{port}"
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_API_TOKEN="api", IVR_PUBLIC_URL=public)
    httpd = _serve(app, port)
    expect = sync_api.expect
    call = Caller(FlaskTransport(app.test_client()), public, TOKEN, caller="+33611223344")
    keys, asked, seen = iter([*TO_STEP6, *STEP6_QUEUED]), [], {}

    def context() -> dict:
        return app.test_client().get(f"/api/calls/{call.call_sid}/context", headers={"Authorization": "Bearer api"}).get_json()

    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            descriptor = {key: value for key, value in playwright.devices[phone].items() if key != "default_browser_type"}
            agent_string = descriptor["user_agent"]
            android = re.search(r"Android (\d+)", agent_string)
            system, version = ("Android", android.group(1)) if android else ("iOS", re.search(r"OS (\d+)_", agent_string).group(1))

            def on_the_phone():
                """At step 6, the caller sends the phone's facts from the visual guide."""
                page = browser.new_context(**descriptor, locale="fr-FR").new_page()
                page.set_default_timeout(10_000)
                page.goto(public + urlsplit(context()["visual_guide_url"]).path)
                page.get_by_role("link", name="Envoyer les informations de ce téléphone au conseiller").click()
                facts = page.locator("dl.facts")
                expect(facts).to_contain_text(f"{system} {version}")
                expect(facts).to_contain_text("non visible")  # 127.0.0.1 is no caller's public IP
                page.screenshot(path=str(shots / f"appareil-{phone.split()[0].lower()}.png"), full_page=True)
                page.get_by_role("button", name="Envoyer au conseiller").click()
                expect(page.locator(".note")).to_contain_text("C'est envoyé")
                page.context.close()

            def at_the_computer(code: str):
                """In the queue, the caller types the code heard on the computer's page."""
                desktop = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
                page = desktop.new_page()
                page.set_default_timeout(10_000)
                desktop.new_cdp_session(page).send("Network.setUserAgentOverride", WINDOWS_11)
                page.goto(public + "/code")
                page.get_by_label("Le code entendu au téléphone").fill(code)
                page.get_by_role("button", name="Valider le code").click()
                expect(page.locator("dl.facts")).to_contain_text("Windows 11")
                expect(page.locator("dl.facts")).to_contain_text("Chrome 131")
                page.screenshot(path=str(shots / "appareil-ordinateur.png"), full_page=True)
                page.get_by_role("button", name="Envoyer au conseiller").click()
                expect(page.locator("main")).to_contain_text("C'est envoyé")
                desktop.close()

            def answer(question):
                if question.node == "etape6_type_identifiant" and "phone" not in seen:
                    seen["phone"] = True
                    on_the_phone()
                if "/voice/wait/" not in question.action:
                    return next(keys, None)
                asked.append(question.node)
                heard = " ".join(question.heard + question.said)
                code = re.search(r"saisissez le code ((?:\d ){3,5}\d)", heard)
                if code and "computer" not in seen:
                    seen["computer"] = True
                    at_the_computer(code.group(1).replace(" ", ""))
                return "#" if "phase=more" in question.action else QUEUED_ANSWERS.get(question.node)

            result = call.call(answer, hang_up_status=False)
            assert result.end == "enqueue" and seen == {"phone": True, "computer": True}
            assert asked and not DEVICE_QUESTIONS & set(asked), asked  # neither device's questions were asked
            document = context()
            assert set(document["from_device"]) >= {"support", "systeme_mobile", "version_systeme_mobile", "systeme_ordinateur",
                                                    "version_systeme_ordinateur", "navigateurs"}
            assert document["answers"]["systeme_mobile"] == system and document["answers"]["version_systeme_mobile"] == version
            assert document["answers"]["systeme_ordinateur"] == "Windows" and document["answers"]["version_systeme_ordinateur"] == "11"
            assert document["devices"]["ordinateur"]["source"] == "client hints"

            # The agent's page shows both devices and where each answer came from.
            agent = browser.new_page(viewport={"width": 1100, "height": 900}, locale="fr-FR")
            agent.goto(public + urlsplit(document["agent_url"]).path)
            expect(agent.locator("#answers tr.device", has_text="système mobile")).to_contain_text("relevé sur l'appareil")
            expect(agent.locator("main")).to_contain_text("Windows 11")
            expect(agent.locator("main")).to_contain_text(f"{system} {version}")
            browser.close()
    finally:
        httpd.shutdown()
