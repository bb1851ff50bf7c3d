"""Twilio's signature on every webhook: the public URL Twilio signed, and the check itself (twilio's
RequestValidator)."""

from __future__ import annotations

import hmac
import re
from urllib.parse import quote

from flask import Request, request, url_for
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import ImmutableMultiDict


def public_url(request: Request, public_base: str = "") -> str:
    """The URL Twilio signed: the configured public base, or the (proxy-fixed) request URL.

    Built from the WSGI environ as it arrived (path re-quoted, query string untouched), like the URL
    Twilio requested: werkzeug's request.url is an IRI, with its escapes decoded."""
    environ = request.environ
    if public_base:  # the public base already names any prefix the proxy strips
        base, path = public_base, environ.get("PATH_INFO", "")
    else:
        # The Host header as sent (proxy-fixed with IVR_TRUSTED_PROXIES); if Twilio signed the URL
        # with or without a port that differs, the validator's fallback tries both.
        host = environ.get("HTTP_HOST") or request.host
        base, path = f"{environ['wsgi.url_scheme']}://{host}", environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    return base + quote(path.encode("latin-1"), safe="/:@!$&'()*+,;=~") + (f"?{query}" if query else "")


class SignedParams(dict):
    """A form as twilio's RequestValidator reads it first: each name with its list of values, through
    `getall`. A werkzeug MultiDict has no `getall`, and the validator then catches an AttributeError
    for each of the 30 fields of a webhook before it asks for `getlist`."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def is_signed(validator: RequestValidator, request: Request, public_base: str = "") -> bool:
    """Whether the request carries Twilio's signature of its public URL and form.

    The URL as we see it almost always matches: one signature computed; the validator's validate()
    then also tries the URL with and without the port that Twilio may have signed."""
    url = public_url(request, public_base)
    form = SignedParams(request.form.lists())
    signature = request.environ.get("HTTP_X_TWILIO_SIGNATURE", "")
    return hmac.compare_digest(validator.compute_signature(url, form), signature) or validator.validate(url, form, signature)


def twilio_url(endpoint: str, public_base: str = "", absolute: bool = False, **values) -> str:
    """The URL Twilio is to request for `endpoint`: under IVR_PUBLIC_URL when it is set (its path
    is the prefix a proxy strips, which this request may not show), else as this request reached us
    (with any prefix the proxy names: X-Forwarded-Prefix); a path only unless `absolute`."""
    path = url_for(endpoint, **values)
    if public_base:
        root = request.script_root
        return public_base + (path[len(root):] if root and path.startswith(root + "/") else path)
    return request.host_url.rstrip("/") + path if absolute else path


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def cleaned(value: str) -> str:
    """A field without control characters (NUL and the rest; tabs and line breaks become spaces):
    nothing past the door can put one in a log line, a session or a statement."""
    return _CONTROL.sub(lambda match: " " if match.group() in "\t\n\r" else "", value)


def clean_request() -> None:
    """After the signature is checked (on the form as Twilio signed it): the form and the query
    string this request's handlers read, cleaned of control characters (looked for in one pass
    over the whole of each; copied only when one is found, which no real call does)."""
    for name in ("form", "args"):
        fields = getattr(request, name)
        if _CONTROL.search("".join(key + "".join(fields.getlist(key)) for key in fields)):
            setattr(request, name, ImmutableMultiDict([(cleaned(key), cleaned(value)) for key, value in fields.items(multi=True)]))
