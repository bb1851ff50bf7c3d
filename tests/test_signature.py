"""Every /voice* request must carry Twilio's signature for its public URL."""

from __future__ import annotations

import pytest
from conftest import TOKEN
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from ivr.web.services import ConfigurationError

PARAMS = {"CallSid": "CA" + "1" * 32, "From": "+33612345678"}
PATHS = ["/voice", "/voice/answer?node=etape1_a_jour&phase=ask", "/voice/status", "/voice/fallback", "/voice/transfer-done"]


def sign(url, params=PARAMS, token=TOKEN):
    return RequestValidator(token).compute_signature(url, params)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "signature",
    [None, "", "not-a-signature", sign("http://localhost/voice/elsewhere"), sign("http://localhost/voice", token="other-token")],
    ids=["missing", "empty", "garbage", "other-url", "other-token"],
)
def test_bad_signatures_are_refused(client, path, signature):
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    response = client.post(path, data=PARAMS, headers=headers)
    assert response.status_code == 403


def test_tampered_parameters_are_refused(client):
    signature = sign("http://localhost/voice")
    response = client.post("/voice", data={**PARAMS, "From": "+33700000000"}, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


# A signed answer for a call we have no session of gets an apology (logged), the fallback logs Twilio's error.
EXPECTED_ERRORS = {"/voice/answer?node=etape1_a_jour&phase=ask": "no session for this call", "/voice/fallback": "fallback: Twilio error"}


@pytest.mark.parametrize("path", [pytest.param(path, marks=pytest.mark.logs_errors(EXPECTED_ERRORS[path])) if path in EXPECTED_ERRORS else path
                                  for path in PATHS])
def test_good_signature_is_accepted(client, path):
    response = client.post(path, data=PARAMS, headers={"X-Twilio-Signature": sign("http://localhost" + path)})
    assert response.status_code == 200
    assert response.content_type == "text/xml; charset=utf-8"


def test_public_base_url_behind_a_proxy(make_app):
    app = make_app(IVR_PUBLIC_URL="https://ivr.example.fr/")
    client = app.test_client()
    good = sign("https://ivr.example.fr/voice")
    assert client.post("/voice", data=PARAMS, headers={"X-Twilio-Signature": good}).status_code == 200
    internal = sign("http://localhost/voice")
    assert client.post("/voice", data=PARAMS, headers={"X-Twilio-Signature": internal}).status_code == 403


def test_trusted_forwarded_headers(make_app):
    app = make_app(IVR_TRUSTED_PROXIES="1")
    client = app.test_client()
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ivr.example.fr", "X-Twilio-Signature": sign("https://ivr.example.fr/voice")}
    assert client.post("/voice", data=PARAMS, headers=headers).status_code == 200


def test_forwarded_headers_are_ignored_unless_trusted(client):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ivr.example.fr", "X-Twilio-Signature": sign("https://ivr.example.fr/voice")}
    assert client.post("/voice", data=PARAMS, headers=headers).status_code == 403


def test_no_token_refuses_to_start_outside_development(make_app):
    with pytest.raises(ConfigurationError, match="TWILIO_AUTH_TOKEN"):
        make_app(TWILIO_AUTH_TOKEN="")


def test_development_without_token_warns_loudly_and_serves(make_app, caplog):
    app = make_app(TWILIO_AUTH_TOKEN="", IVR_ENV="development")
    assert "NOT checked" in caplog.text
    assert app.test_client().post("/voice", data=PARAMS).status_code == 200


def test_health_is_not_behind_the_signature(client):
    assert client.get("/health").json["status"] == "ok"


def test_quoted_and_repeated_parameters_are_signed_as_twilio_does(client):
    # '+' and %-escapes in values (a transcription, a number), an empty value, a key given twice.
    params = {**PARAMS, "SpeechResult": "oui c'est bon & fini", "Caller": "+33 6 12", "Empty": "", "Digits": ["1", "2"]}
    good = RequestValidator(TOKEN).compute_signature("http://localhost/voice/status", MultiDict(params))
    assert client.post("/voice/status", data=params, headers={"X-Twilio-Signature": good}).status_code == 200
    altered = {**params, "SpeechResult": "oui c'est bon"}
    assert client.post("/voice/status", data=altered, headers={"X-Twilio-Signature": good}).status_code == 403


@pytest.mark.logs_errors("no session for this call")
def test_the_url_twilio_signed_keeps_its_escapes(client):
    path = "/voice/answer?node=%C3%A9tape&phase=ask"
    good = sign("http://localhost" + path)
    assert client.post(path, data=PARAMS, headers={"X-Twilio-Signature": good}).status_code == 200
    decoded = sign("http://localhost/voice/answer?node=étape&phase=ask")
    assert client.post(path, data=PARAMS, headers={"X-Twilio-Signature": decoded}).status_code == 403


def test_a_prefix_added_by_a_trusted_proxy_is_part_of_the_signed_url(make_app):
    client = make_app(IVR_TRUSTED_PROXIES="1").test_client()
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ivr.example.fr", "X-Forwarded-Prefix": "/ecps",
               "X-Twilio-Signature": sign("https://ivr.example.fr/ecps/voice")}
    assert client.post("/voice", data=PARAMS, headers=headers).status_code == 200




