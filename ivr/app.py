"""`create_app()`: configuration from the environment, then the services, then the blueprints."""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from flask import Flask, current_app
from flask.sessions import SecureCookieSessionInterface
from twilio.request_validator import RequestValidator
from werkzeug.middleware.proxy_fix import ProxyFix

from . import hours as hours_module
from .callbacks import Callbacks
from .db import Database, connect
from .handoff import Destinations
from .library import Bundle, FlowLibrary
from .outbox import Deliverer, Outbox
from .overrides import PromptOverrides
from .records import CallRecords
from .request import Request
from .signing import Signer
from .sms import Guides
from .store import DEFAULT_TTL, RedisSessionStore, SessionStore, SqlSessionStore
from .twiml import Cache, Speech
from .users import Users

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VOICE = "Polly.Lea-Neural"

MAX_BODY = 256 * 1024  # bytes: the largest request body read

# Environment variables read by create_app, with their defaults.
ENVIRONMENT = {
    "IVR_ENV": "production",
    "TWILIO_AUTH_TOKEN": "",
    "TWILIO_ACCOUNT_SID": "",
    "TWILIO_WORKFLOW_SID": "",
    "AGENT_NUMBER": "",
    "AGENT_SIP_URI": "",
    "AGENT_CLIENT": "",
    "HANDOFF_WEBHOOK_URL": "",
    "IVR_WEBHOOK_SECRET": "",
    "IVR_OUTBOX_THREAD": "1",
    "IVR_API_TOKEN": "",
    "IVR_SECRET_KEY": "",
    "IVR_HOURS": "flows/horaires.yaml",
    "IVR_ALWAYS_OPEN": "",
    "IVR_SMS_FROM": "",
    "IVR_CALLBACK_OFFER_SECONDS": "120",
    "IVR_CONSOLE_IDLE_MINUTES": "30",
    "IVR_DATA_DIR": "instance",
    "IVR_FLOW": "flows/ecps.yaml",
    "IVR_PROMPTS": "prompts",
    "IVR_LANGUAGE": "fr-FR",
    "IVR_VOICE": DEFAULT_VOICE,
    "IVR_PUBLIC_URL": "",
    "IVR_TRUSTED_PROXIES": "0",
    "IVR_SESSION_TTL": str(DEFAULT_TTL),
    "IVR_RELOAD_INTERVAL": "2",
    "REDIS_URL": "",
    "IVR_REDIS_PREFIX": "ivr:",
    "DATABASE_URL": "",
}


class ConfigurationError(RuntimeError):
    """The server cannot start with this configuration; the message says what to change."""


@dataclass
class Services:
    """What the webhooks need, built once per process."""

    db: Database
    library: FlowLibrary
    voice: str
    language: str
    store: SessionStore
    records: CallRecords
    destinations: Destinations
    validator: RequestValidator | None
    signer: Signer | None
    public_base: str
    outbox: Outbox | None = None
    deliverer: Deliverer | None = None
    users: Users | None = None
    overrides: PromptOverrides | None = None
    twiml_cache: Cache = field(default_factory=Cache)
    hours: hours_module.Hours = hours_module.ALWAYS_OPEN
    callbacks: Callbacks | None = None
    guides: Guides | None = None
    clock: object = time.time  # seconds since the epoch; tests give a fixed clock

    def bundle(self, version: str | None = None) -> Bundle:
        """The flow and prompts of `version` (a call in progress), or the current ones."""
        return self.library.get(version) if version else self.library.current()

    def speech(self, bundle: Bundle | None = None) -> Speech:
        """How to speak the sentences of `bundle` (default: the current one)."""
        return Speech((bundle or self.library.current()).prompts, self.voice, self.language)

    def nudge_outbox(self) -> None:
        """Deliver a new document now rather than at the next poll."""
        if self.deliverer is not None:
            self.deliverer.nudge()

    def public_url(self, request: Request) -> str:
        """The URL Twilio signed: the configured public base, or the (proxy-fixed) request URL.

        Built from the WSGI environ as it arrived (path re-quoted, query string untouched), like
        the URL Twilio requested; werkzeug's request.url turns it into an IRI, at a cost."""
        environ = request.environ
        if self.public_base:  # the public base already names any prefix the proxy strips
            base, path = self.public_base, environ.get("PATH_INFO", "")
        else:
            # The Host header as sent (proxy-fixed with IVR_TRUSTED_PROXIES); if Twilio signed the
            # URL with or without a port that differs, the validator's fallback tries both.
            host = environ.get("HTTP_HOST") or request.host
            base, path = f"{environ['wsgi.url_scheme']}://{host}", environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        return base + quote(path.encode("latin-1"), safe="/:@!$&'()*+,;=~") + (f"?{query}" if query else "")


