"""Issue 36, step 6 from the caller's own devices: the phone (from the visual guide) and the computer
where the login fails (the page whose code is heard in the queue) send their system, browser,
versions and public IP after showing exactly what is sent; their questions are then not asked, and
the agent sees « relevé sur l'appareil ». Over signed webhooks, on both backends."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import pytest
from conftest import TOKEN, VALID_RPPS, WORKFLOW
from test_calls import TO_STEP6
from test_console import VIEWER, login

from ivr.call import devices
from ivr.storage import retention
from ivr.storage.users import Users
from ivr.supervisor.simulator import Caller, FlaskTransport

API = {"Authorization": "Bearer api"}
CHROME_ANDROID = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
ANDROID_15_HINTS = {"Sec-CH-UA-Platform": '"Android"', "Sec-CH-UA-Platform-Version": '"15.0.0"', "Sec-CH-UA-Mobile": "?1",
                    "Sec-CH-UA-Full-Version-List": '"Google Chrome";v="131.0.6778.86", "Not_A Brand";v="24.0.0.0"'}
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
          "Mobile/15E148 Safari/604.1")
WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
WINDOWS_11_HINTS = {"Sec-CH-UA-Platform": '"Windows"', "Sec-CH-UA-Platform-Version": '"15.0.0"', "Sec-CH-UA-Mobile": "?0",
                    "Sec-CH-UA": '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"'}
STEP6_QUEUED = ["1", VALID_RPPS, "1"]  # RPPS, confirmed: the caller joins the queue
# The queued questions answered in order, whichever are asked: no card, reproducible, happening now,
# phone, Android, 15, Chrome, Windows, 11, no LPS.
QUEUED_ANSWERS = {"etape6_carte": "#", "etape6_reproductible": "1", "etape6_en_cours": "1", "etape6_support": "1",
                  "etape6_systeme_mobile": "2", "etape6_version_mobile": "15", "etape6_navigateurs": "1", "etape6_ordinateur": "1",
                  "etape6_version_ordinateur": "11", "etape6_lps": "2"}


@pytest.mark.parametrize(("user_agent", "hints", "expected"), [
    # Chrome on Android says « Android 10; K » whatever the version: only the Client Hints know it.
    (CHROME_ANDROID, {}, ("téléphone", "Android", None, "Chrome", "131", "user-agent")),
    (CHROME_ANDROID, ANDROID_15_HINTS, ("téléphone", "Android", "15", "Chrome", "131", "client hints")),
    (IPHONE, {}, ("téléphone", "iOS", "17", "Safari", "17", "user-agent")),
    ("Mozilla/5.0 (iPad; CPU OS 16_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.2 Mobile/15E148 Safari/604.1", {},
     ("tablette", "iOS", "16", "Safari", "16", "user-agent")),
    # An Android tablet's browser leaves « Mobile » out.
    ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", {},
     ("tablette", "Android", "13", "Chrome", "120", "user-agent")),
    # Every Windows says « NT 10.0 »: 10 or 11 is for the hints (platform version 13 and more: 11).
    (WINDOWS, {}, ("ordinateur", "Windows", None, "Chrome", "131", "user-agent")),
    (WINDOWS, WINDOWS_11_HINTS, ("ordinateur", "Windows", "11", "Chrome", "131", "client hints")),
    (WINDOWS, {**WINDOWS_11_HINTS, "Sec-CH-UA-Platform-Version": '"10.0.0"'}, ("ordinateur", "Windows", "10", "Chrome", "131", "client hints")),
    (WINDOWS + " Edg/131.0.0.0", {**WINDOWS_11_HINTS, "Sec-CH-UA": '"Microsoft Edge";v="131", "Chromium";v="131"'},
     ("ordinateur", "Windows", "11", "Edge", "131", "client hints")),
    ("Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0", {},
     ("ordinateur", "Windows", "7", "Firefox", "115", "user-agent")),
    # macOS browsers say 10.15.7 whatever the version; Chrome's hints say 14.
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", {},
     ("ordinateur", "macOS", None, "Safari", "17", "user-agent")),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
     {"Sec-CH-UA-Platform": '"macOS"', "Sec-CH-UA-Platform-Version": '"14.5.0"', "Sec-CH-UA": '"Google Chrome";v="131"'},
     ("ordinateur", "macOS", "14", "Chrome", "131", "client hints")),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", {}, ("ordinateur", "Linux", None, "Firefox", "128", "user-agent")),
    # Hints that contradict the User-Agent (a changed User-Agent, a device emulator) are not believed.
    (IPHONE, {"Sec-CH-UA-Platform": '"Linux"', "Sec-CH-UA-Platform-Version": '""'}, ("téléphone", "iOS", "17", "Safari", "17", "user-agent")),
    ("", {}, (None, None, None, None, None, "user-agent")),
    # From iOS 26 every iOS User-Agent says 18_6: Safari's Version/ tells the system; another browser cannot.
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.0 Mobile/15E148 "
     "Safari/604.1", {}, ("téléphone", "iOS", "26", "Safari", "26", "user-agent")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Mobile/15E148 "
     "Safari/604.1", {}, ("téléphone", "iOS", "18", "Safari", "18", "user-agent")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 "
     "Safari/604.1", {}, ("téléphone", "iOS", None, "Chrome", "131", "user-agent")),
    # Chrome's desktop mode on an Android tablet: a Linux User-Agent, the real platform in the hints.
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
     {"Sec-CH-UA-Platform": '"Android"', "Sec-CH-UA-Platform-Version": '"14.0.0"', "Sec-CH-UA-Mobile": "?0", "Sec-CH-UA": '"Google Chrome";v="131"'},
     ("tablette", "Android", "14", "Chrome", "131", "client hints")),
    # Hostile hints: a 5,000-digit version, markup for a brand's version: nothing believed, nothing broken.
    (WINDOWS, {**WINDOWS_11_HINTS, "Sec-CH-UA-Platform-Version": '"' + "1" * 5000 + '"'}, ("ordinateur", "Windows", None, "Chrome", "131",
                                                                                            "client hints")),
    (WINDOWS, {**WINDOWS_11_HINTS, "Sec-CH-UA": '"Google Chrome";v="<b>131</b>"'}, ("ordinateur", "Windows", "11", "Chrome", "131", "client hints")),
    # ChromeOS's platform version is a build number (14541), not a version anyone knows.
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
     {"Sec-CH-UA-Platform": '"Chrome OS"', "Sec-CH-UA-Platform-Version": '"14541.0.0"', "Sec-CH-UA": '"Google Chrome";v="131"'},
     ("ordinateur", "ChromeOS", None, "Chrome", "131", "client hints")),
])
def test_a_device_is_read_from_its_client_hints_else_its_user_agent(user_agent, hints, expected):
    facts = devices.read(user_agent, hints, "90.112.34.56")
    assert (facts["device"], facts["system"], facts["system_version"], facts["browser"], facts["browser_version"], facts["source"]) == expected
    assert facts["ip"] == "90.112.34.56"


@pytest.mark.parametrize(("address", "shown"), [("90.112.34.56", "90.112.34.56"), ("2a01:cb00::1", "2a01:cb00::1"), ("127.0.0.1", None),
                                                ("10.1.2.3", None), ("192.168.1.20", None), ("203.0.113.7", None), ("nope", None)])
def test_only_a_public_address_is_a_public_ip(address, shown):
    # A private one is our proxy's (IVR_TRUSTED_PROXIES not set right): never shown as the caller's.
    assert devices.read(WINDOWS, {}, address)["ip"] == shown
    assert devices.described(devices.read(WINDOWS, {}, address))[-1][1] == (shown or "non visible")


def _app(make_app, **extra):
    return make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_API_TOKEN="api", IVR_PUBLIC_URL="http://localhost", **extra)


def _document(app, call_sid: str) -> dict:
    return app.test_client().get(f"/api/calls/{call_sid}/context", headers=API).get_json()


PHONE_IP, COMPUTER_IP = "90.112.34.56", "81.250.12.34"  # public addresses (the documentation's ranges are not public ones)


def _client(app, address: str = COMPUTER_IP):
    """A browser at a public address (the test client's own is 127.0.0.1, which no caller has)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _send_phone(app, call_sid: str, user_agent: str = CHROME_ANDROID, hints=None, forwarded: str | None = None) -> str:
    """The caller opens the visual guide, taps « Envoyer les informations de ce téléphone », reads
    what will be sent, and agrees. What the consent page showed."""
    guide = urlsplit(_document(app, call_sid)["visual_guide_url"]).path
    headers = {"User-Agent": user_agent, **(hints if hints is not None else ANDROID_15_HINTS)}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    client = _client(app, PHONE_IP)
    page = client.get(guide, headers=headers).get_data(as_text=True)
    assert "Envoyer les informations de ce téléphone au conseiller" in page
    consent = client.get(guide + "/appareil", headers=headers)
    assert consent.status_code == 200 and "Sec-CH-UA-Platform-Version" in consent.headers["Accept-CH"]
    html = unescape(consent.get_data(as_text=True))
    payload = re.search(r'name="envoi" value="([^"]+)"', html).group(1)
    sent = client.post(guide + "/appareil", data={"envoi": payload}, headers={**headers, "Origin": "http://localhost"})
    assert sent.status_code == 303 and "note=appareil" in sent.headers["Location"]
    return html


def _send_computer(app, code: str, user_agent: str = WINDOWS, hints=None, forwarded: str | None = None) -> str:
    """On the computer: the page, the code heard on the phone, what will be sent, « Envoyer »."""
    headers = {"User-Agent": user_agent, **(hints if hints is not None else WINDOWS_11_HINTS)}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    client = _client(app)
    first = client.get("/code", headers=headers)
    assert first.status_code == 200 and "Le code entendu au téléphone" in first.get_data(as_text=True)
    assert "Sec-CH-UA-Platform-Version" in first.headers["Critical-CH"]
    consent = client.post("/code", data={"code": code}, headers=headers)
    html = unescape(consent.get_data(as_text=True))
    assert consent.status_code == 200, html
    payload = re.search(r'name="envoi" value="([^"]+)"', html).group(1)
    done = client.post("/code/envoyer", data={"envoi": payload}, headers={**headers, "Origin": "http://localhost"})
    assert "C'est envoyé" in unescape(done.get_data(as_text=True))
    return html


def _queued_call(app, before_queue=None, in_queue=None):
    """A call to step 6, into the queue, answering every queued question it hears (QUEUED_ANSWERS).
    `before_queue(call)` runs at the first question of step 6; `in_queue(call, question)` at each
    question asked in the queue, before it is answered. The result and the queued questions."""
    call = Caller(FlaskTransport(app.test_client()), "http://localhost", TOKEN, caller="+33611223344")
    keys = iter([*TO_STEP6, *STEP6_QUEUED])
    asked = []

    def answer(question):
        if question.node == "etape6_type_identifiant" and before_queue is not None and not asked and "ran" not in answer.__dict__:
            answer.ran = True
            before_queue(call)
        if "/voice/wait/" in question.action:
            asked.append(question.node)
            if in_queue is not None:
                in_queue(call, question)
            if "phase=more" in question.action:
                return "#"  # no other browser
            return QUEUED_ANSWERS.get(question.node)
        return next(keys, None)

    result = call.call(answer, hang_up_status=False)
    assert result.end == "enqueue", result.end
    return call, result, asked


def test_a_phone_that_sent_its_facts_is_not_asked_them_and_the_agent_sees_where_they_came_from(make_app):
    app = _app(make_app)
    _, _, usual = _queued_call(app)
    assert {"etape6_support", "etape6_systeme_mobile", "etape6_version_mobile"} <= set(usual)

    shown = {}
    call, result, asked = _queued_call(app, before_queue=lambda call: shown.setdefault("html", _send_phone(app, call.call_sid)))
    html = shown["html"]
    assert "Ces informations sont conservées 90 jours, comme vos réponses." in html
    # What the consent page showed is what was sent: the device, its system and version, its browser, its IP.
    for label, value in (("Appareil", "téléphone"), ("Système", "Android 15"), ("Navigateur", "Chrome 131"),
                         (r"Adresse IP publique \(celle de la connexion internet\)", PHONE_IP)):
        assert re.search(rf"<dt>{label}</dt><dd>{re.escape(value)}</dd>", html), label
    # Its three questions are not asked in the queue: the questionnaire shrinks by three.
    assert not {"etape6_support", "etape6_systeme_mobile", "etape6_version_mobile"} & set(asked)
    assert len(asked) == len(usual) - 3
    document = _document(app, call.call_sid)
    assert document["answers"]["support"] == "téléphone" and document["answers"]["systeme_mobile"] == "Android"
    assert document["answers"]["version_systeme_mobile"] == "15"
    assert set(document["from_device"]) == {"support", "systeme_mobile", "version_systeme_mobile"}
    assert document["devices"]["telephone"]["source"] == "client hints"
    assert document["public_ip"] == {"collected": True, "value": PHONE_IP, "device": "telephone", "by_device": {"telephone": PHONE_IP}}
    assert "Système mobile : Android 15 (relevé sur l'appareil)." in document["summary_fr"]
    assert f"IP publique du téléphone : {PHONE_IP} ; celle de l'ordinateur est à demander." in document["summary_fr"]
    agent = app.test_client().get(urlsplit(document["agent_url"]).path).get_data(as_text=True)
    assert re.search(r"<td>système mobile</td><td>Android</td><td>relevé sur l&#39;appareil</td>", agent)
    assert f"(celle de la connexion internet)</dt><dd>{PHONE_IP}" in agent
    # The guide no longer offers to send them again.
    guide = urlsplit(document["visual_guide_url"]).path
    assert "Envoyer les informations de ce téléphone" not in app.test_client().get(guide).get_data(as_text=True)
    # The supervisor's journey of the call says it: the facts came, their questions were not asked.
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="300"))
    Users(app.extensions["ivr"].db).add(*VIEWER, "viewer")
    journey = unescape(login(app, VIEWER).get(f"/console/appels/{call.call_sid}").get_data(as_text=True))
    assert "informations envoyées par un appareil</td>" in journey and "téléphone ou tablette" in journey
    assert journey.count("relevé sur l'appareil : pas demandé") == 3


