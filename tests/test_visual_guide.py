"""The visual guide on the caller's phone (/g/<token>): the link the SMS guides carry, the page that
shows the step the call is at, and its buttons that move the live call through Twilio's REST API
(faked with `responses`, the outside world), over signed webhooks on both backends."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from servers import RedisServer

ACCOUNT = "AC" + "1" * 32
MESSAGES = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
TO_BATTERY = ["2", "1"]  # up to date, Android 15 with a browser: step 2, its first action
ORIGIN = {"Origin": "http://localhost"}


@pytest.fixture
def guide_app(make_app):
    return make_app(TWILIO_ACCOUNT_SID=ACCOUNT, IVR_SMS_FROM="+33700000000", TWILIO_WORKFLOW_SID="WW" + "a" * 32,
                    IVR_PUBLIC_URL="http://localhost", IVR_API_TOKEN="api")


def calls_api(call_sid: str) -> str:
    return f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls/{call_sid}.json"


def twilio_moves(call_sid: str, status: int = 200) -> None:
    responses.post(calls_api(call_sid), status=status, json={"sid": call_sid, "account_sid": ACCOUNT, "status": "in-progress"}
                   if status == 200 else {"code": 20500, "message": "Internal Server Error", "status": status})


def text(body: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", body))


def at_battery(guide_app, caller):
    """A caller at step 2's first action, with the call's page address (from the agent's document)."""
    call = caller(target=guide_app)
    result = call.call(TO_BATTERY, hang_up_status=False)
    assert result.questions[-1].node == "etape2_informations_application"
    document = guide_app.test_client().get(f"/api/calls/{call.call_sid}/context", headers={"Authorization": "Bearer api"}).get_json()
    return call, urlsplit(document["visual_guide_url"]).path


def press(guide_app, path: str, action: str, step: str, headers=ORIGIN):
    return guide_app.test_client().post(path, data={"action": action, "etape": step}, headers=headers)


def twilio_follows(call, path: str = "/voice/page") -> str:
    """What Twilio does once the call is moved: it asks our URL for the call's next TwiML, signed."""
    status, body = call.post("http://localhost" + path, call.params())
    assert status == 200
    return unescape(body)


@responses.activate
def test_the_sms_guide_carries_the_calls_page_which_shows_the_step_with_its_labels(guide_app, caller):
    responses.post(MESSAGES, status=201, json={"sid": "SM" + "2" * 32, "status": "queued", "account_sid": ACCOUNT})
    call, path = at_battery(guide_app, caller)
    call.post("http://localhost/voice/answer?node=etape2_informations_application&phase=ask", call.params(Digits="8"))
    (sms,) = [c for c in responses.calls if c.request.url == MESSAGES]  # not what a thread of an earlier test sends
    body = parse_qs(sms.request.body)["Body"][0]
    assert body.endswith(f"Guide pas à pas : http://localhost{path}") and path.startswith("/g/") and len(path) > 40
    page = guide_app.test_client().get(path)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "same-origin"
    html = page.get_data(as_text=True)
    assert "Étape 2 sur 6" in html and '<span class="label">Chrome</span>' in html and "Infos sur l&#39;appli" in html
    buttons = re.findall(r'<button type="submit" name="action" value="(\w+)"', html)
    assert buttons == ["fait", "resolu", "echec", "conseiller"]
    assert "C&#39;est fait" in html and "Ça ne marche pas" in html and "Parler à un conseiller" in html
    assert 'name="etape" value="etape2_informations_application"' in html
    assert "http://" not in html.replace("http://localhost", "") and "https://" not in html  # no third-party asset
    assert guide_app.test_client().get(path + "/etat").get_json() == {"etat": "etape2_informations_application|ask|"}


@responses.activate
def test_a_button_moves_the_live_call_which_says_it_is_noted_and_goes_on(guide_app, caller):
    call, path = at_battery(guide_app, caller)
    twilio_moves(call.call_sid)
    pressed = press(guide_app, path, "fait", "etape2_informations_application")
    assert pressed.status_code == 303 and pressed.headers["Location"].endswith("?note=ok")
    (move,) = [c for c in responses.calls if f"/Calls/{call.call_sid}" in c.request.url]
    moved = parse_qs(move.request.body)
    assert moved == {"Url": ["http://localhost/voice/page"], "Method": ["POST"]}
    page = text(guide_app.test_client().get(path + "?note=ok").get_data(as_text=True))
    assert "C'est noté. L'appel passe à la suite." in page and "Votre choix est noté : l'appel va suivre." in page
    twiml = twilio_follows(call)
    assert "C'est noté." in twiml and "Deuxième action : sélectionnez la rubrique de la batterie." in twiml
    assert "node=etape2_batterie" in twiml
    page = guide_app.test_client().get(path).get_data(as_text=True)
    assert '<span class="label">Utilisation de la batterie</span>' in page
    assert guide_app.test_client().get(path + "/etat").get_json() == {"etat": "etape2_batterie|ask|"}
    # « C'est résolu »: the call ends solved, and the page becomes the plain guide.
    press(guide_app, path, "resolu", "etape2_batterie")
    twiml = twilio_follows(call)
    assert twiml.index("C'est noté.") < twiml.index("Parfait, votre problème est résolu.") and "node=note_resolu" in twiml  # then the rating question
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="200"))
    record = guide_app.extensions["ivr"].records.get(call.call_sid)
    assert record["outcome"] == "solved"
    page = text(guide_app.test_client().get(path).get_data(as_text=True))
    assert "Votre appel est terminé" in page and "Ce guide reste disponible jusqu'au" in page
    assert "Étape 5" in page and "Désinstallez l'application e-CPS de votre téléphone." in page and "C'est fait" not in page
    assert guide_app.test_client().get(path + "/etat").get_json() == {"etat": "fin"}


