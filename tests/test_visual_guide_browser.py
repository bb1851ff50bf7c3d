"""The visual guide in a real headless Chromium (Debian's `chromium`, driven by Playwright), on a phone's
screen: the caller reads the step, presses « C'est fait », and the page follows the call within two
seconds; without JavaScript the buttons work the same. Twilio's REST API is faked with `responses`.

Set IVR_SCREENSHOTS=docs/screenshots to refresh the screenshot of the documentation."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

import pytest
import responses
from conftest import TOKEN
from test_console_e2e import CHROMIUM, FLAGS, sync_api
from werkzeug.serving import make_server

from ivr.supervisor.simulator import Caller, FlaskTransport

ACCOUNT = "AC" + "1" * 32
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True, "locale": "fr-FR"}
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture
def live_call(make_app):
    """A server on a free port, a caller at step 2's first action, and the address of the call's page."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    public = f"http://127.0.0.1:{port}"  # the call is only moved to the configured public address
    app = make_app(TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_WORKFLOW_SID="WW" + "a" * 32, IVR_API_TOKEN="api", IVR_PUBLIC_URL=public)
    call = Caller(FlaskTransport(app.test_client()), public, TOKEN)
    call.call(["2", "1"], hang_up_status=False)
    document = app.test_client().get(f"/api/calls/{call.call_sid}/context", headers={"Authorization": "Bearer api"}).get_json()
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as twilio:
        twilio.post(f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls/{call.call_sid}.json",
                    json={"sid": call.call_sid, "account_sid": ACCOUNT, "status": "in-progress"})
        twilio.add_passthru("http://127.0.0.1")
        yield call, public + urlsplit(document["visual_guide_url"]).path, twilio, public
    httpd.shutdown()


def test_the_caller_follows_the_step_on_the_phone_and_a_button_moves_the_call(live_call, shots):
    call, address, twilio, public = live_call
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_context(**PHONE).new_page()
        page.set_default_timeout(10_000)
        page.goto(address)
        expect(page.get_by_text("Étape 2 sur 6")).to_be_visible()
        expect(page.locator(".now .label", has_text="Chrome")).to_be_visible()
        page.screenshot(path=str(shots / "guide-visuel.png"), full_page=False)

        page.get_by_role("button", name="C'est fait").click()
        expect(page.get_by_role("status")).to_contain_text("C'est noté")
        assert any(item.request.url.endswith(f"/Calls/{call.call_sid}.json") for item in twilio.calls)
        call.post(public + "/voice/page", call.params())  # Twilio asks for the moved call's TwiML
        # The page follows the call by itself, within two seconds.
        expect(page.locator(".now .label", has_text="Utilisation de la batterie")).to_be_visible(timeout=2_000)
        call.post(public + "/voice/answer?node=etape2_batterie&phase=ask", call.params(Digits="1"))  # a key on the line
        expect(page.locator(".now").get_by_text("Autorisez l'utilisation en arrière-plan.")).to_be_visible(timeout=2_000)
        browser.close()


def test_without_javascript_the_buttons_work_the_same(live_call):
    call, address, _, public = live_call
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_context(**PHONE, java_script_enabled=False).new_page()
        page.set_default_timeout(10_000)
        page.goto(address)
        page.get_by_role("button", name="Ça ne marche pas").click()
        expect(page.get_by_role("status")).to_contain_text("C'est noté")
        call.post(public + "/voice/page", call.params())
        page.reload()
        expect(page.get_by_text("Étape 3 sur 6")).to_be_visible()
        expect(page.get_by_role("button", name="C'est fait")).to_have_count(0)  # the test has results, not « done »
        browser.close()