def test_the_computer_sends_its_facts_with_the_code_heard_in_the_queue_and_its_questions_are_not_asked(make_app):
    app = _app(make_app, IVR_COMPUTER_ADDRESS="aide-ecps.fr/code")
    sent = {}

    def at_the_computer(call, question):
        heard = " ".join(question.heard + question.said)
        if "saisissez le code" in heard and "html" not in sent:
            found = re.search(r"tapez l'adresse aide tiret ecps point fr, barre oblique code, puis saisissez le code ((?:\d ){3,5}\d)", heard)
            assert found, heard
            sent["code"] = found.group(1).replace(" ", "")
            sent["html"] = _send_computer(app, sent["code"])

    call, result, asked = _queued_call(app, in_queue=at_the_computer)
    assert asked[0] == "etape6_carte" and "html" in sent  # said once, before the first queued question
    assert sum("saisissez le code" in text for text in result.said) == 1
    assert not any("Rappel : sur l'ordinateur" in text for text in result.said)  # sent: no reminder
    assert re.search(r"<dt>Système</dt><dd>Windows 11</dd>", sent["html"])
    assert not {"etape6_navigateurs", "etape6_ordinateur", "etape6_version_ordinateur"} & set(asked)
    document = _document(app, call.call_sid)
    assert (document["answers"]["systeme_ordinateur"], document["answers"]["version_systeme_ordinateur"],
            document["answers"]["navigateurs"]) == ("Windows", "11", "Chrome")
    assert document["public_ip"]["device"] == "ordinateur"
    # The code served once: typed again, it is refused.
    again = _client(app).post("/code", data={"code": sent["code"]}, headers={"User-Agent": WINDOWS})
    assert again.status_code == 400 and "Ce code n'est pas valable" in unescape(again.get_data(as_text=True))


