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