def services() -> Services:
    """The current app's IVR services (flow library, store, records…), built by create_app."""
    return current_app.extensions["ivr"]


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application from the environment, overridden by `test_config` in tests."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = Flask(__name__)
    app.request_class = Request
    app.config.update({name: os.environ.get(name, default) for name, default in ENVIRONMENT.items()})
    # Bodies are read before the signature is checked: a bigger one is refused unread (413). Twilio's
    # webhooks and the console's forms are a few kilobytes.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config.update(test_config or {})
    config = app.config

    development = config["IVR_ENV"] == "development"
    token = config["TWILIO_AUTH_TOKEN"]
    if not token and not development:
        raise ConfigurationError(
            "TWILIO_AUTH_TOKEN is not set: Twilio signatures cannot be checked. "
            "Set it, or set IVR_ENV=development to run locally without signature checks."
        )
    if not token:
        log.warning("!!! IVR_ENV=development and no TWILIO_AUTH_TOKEN: webhook signatures are NOT checked. Never expose this server. !!!")

    data_dir = _resolve(config["IVR_DATA_DIR"], must_exist=False)
    db = connect(config["DATABASE_URL"], data_dir)
    overrides = PromptOverrides(db)
    library = FlowLibrary(_resolve(config["IVR_FLOW"]), _resolve(config["IVR_PROMPTS"]), config["IVR_LANGUAGE"],
                          interval=float(config["IVR_RELOAD_INTERVAL"]), overrides=overrides)
    app.secret_key = config["IVR_SECRET_KEY"] or _secret_key(data_dir)
    app.session_interface = ConsoleSessions()
    app.permanent_session_lifetime = timedelta(hours=12)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=config["IVR_PUBLIC_URL"].startswith("https://"))
    destinations = Destinations(config["TWILIO_WORKFLOW_SID"], config["AGENT_NUMBER"], config["AGENT_SIP_URI"], config["AGENT_CLIENT"])
    if not destinations.configured:
        log.warning("no TWILIO_WORKFLOW_SID, AGENT_NUMBER, AGENT_SIP_URI or AGENT_CLIENT: callers who need an agent will hear none is available")
    always_open = config["IVR_ALWAYS_OPEN"] not in ("", "0", "false", "no")
    hours_path = _resolve(config["IVR_HOURS"]) if config["IVR_HOURS"] else None
    opening, problems = hours_module.load(hours_path if hours_path and hours_path.exists() else None, always_open)
    if opening is None:
        raise ConfigurationError("opening hours refused:\n" + "\n".join(str(p) for p in problems))
    outbox = deliverer = None
    if config["HANDOFF_WEBHOOK_URL"]:
        if not config["IVR_WEBHOOK_SECRET"]:
            raise ConfigurationError("HANDOFF_WEBHOOK_URL is set but IVR_WEBHOOK_SECRET is not: the helpdesk could not verify our calls.")
        outbox = Outbox(db, config["HANDOFF_WEBHOOK_URL"], config["IVR_WEBHOOK_SECRET"])
        if config["IVR_OUTBOX_THREAD"] not in ("0", "false", "no", ""):
            deliverer = Deliverer(outbox)
            deliverer.start()

    app.extensions["ivr"] = Services(
        db=db,
        library=library,
        voice=config["IVR_VOICE"],
        language=config["IVR_LANGUAGE"],
        store=_session_store(config, db),
        records=CallRecords(db),
        destinations=destinations,
        validator=RequestValidator(token) if token else None,
        signer=Signer(token) if token else None,
        public_base=config["IVR_PUBLIC_URL"].rstrip("/"),
        outbox=outbox,
        deliverer=deliverer,
        users=Users(db),
        overrides=overrides,
        hours=opening,
        callbacks=Callbacks(db),
        guides=Guides(db, config["TWILIO_ACCOUNT_SID"], token, config["IVR_SMS_FROM"]),
        clock=config.get("IVR_CLOCK") or time.time,
    )

    proxies = int(config["IVR_TRUSTED_PROXIES"] or 0)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies, x_prefix=proxies)

    from .api import bp as api_bp
    from .console import bp as console_bp
    from .voice import bp as voice_bp

    app.register_blueprint(voice_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(console_bp)

    @app.get("/health")
    def health():
        return {"status": "ok", "flow_version": library.current().version,
                "refused": [str(p) for p in library.last_problems]}

    return app


class ConsoleSessions(SecureCookieSessionInterface):
    """Login cookies for the console only: Twilio's webhooks never carry one, so they skip the work."""

    def open_session(self, app, request):
        if not request.path.startswith("/console"):
            return self.null_session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        if type(session) is not self.null_session_class:
            super().save_session(app, session, response)


def _session_store(config, db: Database) -> SessionStore:
    """Redis when REDIS_URL is set (many servers), else the SQL database."""
    ttl = int(config["IVR_SESSION_TTL"])
    if config["REDIS_URL"]:
        return RedisSessionStore(config["REDIS_URL"], ttl, config["IVR_REDIS_PREFIX"])
    return SqlSessionStore(db, ttl)


def _secret_key(data_dir: Path) -> str:
    """The console's cookie key: generated once and kept beside the data, shared by every worker."""
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "x", encoding="ascii") as handle:  # "x": two workers starting together keep one key
                handle.write(secrets.token_urlsafe(48))
            path.chmod(0o600)
        except FileExistsError:
            pass
    return path.read_text(encoding="ascii").strip()


def _resolve(value: str, must_exist: bool = True) -> Path:
    """A configured path: as given if absolute or present here, else beside the project's files."""
    path = Path(value)
    if path.is_absolute() or path.exists() or not must_exist:
        return path
    candidate = PROJECT_ROOT / path
    return candidate if candidate.exists() else path
