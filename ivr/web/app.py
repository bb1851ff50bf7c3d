"""`create_app()`: configuration from the environment, then the services, then the blueprints."""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import shutil
import time
from datetime import timedelta
from pathlib import Path

from flask import Flask, Response, g, render_template, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from .. import logs, metrics
from ..storage.sessions import DEFAULT_TTL
from ..storage.spool import Replayer
from . import (
    console_calls,  # noqa: F401  (its pages join the console)
    console_evidence,  # noqa: F401  (its pages join the console)
    writes,
)
from . import services as services_module
from .agent import bp as agent_bp
from .api import bp as api_bp
from .console import bp as console_bp
from .devices import bp as devices_bp
from .guide import bp as guide_bp
from .messages import bp as messages_bp
from .services import ConfigurationError, resolve
from .voice import bp as voice_bp

log = logging.getLogger(__name__)
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
    "IVR_METRICS_TOKEN": "",  # bearer token Prometheus sends to /metrics; none: no metrics served
    "IVR_LOG_FORMAT": "",  # "json": one JSON object a line (a log collector's); else plain text
    "IVR_AGENT_FRAME_ORIGINS": "",  # origins of the agent desktop allowed to frame the agent's page (Flex: https://flex.twilio.com)
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
    "IVR_COMPUTER_ADDRESS": "",  # the computer page's short address said to callers; default: IVR_PUBLIC_URL's host + /code
    "IVR_TRUSTED_PROXIES": "0",
    "IVR_SESSION_TTL": str(DEFAULT_TTL),
    "IVR_RELOAD_INTERVAL": "2",
    "REDIS_URL": "",
    "IVR_REDIS_PREFIX": "ivr:",
    "DATABASE_URL": "",
    "IVR_DB_TIMEOUT": "3",
    "IVR_REDIS_TIMEOUT": "2",
    "IVR_HTTP_TIMEOUT": "5",
    "IVR_RETENTION_DAYS": "90",
    "IVR_SPOOL_INTERVAL": "10",
    "IVR_MIN_FREE_MB": "100",
}


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application from the environment, overridden by `test_config` in tests."""
    logs.configure(os.environ.get("IVR_LOG_FORMAT", "") or (test_config or {}).get("IVR_LOG_FORMAT", ""))
    app = Flask(__name__)
    app.config.update({name: os.environ.get(name, default) for name, default in ENVIRONMENT.items()})
    # Bodies are read before the signature is checked: a bigger one is refused unread (413). Twilio's
    # webhooks and the console's forms are a few kilobytes.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config.update(test_config or {})
    config = app.config

    if not config["TWILIO_AUTH_TOKEN"]:
        if config["IVR_ENV"] != "development":
            raise ConfigurationError(
                "TWILIO_AUTH_TOKEN manque : les signatures de Twilio ne peuvent pas être vérifiées. "
                "Donnez-le, ou IVR_ENV=development pour essayer en local sans vérification."
            )
        log.warning("!!! IVR_ENV=development and no TWILIO_AUTH_TOKEN: webhook signatures are NOT checked. Never expose this server. !!!")

    _check_numbers(config)
    ivr = app.extensions["ivr"] = services_module.build(config)
    replayer = Replayer(ivr.spool, writes.writers(ivr), float(config["IVR_SPOOL_INTERVAL"]), ivr.set_aside.add, ivr.database_answers)
    replayer.start()
    replayer.nudge()  # what a previous run left in the journal is applied now
    ivr.background.append(replayer)
    if float(config["IVR_RELOAD_INTERVAL"]) > 0:  # 0 (tests, the simulator): each call looks for itself
        watcher = services_module.Watcher(ivr, float(config["IVR_RELOAD_INTERVAL"]))
        watcher.start()
        ivr.background.append(watcher)
    app.secret_key = config["IVR_SECRET_KEY"] or _secret_key(resolve(config["IVR_DATA_DIR"], must_exist=False))
    app.session_interface = ConsoleSessions()
    app.permanent_session_lifetime = timedelta(hours=12)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=config["IVR_PUBLIC_URL"].startswith("https://"))
    proxies = int(config["IVR_TRUSTED_PROXIES"] or 0)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies, x_prefix=proxies)

    app.register_blueprint(voice_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(console_bp)
    app.register_blueprint(devices_bp)
    app.register_blueprint(messages_bp)
    app.register_blueprint(guide_bp)
    app.register_blueprint(agent_bp)

    @app.errorhandler(404)
    def not_found(error):
        """The console's pages say it in French; elsewhere (Twilio, the API) the plain 404 stays."""
        if request.path.startswith("/console"):
            message = "Cette page n'existe pas (ou plus) : l'adresse est peut-être mal copiée."
            return render_template("console/error.html", message=message, title="Page introuvable"), 404
        if request.path.startswith("/api/"):
            return error  # the agents' tools read the status
        return Response("Page introuvable. Serveur vocal e-CPS : la console est à l'adresse /console/.\n", status=404,
                        mimetype="text/plain", headers={"Content-Language": "fr"})

    backend = services_module.backend_name(config)
    json_log = config["IVR_LOG_FORMAT"] == "json"
    access = logging.getLogger("ivr.access")
    timers, counters = {}, {}  # each route's series, looked up once (a few routes, a few statuses)

    @app.before_request
    def started():
        g.started = time.perf_counter()

    @app.after_request
    def measured(response: Response) -> Response:
        """Twilio's webhooks timed and counted (by route, never by call); in JSON logs, one line a
        request (gunicorn's access log is off then: it cannot name the call)."""
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.endpoint or "unknown"
        if request.blueprint in ("voice", "messages"):
            timed = timers.get(route) or timers.setdefault(route, metrics.WEBHOOK_SECONDS.labels(route, backend))
            timed.observe(seconds)
            counted = counters.get((route, response.status_code)) or \
                counters.setdefault((route, response.status_code), metrics.WEBHOOKS.labels(route, str(response.status_code)))
            counted.inc()
        if json_log and route != "static":
            # The route's rule, not the path: a path may hold a signed link (/g/<token>, /agent/<token>) that opens a call's page.
            shown = request.url_rule.rule if request.url_rule is not None else "(inconnu)"
            access.info("%s %s %s", request.method, shown, response.status_code,
                        extra={"status": response.status_code, "duration_ms": round(seconds * 1000, 1), "method": request.method})
        return response

    @app.get("/metrics")
    def prometheus_metrics():
        """For Prometheus: every worker's counters and the figures read now (ivr/metrics.py), to the
        bearer of IVR_METRICS_TOKEN only; with none set, none are served."""
        token = config["IVR_METRICS_TOKEN"]
        if not token:
            return Response("Métriques désactivées : donnez IVR_METRICS_TOKEN.\n", status=404, mimetype="text/plain")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response("Jeton manquant ou faux (Authorization: Bearer …).\n", status=401, mimetype="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        body, content_type = metrics.exposition(metrics.Scraped(lambda: services_module.scraped_figures(ivr)), request.headers.get("Accept"))
        return Response(body, mimetype=None, content_type=content_type, headers={"Cache-Control": "no-store"})

    @app.get("/accessibilite")
    def accessibility():
        """The accessibility statement RGAA asks for, linked from every page."""
        return render_template("accessibility.html")

    @app.get("/health")
    def health():
        """For load balancers and operators: 503 naming what fails; "degraded" when calls are served
        but something needs a look (an edit refused, console changes unreadable)."""
        failing = {}
        for part, check in (("sessions", ivr.store.ping), ("database", lambda: ivr.db.one("SELECT 1 AS ok"))):
            try:
                check()
            except Exception as error:  # what it is matters to the operator, not the traceback; where it is stays in the log
                log.warning("/health: %s fails: %s: %s", part, type(error).__name__, str(error)[:300])
                failing[part] = f"{type(error).__name__} (details in the server's log)"
        library = ivr.library
        library.current()  # looks for edits, like a new call would
        report = {"flow_version": library.current_bundle.version, "refused": [str(p) for p in library.last_problems]}
        if ivr.hours_file is not None:
            ivr.hours_file.current()  # looks for an edit, like a new call would
            if ivr.hours_file.problems:
                report["hours_refused"] = [str(p) for p in ivr.hours_file.problems]
        if library.overrides_missing:
            report["console_changes"] = "unreadable: the database does not answer; the last wording read is served"
        spooled = len(ivr.spool)
        if spooled:
            report["spooled"] = f"{spooled} write(s) waiting for the database (tried again within {config['IVR_SPOOL_INTERVAL']} s)"
        try:
            aside = 0 if "database" in failing else ivr.set_aside.count()
        except Exception:  # noqa: BLE001 - the database's own check says it
            aside = 0
        if aside:
            report["set_aside"] = f"{aside} write(s) that cannot be applied, set aside: ivr journal"
        free = shutil.disk_usage(ivr.spool.path.parent).free
        if free < float(config["IVR_MIN_FREE_MB"]) * 1e6:
            report["disk"] = f"{free // 1_000_000} MB free where the spool and the embedded database write (IVR_DATA_DIR)"
        if failing:
            return {"status": "down", "failing": failing, **report}, 503
        degraded = report["refused"] or "hours_refused" in report or library.overrides_missing or spooled or aside or "disk" in report
        return {"status": "degraded" if degraded else "ok", **report}

    return app


# Settings that are numbers, and the smallest value each takes.
_NUMBERS = {
    "IVR_SESSION_TTL": 60, "IVR_CALLBACK_OFFER_SECONDS": 0, "IVR_CONSOLE_IDLE_MINUTES": 1, "IVR_RELOAD_INTERVAL": 0,
    "IVR_DB_TIMEOUT": 0.1, "IVR_REDIS_TIMEOUT": 0.1, "IVR_HTTP_TIMEOUT": 0.1, "IVR_SPOOL_INTERVAL": 0.1, "IVR_TRUSTED_PROXIES": 0,
    "IVR_MIN_FREE_MB": 0,
}


def _check_numbers(config) -> None:
    """A setting that is no number is refused at start, in one sentence naming it."""
    for name, least in _NUMBERS.items():
        value = str(config.get(name, "")).strip()
        if name == "IVR_TRUSTED_PROXIES" and value == "":
            continue
        try:
            number = int(value) if isinstance(least, int) else float(value)
        except ValueError:
            number = None
        if number is None or number < least:
            kind = "un nombre entier" if isinstance(least, int) else "un nombre"
            raise ConfigurationError(f"{name} doit être {kind} supérieur ou égal à {least} (trouvé : {value!r})")


class ConsoleSessions(SecureCookieSessionInterface):
    """Login cookies for the console only: Twilio's webhooks never carry one, so they skip the work."""

    def open_session(self, app, request):
        if not request.path.startswith("/console"):
            return self.null_session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        if type(session) is not self.null_session_class:
            super().save_session(app, session, response)

    def get_cookie_secure(self, app) -> bool:
        """Secure when configured so, or when the request came over HTTPS (a trusted proxy says so)."""
        return super().get_cookie_secure(app) or request.is_secure


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
