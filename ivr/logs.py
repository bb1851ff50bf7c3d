"""The server's log (issue 37): plain text for a terminal (the default), or one JSON object a line
with IVR_LOG_FORMAT=json, for a log collector. The standard library's logging, with a JSON
formatter of ours (a dozen lines: no dependency for it).

Every line written while answering a webhook carries its CallSid and route; a line about a call
written elsewhere (the journal's thread…) carries the CallSid its message names (« [CA…] »).
Numbers of six digits or more (an RPPS, a phone number, a card) are masked but their last 2, in
the message and in the traceback alike: a log never holds an identifier or a phone number in clear.
Exceptions keep their traceback in one field (`exception`)."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

# Digits, alone or in groups a space, dot or dash apart (« 06 11 22 33 44 », « 06.11.22.33.44 »), with
# a + (or %2B, in an address) before them, six or more: an identifier or a number (a date goes too).
_NUMBER = re.compile(r"(?<![0-9A-Za-z])(?:\+|%2[Bb])?\d(?:[ \u00a0.-]?\d){5,}(?![0-9A-Za-z])")
_CALL_IN_MESSAGE = re.compile(r"\[(CA[0-9A-Za-z]{10,62})\]")
PLAIN = "%(asctime)s %(levelname)s %(name)s %(message)s"


def masked(text: str) -> str:
    """`text` with every number of six digits or more masked but its last 2 (« •••••••••73 »)."""
    def mask(found: re.Match) -> str:
        digits = re.sub(r"\D", "", found.group())
        return "•" * (len(digits) - 2) + digits[-2:]

    return _NUMBER.sub(mask, text)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, call_sid and route when known, exception."""

    def format(self, record: logging.LogRecord) -> str:
        message = masked(record.getMessage())
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"), "level": record.levelname,
                "logger": record.name, "message": message}
        call_sid, route = getattr(record, "call_sid", None), getattr(record, "route", None)
        if not call_sid:
            found = _CALL_IN_MESSAGE.search(message)
            call_sid = found.group(1) if found else None
        if call_sid:
            line["call_sid"] = call_sid
        if route:
            line["route"] = route
        for key in ("status", "duration_ms", "method"):
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exception"] = masked(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = masked(record.exc_text)
        return json.dumps(line, ensure_ascii=False)


class RequestContext(logging.Filter):
    """Adds the CallSid and the route of the webhook being answered to each line (Flask's `g`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from flask import g, has_request_context, request

        if has_request_context():
            if not hasattr(record, "call_sid"):
                record.call_sid = g.get("call_sid") or (request.form.get("CallSid") if request.method == "POST" else None)
            if not hasattr(record, "route"):
                record.route = request.endpoint or request.path
        return True


def configure(fmt: str) -> None:
    """The root logger's handler, once per process (a test's or a server's own setup is kept)."""
    root = logging.getLogger()
    if fmt == "json":
        ours = [handler for handler in root.handlers if isinstance(handler.formatter, JsonFormatter)]
        if ours:  # set up already (gunicorn.conf.py's logconfig_dict): the request's call and route added
            for handler in ours:
                if not any(isinstance(kept, RequestContext) for kept in handler.filters):
                    handler.addFilter(RequestContext())
            return
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestContext())
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
    elif not root.handlers:
        logging.basicConfig(level=logging.INFO, format=PLAIN)