def test_the_code_is_not_said_without_an_address_the_computer_can_reach(make_app):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW, IVR_API_TOKEN="api")  # no IVR_PUBLIC_URL nor IVR_COMPUTER_ADDRESS
    _, result, asked = _queued_call(app)
    assert not any("saisissez le code" in text for text in result.said) and "etape6_ordinateur" in asked


def test_facts_sent_after_an_answer_by_voice_are_shown_beside_it_not_over_it(make_app):
    app = _app(make_app)
    call, _, asked = _queued_call(app)  # « Android » (2) and version 15 keyed in the queue
    assert "etape6_systeme_mobile" in asked
    _send_phone(app, call.call_sid, user_agent=IPHONE, hints={})
    document = _document(app, call.call_sid)
    assert document["answers"]["systeme_mobile"] == "Android" and "systeme_mobile" not in document["from_device"]
    assert document["device_answers"]["systeme_mobile"] == "iOS"
    assert "Système mobile : Android 15 (l'appareil indique : iOS)." in document["summary_fr"]
    agent = unescape(app.test_client().get(urlsplit(document["agent_url"]).path).get_data(as_text=True))
    assert "<td>système mobile</td><td>Android — relevé sur l'appareil : iOS</td><td>en file d'attente</td>" in agent


def test_wrong_codes_are_limited_by_address_and_the_ip_is_the_one_the_trusted_proxy_saw(make_app):
    app = _app(make_app, IVR_TRUSTED_PROXIES="1")
    call, _, _ = _queued_call(app)
    code, _ = app.extensions["ivr"].devices.code_for(call.call_sid, app.extensions["ivr"].clock())
    wrong = "0000" if code != "0000" else "1111"
    for _ in range(5):
        refused = _client(app).post("/code", data={"code": wrong}, headers={"User-Agent": WINDOWS, "X-Forwarded-For": "198.51.100.9"})
        assert refused.status_code == 400
    limited = _client(app).post("/code", data={"code": code}, headers={"User-Agent": WINDOWS, "X-Forwarded-For": "198.51.100.9"})
    assert limited.status_code == 429 and "réessayez dans 15 minutes" in unescape(limited.get_data(as_text=True))
    # From another address, the right code still works; the IP sent is the caller's, as the proxy saw it.
    html = _send_computer(app, code, forwarded="81.250.99.7")
    assert "(celle de la connexion internet)</dt><dd>81.250.99.7</dd>" in html
    assert _document(app, call.call_sid)["public_ip"]["value"] == "81.250.99.7"


