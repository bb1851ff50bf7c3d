"""Issue 36, the agent's page: one call at a glance, live, framed only by the agent desktop."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from conftest import TOKEN, VALID_RPPS, WORKFLOW
from test_calls import TO_STEP6

from ivr.supervisor.simulator import Caller, FlaskTransport

API = {"Authorization": "Bearer api"}


def queued_call(app):
    """A call put in the queue at step 6 (its identifier given), the questions asked while it waits."""
    call = Caller(FlaskTransport(app.test_client()), "http://localhost", TOKEN, caller="+33611223344")
    result = call.call([*TO_STEP6, "1", VALID_RPPS, "1"], hang_up_status=False)
    assert result.end == "caller_hung_up" or result.wait_url
    document = app.test_client().get(f"/api/calls/{call.call_sid}/context", headers=API).get_json()
    return call, urlsplit(document["agent_url"]).path


def test_the_agent_page_shows_who_where_and_each_answer_with_where_it_came_from_and_follows_the_queue(make_app):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_API_TOKEN="api", IVR_PUBLIC_URL="http://localhost")
    call, path = queued_call(app)
    assert path.startswith("/agent/") and len(path) > 30
    page = app.test_client().get(path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert f"RPPS {VALID_RPPS}" in html and "06 11 22 33 44" in html and "Test e-CPS</dt><dd id=\"ecps-test\">KO" in html
    assert re.search(r"<td>test e-CPS</td><td>KO</td><td>au téléphone</td>", html)
    before = app.test_client().get(path + "/etat").get_json()
    # A question answered in the queue: the state changes, marked « en file d'attente ».
    wait = call.post("http://localhost/voice/wait", call.params(QueuePosition="1"))[1]
    action = re.search(r'<Gather action="([^"]+)"', wait).group(1).replace("&amp;", "&")
    call.post(action if action.startswith("http") else "http://localhost" + action, call.params(Digits="#"))  # no card
    wait = call.post("http://localhost/voice/wait", call.params(QueuePosition="1"))[1]
    action = re.search(r'<Gather action="([^"]+)"', wait).group(1).replace("&amp;", "&")
    call.post(action if action.startswith("http") else "http://localhost" + action, call.params(Digits="1"))  # reproducible
    after = app.test_client().get(path + "/etat").get_json()
    assert after["version"] != before["version"]
    assert {"label": "reproductible", "value": "oui", "origin": "en file d'attente", "kind": "queue", "beside": ""} in after["answers"]


def test_the_agent_page_is_framed_only_by_the_agent_desktop(make_app):
    plain = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_API_TOKEN="api", IVR_PUBLIC_URL="http://localhost")
    _, path = queued_call(plain)
    refused = plain.test_client().get(path)
    assert "frame-ancestors 'none'" in refused.headers["Content-Security-Policy"] and refused.headers["X-Frame-Options"] == "DENY"
    framed = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_API_TOKEN="api", IVR_PUBLIC_URL="http://localhost",
                      IVR_AGENT_FRAME_ORIGINS="https://flex.twilio.com")
    _, path = queued_call(framed)
    allowed = framed.test_client().get(path)
    assert "frame-ancestors https://flex.twilio.com" in allowed.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in allowed.headers
    console = framed.test_client().get("/console/login")  # no other page of ours can be framed
    assert "frame-ancestors 'none'" in console.headers["Content-Security-Policy"] and console.headers["X-Frame-Options"] == "DENY"


def test_a_token_that_is_not_ours_is_a_404(make_app):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW)
    unknown = app.test_client().get("/agent/abc.def")
    assert unknown.status_code == 404 and "Ce lien ne correspond à aucun appel." in unknown.get_data(as_text=True)


def test_a_callback_request_is_marked_done_from_the_page_under_the_agents_name(make_app):
    from test_every_path import HOURS, SUNDAY_NIGHT

    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_API_TOKEN="api", IVR_PUBLIC_URL="http://localhost", IVR_ALWAYS_OPEN="",
                   IVR_HOURS=HOURS, IVR_CLOCK=lambda: SUNDAY_NIGHT)
    call = Caller(FlaskTransport(app.test_client()), "http://localhost", TOKEN, caller="+33611223344")
    call.call(["2", "0", "1", "1"])  # at night: 0, a callback to this number
    request_left = app.extensions["ivr"].callbacks.of_call(call.call_sid)
    path = urlsplit(request_left["context"]["agent_url"]).path
    page = app.test_client().get(path).get_data(as_text=True)
    assert "Demande de rappel" in page and 'href="tel:+33611223344"' in page and "Marquer traité" in page
    assert app.test_client().post(path + "/traite", data={"agent": "Nadia"}, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    # A name of spaces: said beside the field, which is invalid, in the title too (RGAA: errors tied to their fields).
    unnamed = app.test_client().post(path + "/traite", data={"agent": "   "}, follow_redirects=True).get_data(as_text=True)
    assert "<title>Erreur : " in unnamed and 'aria-invalid="true" aria-describedby="agent-error"' in unnamed and 'id="agent-error"' in unnamed
    done = app.test_client().post(path + "/traite", data={"agent": "Nadia"})
    assert done.status_code == 303
    (item,) = app.extensions["ivr"].callbacks.list(True)
    assert (item["status"], item["done_by"]) == ("done", "Nadia")
    assert "traitée par Nadia" in app.test_client().get(path).get_data(as_text=True)
    again = app.test_client().post(path + "/traite", data={"agent": "Paul"}, follow_redirects=True).get_data(as_text=True)
    assert "Rien à marquer : la demande était déjà traitée." in again and "traitée par Nadia" in again


def test_the_page_state_says_when_only_a_reload_would_show_a_change(make_app):
    """What the page redraws in place (answers, card, summary…) and the rest (the identifier, the
    message) are versioned apart: an answer in the queue changes the first only."""
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_API_TOKEN="api", IVR_PUBLIC_URL="http://localhost")
    call, path = queued_call(app)
    before = app.test_client().get(path + "/etat").get_json()
    wait = call.post("http://localhost/voice/wait", call.params(QueuePosition="1"))[1]
    action = re.search(r'<Gather action="([^"]+)"', wait).group(1).replace("&amp;", "&")
    call.post(action if action.startswith("http") else "http://localhost" + action, call.params(Digits="12345678901#"))  # a card
    after = app.test_client().get(path + "/etat").get_json()
    assert after["version"] != before["version"] and after["fixed"] == before["fixed"]