@responses.activate
def test_the_agent_reads_what_came_from_the_page(guide_app, caller):
    call, path = at_battery(guide_app, caller)
    twilio_moves(call.call_sid)
    press(guide_app, path, "echec", "etape2_informations_application")  # « Ça ne marche pas »: step 3
    assert "Étape 3. Testez votre" in twilio_follows(call)
    press(guide_app, path, "echec", "etape3_test")  # the test is KO: step 4, the answer kept as if keyed
    assert "Étape 4." in twilio_follows(call)
    press(guide_app, path, "conseiller", "etape4_deconnexion")
    twiml = twilio_follows(call)
    assert "C'est noté." in twiml and "<Enqueue" in twiml
    document = guide_app.extensions["ivr"].records.get(call.call_sid)["context"]
    assert [item["button"] for item in document["from_page"]] == ["Ça ne marche pas", "Ça ne marche pas", "Parler à un conseiller"]
    assert document["answers"]["resultat_test_ecps"] == "KO"
    test = next(item for item in document["path"] if item["field"] == "resultat_test_ecps")
    assert test["from_page"] is True and test["answer"] == "KO"
    assert document["visual_guide_url"] == "http://localhost" + path
    assert "Sur la page du guide visuel : « Ça ne marche pas » (étape 2)" in document["summary_fr"]
    assert document["reason"] == "caller_request"
    # With an agent, the page says so and offers no button.
    page = text(guide_app.test_client().get(path).get_data(as_text=True))
    assert "Un conseiller va vous répondre" in page and "C'est fait" not in page


@responses.activate
def test_when_twilio_cannot_move_the_call_its_next_turn_applies_the_button(guide_app, caller):
    call, path = at_battery(guide_app, caller)
    twilio_moves(call.call_sid, status=500)
    pressed = press(guide_app, path, "fait", "etape2_informations_application")
    assert pressed.headers["Location"].endswith("?note=bientot")
    assert guide_app.test_client().get(path + "/etat").get_json() == {"etat": "etape2_informations_application|ask|attente"}
    # The wait step's reminder (Twilio's <Gather> ran out of quiet) is the next turn.
    _, twiml = call.post("http://localhost/voice/answer?node=etape2_informations_application&phase=ask", call.params())
    assert "C'est noté." in unescape(twiml) and "node=etape2_batterie" in twiml


@responses.activate
def test_a_button_for_a_question_the_call_has_left_changes_nothing(guide_app, caller):
    call, path = at_battery(guide_app, caller)
    call.post("http://localhost/voice/answer?node=etape2_informations_application&phase=ask", call.params(Digits="1"))
    pressed = press(guide_app, path, "fait", "etape2_informations_application")  # the page was not reloaded yet
    assert pressed.headers["Location"].endswith("?note=deja") and len(responses.calls) == 0
    # Pressed just before a key of the caller moved the call: the key wins, the button is said to come too late.
    twilio_moves(call.call_sid)
    press(guide_app, path, "fait", "etape2_batterie")
    call.post("http://localhost/voice/answer?node=etape2_batterie&phase=ask", call.params(Digits="0"))  # the agent, by key
    twiml = twilio_follows(call)
    assert "C'est noté" not in twiml and "<Enqueue" in twiml  # still put through, not hung up