def test_what_is_sent_is_what_was_shown_and_only_from_our_pages(make_app):
    app = _app(make_app)
    call, _, _ = _queued_call(app)
    code, _ = app.extensions["ivr"].devices.code_for(call.call_sid, app.extensions["ivr"].clock())
    html = _client(app).post("/code", data={"code": code}, headers={"User-Agent": WINDOWS}).get_data(as_text=True)
    payload = re.search(r'name="envoi" value="([^"]+)"', html).group(1)
    forged = _client(app).post("/code/envoyer", data={"envoi": payload[:-3] + "abc"}, headers={"Origin": "http://localhost"})
    assert forged.status_code == 400 and _document(app, call.call_sid)["devices"] == {}
    elsewhere = _client(app).post("/code/envoyer", data={"envoi": payload}, headers={"Origin": "https://evil.example"})
    assert elsewhere.status_code == 403 and _document(app, call.call_sid)["devices"] == {}


def test_an_agent_gives_a_code_when_none_was_heard_and_a_call_over_takes_no_facts(make_app):
    app = make_app(AGENT_NUMBER="+33100000000", IVR_API_TOKEN="api", IVR_PUBLIC_URL="http://localhost")  # no queue: no code said
    call = Caller(FlaskTransport(app.test_client()), "http://localhost", TOKEN, caller="+33611223344")
    answers = [QUEUED_ANSWERS[node] for node in QUEUED_ANSWERS]
    answers.insert(answers.index("1", 6) + 1, "#")  # Chrome, no other browser
    result = call.call([*TO_STEP6, *STEP6_QUEUED, *answers, "2"], hang_up_status=False)
    assert result.end == "dial" and not any("saisissez le code" in text for text in result.said)
    agent = urlsplit(_document(app, call.call_sid)["agent_url"]).path
    page = unescape(app.test_client().get(agent).get_data(as_text=True))
    assert "Donner un code pour l'ordinateur" in page and "Aucun appareil n'a envoyé ses informations." in page
    assert app.test_client().post(agent + "/code", headers={"Origin": "http://localhost"}).status_code == 303
    page = unescape(app.test_client().get(agent).get_data(as_text=True))
    code = re.search(r"ouvrir <strong>localhost/code</strong> et taper le code <strong>(\d{4,6})</strong>", page).group(1)
    _send_computer(app, code)
    page = unescape(app.test_client().get(agent).get_data(as_text=True))
    assert "<h3>Ordinateur" in page and "<dt>Système</dt><dd>Windows 11</dd>" in page
    # The call ends: its guide and a code of it send nothing more.
    ivr = app.extensions["ivr"]
    code, _ = ivr.devices.code_for(call.call_sid, ivr.clock() + 3600)  # a fresh one (the first was used)
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="60"))
    consent = _client(app).post("/code", data={"code": code}, headers={"User-Agent": WINDOWS}).get_data(as_text=True)
    payload = re.search(r'name="envoi" value="([^"]+)"', consent).group(1)
    over = _client(app).post("/code/envoyer", data={"envoi": payload}, headers={"Origin": "http://localhost"})
    assert "Cet appel est terminé : rien n'a été envoyé." in unescape(over.get_data(as_text=True))


