"""Flask's request object, reading url-encoded forms and query strings (every Twilio webhook) the
short way.

Werkzeug's general form parser (a parser object, a limited stream, parse_qsl unquoting every key
and value) was a sixth of a webhook's CPU time (bench/wsgi_cost.py --profile). Twilio's forms are
small and mostly plain ASCII: we read the body once and unquote only what is quoted. Anything else
(multipart, no length, a body over MAX_CONTENT_LENGTH, a body already read) goes through werkzeug unchanged."""

from __future__ import annotations

from functools import lru_cache
from io import BytesIO
from urllib.parse import unquote_plus

import flask
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.utils import cached_property

FORM = "application/x-www-form-urlencoded"


# Fields up to this length are kept once decoded: most fields of a webhook are the same from one
# request to the next (the account, both numbers under two names, their countries, the status…).
CACHED_FIELD = 200


@lru_cache(maxsize=4096)
def _cached_field(part: str) -> tuple[str, str]:
    return _field(part)


def _field(part: str) -> tuple[str, str]:
    """One `name=value` of a url-encoded body, decoded."""
    key, _, value = part.partition("=")
    if "%" in key or "+" in key:
        key = unquote_plus(key)
    if "%" in value or "+" in value:
        value = unquote_plus(value)
    return key, value


def parse_form(body: str) -> list[tuple[str, str]]:
    """The (key, value) pairs of a url-encoded body, blank values kept, as parse_qsl gives them."""
    return [_cached_field(part) if len(part) <= CACHED_FIELD else _field(part) for part in body.split("&") if part]


class Fields(ImmutableMultiDict):
    """The parameters of a form or query string, from their (name, value) pairs.

    Built without MultiDict's loop over the pairs (a name is repeated only in rare forms), and
    `get` reads the first value directly: werkzeug's raises and catches a BadRequestKeyError (an
    HTTP exception) for every field a webhook asks for and Twilio did not send (SpeechResult,
    RecordingUrl…), through three layers of calls for those it did."""

    def __init__(self, pairs: list[tuple[str, str]] | None = None):
        if not isinstance(pairs, list):  # a mapping (werkzeug's own copies pass one) or nothing: as MultiDict
            super().__init__(pairs)
            return
        lists = {key: [value] for key, value in pairs}
        if len(lists) < len(pairs):  # a repeated name: each of its values, in order
            lists = {}
            for key, value in pairs:
                lists.setdefault(key, []).append(value)
        dict.__init__(self, lists)

    def get(self, key, default=None, type=None):
        values = dict.get(self, key)
        if not values:
            return default
        if type is None:
            return values[0]
        try:
            return type(values[0])
        except (ValueError, TypeError):  # as werkzeug's: a value that does not convert is absent
            return default


class Request(flask.Request):
    @cached_property
    def args(self) -> ImmutableMultiDict:
        """The query string's parameters (?node=…&phase=… on every answer), read the same short way."""
        return Fields(parse_form(self.environ.get("QUERY_STRING", "").encode("latin-1").decode("utf-8", "replace")))

    def _load_form_data(self) -> None:
        if "form" in self.__dict__:
            return
        environ = self.environ
        length = environ.get("CONTENT_LENGTH", "")
        if (environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != FORM or not length.isdigit()
                or environ.get("HTTP_TRANSFER_ENCODING") or getattr(self, "_cached_data", None) is not None):
            super()._load_form_data()
            return
        limit = self.max_content_length
        if limit is not None and int(length) > limit:
            super()._load_form_data()  # werkzeug refuses it: 413
            return
        body = environ["wsgi.input"].read(int(length))
        self.__dict__.update(stream=BytesIO(), form=Fields(parse_form(body.decode("utf-8", "replace"))),
                             files=ImmutableMultiDict())
