"""Issue 36, the agent's page in a real headless Chromium (Debian's `chromium`, driven by Playwright):
opened while the call waits in the queue, an answer the caller gives there appears without a reload;
framed by the agent desktop's origin it loads, framed by any other it is refused."""

from __future__ import annotations

import re
import socket
import threading
from urllib.parse import urlsplit

import pytest
from conftest import TOKEN, VALID_RPPS, WORKFLOW
from test_calls import TO_STEP6
from test_console_e2e import CHROMIUM, FLAGS, sync_api
from werkzeug.serving import make_server

from ivr.supervisor.simulator import Caller, FlaskTransport

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")


def _serve(app, port):
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _desktop(port: int, address: str):
    """The agent desktop: a page of another origin that frames the agent's page (as Flex's CRM container)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Desktop(BaseHTTPRequestHandler):
        def do_GET(self):
            body = f'<!doctype html><iframe id="f" src="{address}" width="900" height="600"></iframe>'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Desktop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answer_in_queue(call, digits: str) -> None:
    wait = call.post(call.base_url + "/voice/wait", call.params(QueuePosition="1"))[1]
    action = re.search(r'<Gather action="([^"]+)"', wait).group(1).replace("&amp;", "&")
    call.post(action if action.startswith("http") else call.base_url + action, call.params(Digits=digits))


def test_an_answer_given_in_the_queue_appears_on_the_open_page_and_framing_is_the_desktops_only(make_app, shots):
    port, desktop_port = _free_port(), _free_port()
    public, desktop = f"http://127.0.0.1:{port}", f"http://localhost:{desktop_port}"
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_API_TOKEN="api", IVR_PUBLIC_URL=public, IVR_AGENT_FRAME_ORIGINS=desktop)
    call = Caller(FlaskTransport(app.test_client()), public, TOKEN, caller="+33611223344")
    call.call([*TO_STEP6, "1", VALID_RPPS, "1"], hang_up_status=False)
    document = app.test_client().get(f"/api/calls/{call.call_sid}/context", headers={"Authorization": "Bearer api"}).get_json()
    address = public + urlsplit(document["agent_url"]).path
    httpd = _serve(app, port)
    expect = sync_api.expect
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="fr-FR")
            page.set_default_timeout(10_000)
            page.goto(address)
            expect(page.locator("#who")).to_contain_text(f"RPPS {VALID_RPPS}")
            expect(page.locator("#answers")).not_to_contain_text("reproductible")
            _answer_in_queue(call, "#")  # no card
            _answer_in_queue(call, "1")  # reproducible, given while waiting
            expect(page.locator("#answers tr.queue", has_text="reproductible")).to_contain_text("en file d'attente")
            page.screenshot(path=str(shots / "page-conseiller.png"), full_page=True)

            # Framed: by the agent desktop's origin it loads; by any other origin it is refused.
            desk = _desktop(desktop_port, address)
            try:
                for origin, allowed in ((desktop, True), (f"http://127.0.0.1:{desktop_port}", False)):
                    framing = browser.new_page()
                    framing.goto(origin + "/")
                    frame = framing.frame_locator("#f")
                    if allowed:
                        expect(frame.locator("#who")).to_contain_text(f"RPPS {VALID_RPPS}")
                    else:
                        framing.wait_for_timeout(1500)
                        assert "RPPS" not in framing.frames[1].content()
            finally:
                desk.shutdown()
            browser.close()
    finally:
        httpd.shutdown()