def test_device_facts_and_codes_are_purged_with_the_calls(make_app):
    app = _app(make_app)
    call, _, _ = _queued_call(app, before_queue=lambda call: _send_phone(app, call.call_sid))
    ivr = app.extensions["ivr"]
    ivr.devices.code_for(call.call_sid, ivr.clock())
    assert ivr.devices.of_call(call.call_sid)
    removed = retention.purge(ivr.db, ivr.clock() + 10 * 86400)
    assert removed["device_facts"] == 1 and removed["device_codes"] == 1 and ivr.devices.of_call(call.call_sid) == {}


def test_facts_sent_once_the_agent_took_the_call_reach_its_record_and_the_helpdesk(make_app):
    # Found by a probe: the agent took the call before any queued answer; the phone sent after.
    app = _app(make_app)
    call = Caller(FlaskTransport(app.test_client()), "http://localhost", TOKEN, caller="+33611223344")
    assert call.call([*TO_STEP6, *STEP6_QUEUED], hang_up_status=False).end == "enqueue"  # in the queue, nothing answered
    _send_phone(app, call.call_sid)
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="300"))
    record = app.extensions["ivr"].records.get(call.call_sid)
    assert record["context"]["devices"]["telephone"]["system"] == "Android"
    assert "IP publique du téléphone" in record["context"]["summary_fr"]
    agent = unescape(app.test_client().get(urlsplit(record["context"]["agent_url"]).path).get_data(as_text=True))
    assert "<h3>Téléphone ou tablette" in agent