@responses.activate
def test_the_buttons_refuse_another_site_a_forged_link_and_an_old_one(guide_app, caller):
    call, path = at_battery(guide_app, caller)
    refused = press(guide_app, path, "fait", "etape2_informations_application", headers={"Origin": "https://ailleurs.example"})
    assert refused.status_code == 403 and "depuis la page du guide" in refused.get_data(as_text=True)
    cross = press(guide_app, path, "fait", "etape2_informations_application", headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403 and len(responses.calls) == 0
    assert guide_app.test_client().get(path + "/etat").get_json()["etat"].endswith("|")  # nothing pending
    forged = guide_app.test_client().get(path[:-3] + "abc")
    assert forged.status_code == 404 and "Ce lien de guide n&#39;existe pas" in forged.get_data(as_text=True)
    assert guide_app.test_client().get("/g/" + "x" * 60).status_code == 404
    ivr = guide_app.extensions["ivr"]
    started = ivr.clock()
    ivr.clock = lambda: started + 25 * 3600
    expired = guide_app.test_client().get(path)
    assert expired.status_code == 410 and "a expiré" in expired.get_data(as_text=True)


def test_without_a_public_address_the_sms_carries_the_general_help_page(make_app, caller):
    app = make_app(TWILIO_ACCOUNT_SID=ACCOUNT, IVR_SMS_FROM="+33700000000", TWILIO_WORKFLOW_SID="WW" + "a" * 32)
    with responses.RequestsMock() as mock:
        mock.post(MESSAGES, status=201, json={"sid": "SM" + "2" * 32, "status": "queued", "account_sid": ACCOUNT})
        call = caller(target=app)
        call.call([*TO_BATTERY, "8"], hang_up_status=False)
        body = parse_qs(mock.calls[0].request.body)["Body"][0]
    assert body.endswith("Guide pas à pas : https://esante.gouv.fr/produits-services/e-cps")


# ---- the buttons, as the engine takes them (no web) ------------------------------------------------
@pytest.fixture(scope="module")
def shipped():
    from conftest import ROOT

    from ivr.call.library import load_bundle

    return load_bundle(ROOT / "flows" / "ecps.yaml", ROOT / "prompts")[0]


@pytest.mark.parametrize(("node", "expected"), [
    ("etape1_a_jour", ("conseiller",)),  # a question of fact: answered on the keypad
    ("etape1_mise_a_jour", ("fait", "resolu", "echec", "conseiller")),
    ("etape1_resolu", ("resolu", "echec", "conseiller")),
    ("etape3_test", ("echec", "conseiller")),  # its keys are results (« Bravo » is not « solved »): « KO » is « ça ne marche pas »
    ("etape5_activation", ("fait", "resolu", "echec", "conseiller")),
    ("etape6_rpps", ("conseiller",)),
    ("fin_resolu", ()),
])
def test_the_buttons_that_apply_at_each_question(shipped, node, expected):
    from ivr.call import visual
    from ivr.call.session import Session

    session = Session("CAx", "+33612345678", 0.0, shipped.flow.version, node=node)
    assert visual.buttons(shipped.flow, session) == expected
    assert visual.buttons(shipped.flow, session.evolve(phase="confirm")) == ()
    assert visual.buttons(shipped.flow, session.evolve(outcome="transferred")) == ()


def test_a_button_kept_for_a_question_the_call_has_left_is_said_to_come_too_late(shipped):
    from ivr.call import engine, visual
    from ivr.call.session import Ask, Session

    session = visual.press(Session("CAx", "+33612345678", 0.0, shipped.flow.version, node="etape2_batterie"), "fait")
    session = session.evolve(node="etape2_arriere_plan")  # moved on by a path that did not clear the button
    after, actions = engine.step(shipped.flow, session, visual.pressed(session, 5.0))
    assert after.page == "" and after.node == "etape2_arriere_plan" and after.history[-1]["late"] is True
    assert isinstance(actions[0], Ask) and actions[0].says[0].key == "guide_visuel.deja" and actions[0].node == "etape2_arriere_plan"


def test_every_question_shows_its_sentence_as_heard_with_nothing_left_to_fill(shipped):
    from ivr.call import visual
    from ivr.call.session import Session

    params = {"jours": "90", "quand": "demain à 8 heures 30"}
    call = Session("CAx", "+33612345678", 0.0, shipped.flow.version)
    for node in shipped.flow.nodes.values():
        if node.type in ("wait", "menu", "digits", "record", "rating"):
            shown = visual.lines(shipped.flow, shipped.prompts, call.evolve(node=node.name), params, shipped.flow.closed_prompts)
            assert shown and not any("{" in line for line in shown), node.name
    rpps = visual.lines(shipped.flow, shipped.prompts, call.evolve(node="etape6_rpps"), params)
    assert rpps[0].startswith("Tapez les 11 chiffres de votre RPPS")
    # The caller's number as heard; a number being read back, as it is read.
    number = visual.lines(shipped.flow, shipped.prompts, call.evolve(node="rappel_numero"), params)
    assert "06 12 34 56 78" in " ".join(number) and "+336" not in " ".join(number)
    read_back = visual.lines(shipped.flow, shipped.prompts, call.evolve(node="etape6_rpps", phase="confirm", pending="10012345673"))
    assert "1 0 0, 1 2 3, 4 5 6, 7 3" in " ".join(read_back)


def test_no_agent_button_when_no_agent_can_answer(make_app, caller):
    app = make_app(TWILIO_ACCOUNT_SID=ACCOUNT, IVR_API_TOKEN="api")  # no destination configured
    call = caller(target=app)
    call.call(TO_BATTERY, hang_up_status=False)
    document = app.test_client().get(f"/api/calls/{call.call_sid}/context", headers={"Authorization": "Bearer api"}).get_json()
    page = app.test_client().get(urlsplit(document["visual_guide_url"]).path).get_data(as_text=True)
    assert re.findall(r'<button type="submit" name="action" value="(\w+)"', page) == ["fait", "resolu", "echec"]
    refused = press(app, urlsplit(document["visual_guide_url"]).path, "conseiller", "etape2_informations_application")
    assert refused.headers["Location"].endswith("?note=deja")


@responses.activate
def test_without_a_public_address_the_call_is_never_moved_to_one_taken_from_the_request(make_app, caller):
    app = make_app(TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_WORKFLOW_SID="WW" + "a" * 32, IVR_API_TOKEN="api")
    call, path = at_battery(app, caller)
    forged = app.test_client().post(path, data={"action": "conseiller", "etape": "etape2_informations_application"},
                                    headers={"Origin": "https://ailleurs.example"}, base_url="https://ailleurs.example")
    assert forged.headers["Location"].endswith("?note=bientot") and len(responses.calls) == 0  # kept, applied by the call itself
    _, twiml = call.post("http://localhost/voice/answer?node=etape2_informations_application&phase=ask", call.params())
    assert "C'est noté." in unescape(twiml) and "<Enqueue" in twiml


@responses.activate
def test_a_button_waits_through_keys_that_leave_the_question_and_a_second_press_is_told_to_wait(guide_app, caller):
    call, path = at_battery(guide_app, caller)
    twilio_moves(call.call_sid, status=500)
    assert press(guide_app, path, "conseiller", "etape2_informations_application").headers["Location"].endswith("?note=bientot")
    assert press(guide_app, path, "fait", "etape2_informations_application").headers["Location"].endswith("?note=attente")
    call.post("http://localhost/voice/answer?node=etape2_informations_application&phase=ask", call.params(Digits="*"))  # repeat
    assert guide_app.test_client().get(path + "/etat").get_json()["etat"].endswith("|attente")
    _, twiml = call.post("http://localhost/voice/answer?node=etape2_informations_application&phase=ask", call.params())
    assert "C'est noté." in unescape(twiml) and "<Enqueue" in twiml
    assert press(guide_app, path, "fait", "etape2_informations_application").headers["Location"].endswith("?note=conseiller")


@pytest.mark.skipif(not RedisServer.available, reason="redis-server is not installed")
@pytest.mark.logs_errors("visual guide: the button could not be kept")
@pytest.mark.only_backend("sqlite", "one run is enough: the test starts its own redis-server")
def test_with_the_session_store_failing_the_page_says_so_and_never_fails(make_app, caller, backend):
    import redis as redis_py

    server = RedisServer()
    server.start()
    try:
        app = make_app(TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_WORKFLOW_SID="WW" + "a" * 32, IVR_API_TOKEN="api", REDIS_URL=server.url)
        call, path = at_battery(app, caller)
        redis_py.Redis.from_url(server.url).config_set("maxmemory-policy", "noeviction")
        redis_py.Redis.from_url(server.url).config_set("maxmemory", 1)  # reads work, writes are refused
        pressed = press(app, path, "fait", "etape2_informations_application")
        assert pressed.status_code == 303 and pressed.headers["Location"].endswith("?note=indisponible")
        server.kill()
        page = app.test_client().get(path)
        assert page.status_code == 200 and "Guide momentanément indisponible" in page.get_data(as_text=True)
        assert "Votre appel est terminé" not in page.get_data(as_text=True)
        assert app.test_client().get(path + "/etat").get_json() == {"etat": "indisponible"}  # the page keeps asking
        assert press(app, path, "fait", "etape2_informations_application").headers["Location"].endswith("?note=indisponible")
    finally:
        server.remove()
