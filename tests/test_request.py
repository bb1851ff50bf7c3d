"""The short reading of url-encoded forms gives what werkzeug's parser gives."""

from __future__ import annotations

import copy
import pickle
from urllib.parse import parse_qsl, urlencode

import pytest

from ivr.request import parse_form

BODIES = [
    "",
    "CallSid=CA1&From=%2B33612345678&Digits=1",
    "SpeechResult=oui+c%27est+bon&Confidence=0.91",
    "a=1&a=2&b=&c",
    "&&x=%26%3D%25&y=%E2%82%AC+euro&",
    "k%20ey=v+a%2Bl",
    urlencode({"RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE1?x=1&y=2"}),
    urlencode({"SpeechResult": "é" * 150, "From": "+33612345678"}),  # a field too long to be kept decoded, and a short one
]


@pytest.mark.parametrize("body", BODIES)
def test_parse_form_matches_parse_qsl(body):
    assert parse_form(body) == parse_qsl(body, keep_blank_values=True)


def test_webhook_form_fields_arrive_decoded(client):
    from conftest import TOKEN
    from twilio.request_validator import RequestValidator

    params = {"CallSid": "CA" + "2" * 32, "From": "+33612345678", "Digits": "2"}
    signature = RequestValidator(TOKEN).compute_signature("http://localhost/voice", params)
    response = client.post("/voice", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200


def test_multipart_and_json_bodies_still_go_through_werkzeug(app):
    with app.test_request_context("/x", method="POST", data={"name": "é+&"}, content_type="multipart/form-data"):
        from flask import request

        assert request.form["name"] == "é+&"
    with app.test_request_context("/x", method="POST", data="a=1%2B1", content_type="application/x-www-form-urlencoded; charset=utf-8"):
        from flask import request

        assert request.form["a"] == "1+1"
        assert request.get_data() == b""


def test_a_body_over_the_size_limit_is_refused(app):
    from werkzeug.exceptions import RequestEntityTooLarge

    app.config["MAX_CONTENT_LENGTH"] = 10
    with app.test_request_context("/x", method="POST", data="a=" + "1" * 100, content_type="application/x-www-form-urlencoded"):
        from flask import request

        with pytest.raises(RequestEntityTooLarge):
            _ = request.form


@pytest.mark.parametrize("query", ["node=etape1_a_jour&phase=ask", "node=%C3%A9tape+1&phase=", "a=1&a=2&b", ""])
def test_query_string_arguments_match_werkzeug(app, query):
    from flask import request
    from werkzeug.datastructures import MultiDict
    from werkzeug.wrappers import Request as PlainRequest

    with app.test_request_context("/voice/answer?" + query, method="POST"):
        expected = PlainRequest(request.environ).args
        assert MultiDict(request.args) == MultiDict(expected)
        assert list(request.args.items(multi=True)) == list(expected.items(multi=True))


def test_fields_get_answers_like_werkzeug_without_raising_for_absent_ones(app):
    from werkzeug.datastructures import ImmutableMultiDict
    from werkzeug.exceptions import BadRequestKeyError

    from ivr.request import Fields

    pairs = parse_form("Digits=12&Digits=3&Confidence=0.9&Blank=")
    fields, reference = Fields(pairs), ImmutableMultiDict(pairs)
    for key, default, kind in [("Digits", None, None), ("Digits", "x", int), ("Confidence", 0.0, float), ("Blank", "d", None),
                               ("Blank", 0, int), ("SpeechResult", None, None), ("SpeechResult", "", None), ("Absent", 5, int)]:
        assert fields.get(key, default, kind) == reference.get(key, default, kind), (key, default, kind)
    assert fields.getlist("Digits") == ["12", "3"]
    assert list(fields.items(multi=True)) == list(reference.items(multi=True))  # every value, in order
    assert fields.to_dict() == reference.to_dict() and list(Fields()) == []
    for copied in (copy.deepcopy(fields), Fields(reference.to_dict(flat=False)), pickle.loads(pickle.dumps(fields))):
        assert type(copied) is Fields and list(copied.items(multi=True)) == list(reference.items(multi=True))
    with pytest.raises(BadRequestKeyError):  # indexing an absent field is still a 400
        fields["SpeechResult"]
    with app.test_request_context("/voice?node=a", method="POST", data="CallSid=CA1", content_type="application/x-www-form-urlencoded"):
        from flask import request

        assert isinstance(request.form, Fields) and isinstance(request.args, Fields)
        assert request.form.get("Digits") is None and request.args.get("phase", "ask") == "ask"


def test_a_webhook_body_too_big_is_refused_before_it_is_read(client):
    """Anyone can post to the webhooks; the body is read before the signature is checked, so its
    size is bounded (MAX_BODY) rather than read into memory whole."""
    from ivr.app import MAX_BODY

    huge = "CallSid=CA1&Junk=" + "x" * MAX_BODY
    response = client.post("/voice", data=huge, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert client.post("/voice", data="CallSid=CA1&Junk=x", content_type="application/x-www-form-urlencoded").status_code == 403