def test_facts_a_forced_save_lost_from_the_session_still_skip_their_questions_and_reach_the_record(make_app):
    # A save of the wait forced over the session (its copy of the facts lost): the call's own copy counts.
    app = _app(make_app)
    ivr = app.extensions["ivr"]

    def lost_from_the_session(call):
        facts = devices.read(CHROME_ANDROID, ANDROID_15_HINTS, PHONE_IP)
        ivr.devices.add(call.call_sid, devices.PHONE, {**facts, "page": devices.PHONE}, ivr.clock())

    call, _, asked = _queued_call(app, before_queue=lost_from_the_session)
    assert not {"etape6_support", "etape6_systeme_mobile", "etape6_version_mobile"} & set(asked)
    call.post("http://localhost/voice/status", call.params(CallStatus="completed", CallDuration="300"))
    assert ivr.records.get(call.call_sid)["context"]["devices"]["telephone"]["system_version"] == "15"


def test_the_code_is_said_before_the_question_not_in_it_and_reminded_until_the_computer_sends(make_app):
    app = _app(make_app)
    call, result, asked = _queued_call(app)
    said = [unescape(body) for body in result.documents if "saisissez le code" in unescape(body)]
    assert len(said) == 1
    before, gather = said[0].split("<Gather", 1)
    assert "saisissez le code" in before and "saisissez le code" not in gather  # a key pressed does not cut it, nor is taken for the card
    assert "tapez l'adresse localhost, barre oblique code" in before
    code = re.search(r"saisissez le code ((?:\d ){3,5}\d)", before).group(1)
    # The computer sent nothing: before its first question, a reminder, outside the question too.
    reminded = [unescape(body) for body in result.documents if "Rappel : sur l'ordinateur" in unescape(body)]
    assert len(reminded) == 1 and f"code {code}." in reminded[0].split("<Gather", 1)[0]
    assert "node=etape6_navigateurs" in reminded[0]