class StrippingProxy:
    """A proxy serving us under https://ivr.example/ivr: it passes on what is under the prefix,
    without it (as nginx's `location /ivr/ { proxy_pass http://app/; }`), and refuses the rest."""

    PUBLIC = "https://ivr.example/ivr"

    def __init__(self, client, forwarded_prefix: bool = False):
        self.client, self.forwarded_prefix, self.requested = client, forwarded_prefix, []

    def post(self, url, params, headers):
        self.requested.append(url)
        if not url.startswith(self.PUBLIC + "/"):
            return 404, "not under the prefix"
        extra = {"X-Forwarded-Prefix": "/ivr", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "ivr.example"} if self.forwarded_prefix else {}
        response = self.client.post(url[len(self.PUBLIC):], data=params, headers={**headers, **extra}, base_url="http://app.internal")
        return response.status_code, response.get_data(as_text=True)


@pytest.mark.parametrize("forwarded_prefix", [False, True], ids=["prefix-stripped", "prefix-forwarded"])
def test_every_url_given_to_twilio_stays_under_a_public_url_with_a_path(make_app, forwarded_prefix):
    """IVR_PUBLIC_URL=https://ivr.example/ivr. Before: the Gather and Enqueue actions lost « /ivr »
    (only waitUrl kept it) and Twilio would have requested URLs outside the prefix."""
    from ivr.supervisor.simulator import Caller

    app = make_app(IVR_PUBLIC_URL=StrippingProxy.PUBLIC, TWILIO_WORKFLOW_SID="WW" + "0" * 32,
                   IVR_TRUSTED_PROXIES="1" if forwarded_prefix else "0")
    proxy = StrippingProxy(app.test_client(), forwarded_prefix)
    call = Caller(proxy, StrippingProxy.PUBLIC, TOKEN)
    result = call.call(["1", "2", "0"], hang_up_status=False)
    assert result.end == "enqueue", result
    from urllib.parse import urljoin

    enqueue_action = urljoin(proxy.requested[-1], result.enqueue["action"])  # Twilio resolves it against the document's URL
    urls = [*proxy.requested, result.wait_url, enqueue_action]
    assert len(proxy.requested) >= 4 and all(url.startswith(StrippingProxy.PUBLIC + "/voice") for url in urls), urls
    assert result.task["context_url"].startswith(StrippingProxy.PUBLIC + "/api/calls/")
    assert not any("/ivr/ivr/" in document for document in result.documents)
    status, _ = call.post(enqueue_action, call.params(QueueResult="bridged", QueueTime="5"))
    assert status == 200  # signed for its public URL, and served