def test_an_ipad_says_what_it_is_and_a_guide_opened_on_a_computer_sends_the_computers_facts(make_app):
    app = _app(make_app)
    mac_safari = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
    call, _, _ = _queued_call(app)
    guide = urlsplit(_document(app, call.call_sid)["visual_guide_url"]).path
    client = _client(app, PHONE_IP)
    # iPadOS' Safari writes a Mac's User-Agent: the caller says which it is.
    consent = unescape(client.get(guide + "/appareil", headers={"User-Agent": mac_safari}).get_data(as_text=True))
    assert "Cet appareil est :" in consent and "un iPad (tablette, système iOS)" in consent and "<dt>Système</dt>" not in consent
    payload = re.search(r'name="envoi" value="([^"]+)"', consent).group(1)
    client.post(guide + "/appareil", data={"envoi": payload, "appareil": "ipad"}, headers={"Origin": "http://localhost"})
    phone = _document(app, call.call_sid)["devices"]["telephone"]
    assert (phone["device"], phone["system"], phone["system_version"]) == ("tablette", "iOS", None)
    # The guide opened on a Windows computer: its button names the computer, and sends the computer's facts.
    page = unescape(client.get(guide, headers={"User-Agent": WINDOWS, **WINDOWS_11_HINTS}).get_data(as_text=True))
    assert "Envoyer les informations de cet ordinateur au conseiller" in page
    consent = unescape(client.get(guide + "/appareil", headers={"User-Agent": WINDOWS, **WINDOWS_11_HINTS}).get_data(as_text=True))
    payload = re.search(r'name="envoi" value="([^"]+)"', consent).group(1)
    client.post(guide + "/appareil", data={"envoi": payload}, headers={"Origin": "http://localhost"})
    assert _document(app, call.call_sid)["devices"]["ordinateur"]["system_version"] == "11"
    assert "Envoyer les informations" not in client.get(guide, headers={"User-Agent": WINDOWS}).get_data(as_text=True)


def test_guessing_codes_from_many_addresses_locks_nobody_out_but_lengthens_new_codes(make_app):
    app = _app(make_app)
    ivr = app.extensions["ivr"]
    call, _, _ = _queued_call(app)
    code, _ = ivr.devices.code_for(call.call_sid, ivr.clock())
    wrong = next(f"{n:04d}" for n in range(10_000) if f"{n:04d}" != code)
    for index in range(40 * 5):  # 40 addresses, 5 wrong codes each
        _client(app, f"81.250.{index // 5}.1").post("/code", data={"code": wrong}, headers={"User-Agent": WINDOWS})
    assert _client(app, "81.250.0.1").post("/code", data={"code": code}).status_code == 429  # that address: limited
    assert _client(app, "90.112.1.1").post("/code", data={"code": code}).status_code == 200  # the caller's: not
    other, _, _ = _queued_call(app)
    assert len(ivr.devices.code_for(other.call_sid, ivr.clock())[0]) == 6  # under guessing, new codes have 6 digits
    # An IPv6 subscriber holds a whole /64: its addresses count as one.
    for host in range(1, 6):
        _client(app, f"2a01:cb00:1:2::{host}").post("/code", data={"code": wrong})
    assert _client(app, "2a01:cb00:1:2::99").post("/code", data={"code": code}).status_code == 429


def test_the_computer_page_answers_the_addresses_misheard_and_a_consent_too_old(make_app):
    from itsdangerous import URLSafeTimedSerializer

    app = _app(make_app)
    for path in ("/o", "/O", "/0", "/Code", "/CODE"):
        moved = app.test_client().get(path)
        assert moved.status_code == 302 and moved.headers["Location"].endswith("/code"), path

    class Yesterday(URLSafeTimedSerializer):
        def make_signer(self, salt=None):
            signer = super().make_signer(salt)
            signer.get_timestamp = lambda: int(app.extensions["ivr"].clock()) - 3600
            return signer

    call, _, _ = _queued_call(app)
    old = Yesterday(app.secret_key, salt="appareil").dumps({"call": call.call_sid, "facts": devices.read(WINDOWS, {}, COMPUTER_IP),
                                                          "page": "ordinateur", "code": ""})
    late = _client(app).post("/code/envoyer", data={"envoi": old}, headers={"Origin": "http://localhost"})
    assert late.status_code == 400 and "Cette page a expiré : tapez à nouveau le code" in unescape(late.get_data(as_text=True))
    assert _document(app, call.call_sid)["devices"] == {}


def test_the_summary_says_where_each_part_of_an_answer_came_from(make_app):
    app = _app(make_app)
    firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"  # no hints: 10 or 11 unknown
    sent = {}

    def at_the_computer(call, question):
        if question.node == "etape6_carte" and not sent:
            code, _ = app.extensions["ivr"].devices.code_for(call.call_sid, app.extensions["ivr"].clock())
            sent["html"] = _send_computer(app, code, user_agent=firefox, hints={})

    call, _, asked = _queued_call(app, in_queue=at_the_computer)
    assert "etape6_ordinateur" not in asked and "etape6_version_ordinateur" in asked  # the version is asked: 11 keyed
    summary = _document(app, call.call_sid)["summary_fr"]
    assert "Ordinateur : Windows (relevé sur l'appareil), version 11." in summary
