"""Fixtures: an app on a temporary data dir, a signed simulated caller, copies of the YAML files."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from ivr import create_app
from ivr.supervisor.simulator import Caller, FlaskTransport
from ivr.web.app import ENVIRONMENT

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-auth-token-0123456789abcdef"
WORKFLOW = "WW" + "a" * 32
VALID_RPPS = "10012345673"
VALID_SIRET = "73282932000074"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Tests never inherit the machine's IVR or Twilio settings."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


class _Errors(logging.Handler):
    """Every ERROR record, and every record that carries a traceback, logged while a test runs."""

    def __init__(self):
        super().__init__(level=logging.NOTSET)
        self.seen: list[logging.LogRecord] = []

    def emit(self, record):
        if record.levelno >= logging.ERROR or record.exc_info:
            self.seen.append(record)


def pytest_configure(config):
    config.addinivalue_line("markers", "logs_errors(*fragments): the test goes through error paths whose logged errors contain one of "
                                       "these fragments; any other error logged fails it")
    config.addinivalue_line("markers", "only_backend(name, why): the test is about one backend only (sqlite or redis+postgres)")


# IVR_TEST_NO_SKIP=1 (CI sets it): a test that would be skipped because something it needs is missing
# (Redis, PostgreSQL, a server binary, root, chromium, espeak-ng, graphviz) fails instead, so that a
# green run means every backend and every browser test ran.
NO_SKIP = os.environ.get("IVR_TEST_NO_SKIP", "") not in ("", "0")


def pytest_collection_modifyitems(config, items):
    """A test marked `only_backend` runs on that backend only: the other is not collected (not skipped)."""
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("only_backend")
        if marker and marker.args[0] not in ("sqlite", "redis+postgres"):
            raise pytest.UsageError(f"{item.nodeid}: only_backend({marker.args[0]!r}) names no backend (sqlite, redis+postgres)")
        params = getattr(getattr(item, "callspec", None), "params", {})
        (dropped if marker and params.get("backend", marker.args[0]) != marker.args[0] else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _no_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _no_skip(outcome.get_result())


def _no_skip(report) -> None:
    if NO_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"would be skipped ({reason}), but IVR_TEST_NO_SKIP is set: every test must run"


@pytest.fixture(autouse=True)
def no_unexpected_error(request):
    """A crash must never pass as an answer: the voice error handler turns any exception into an
    apology and a transfer (HTTP 200), so a test in which the app logged an error (or any traceback)
    it did not declare with `@pytest.mark.logs_errors(...)` fails."""
    errors = _Errors()
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        yield errors
    finally:
        root.removeHandler(errors)
    expected = [fragment for marker in request.node.iter_markers("logs_errors") for fragment in marker.args]
    unexpected = [record for record in errors.seen if not any(fragment in _text(record) for fragment in expected)]
    if unexpected:
        pytest.fail("the app logged an error this test does not expect:\n" + "\n".join(_text(record) for record in unexpected[:5]),
                    pytrace=False)
    if expected and not errors.seen:
        pytest.fail(f"the test declares errors ({', '.join(expected)}) but the app logged none: is the error path still taken?", pytrace=False)


def _text(record: logging.LogRecord) -> str:
    text = f"{record.levelname} {record.name}: {record.getMessage()}"
    if record.exc_info and record.exc_info[1] is not None:
        text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
    return text


# The servers the Redis + PostgreSQL half of the suite uses (a database it may create schemas in, a
# Redis whose keys under its own prefix it removes): this machine's by default, or the settings'.
POSTGRES_ADMIN = os.environ.get("IVR_TEST_POSTGRES") or "postgresql://postgres@127.0.0.1:5432/test"
REDIS_TEST_URL = os.environ.get("IVR_TEST_REDIS") or "redis://127.0.0.1:6379/0"
POSTGRES = (urlsplit(POSTGRES_ADMIN).hostname or "127.0.0.1", urlsplit(POSTGRES_ADMIN).port or 5432)
REDIS = (urlsplit(REDIS_TEST_URL).hostname or "127.0.0.1", urlsplit(REDIS_TEST_URL).port or 6379)


def _require_servers() -> None:
    for name, address in (("PostgreSQL", POSTGRES), ("Redis", REDIS)):
        if not _listening(address):
            pytest.skip(f"{name} is not listening on {address[0]}:{address[1]} (IVR_TEST_POSTGRES, IVR_TEST_REDIS)")


def _listening(address) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(params=["sqlite", "redis+postgres"])
def backend(request):
    """The same behaviour suite on the embedded default and on Redis + PostgreSQL (real servers)."""
    if request.param == "sqlite":
        yield {}
        return
    _require_servers()
    yield from _emptied_backend(request.getfixturevalue("migrated_schema"))


@pytest.fixture(scope="session")
def migrated_schema():
    """One PostgreSQL schema migrated once for the session: each test empties it (much faster than
    creating a schema and running every migration for each of the hundreds of tests)."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    _migrate(name)
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        tables = _tables(conn, name)
    yield name, tables
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def _migrate(name: str) -> None:
    import psycopg

    from ivr.storage.db import connect

    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    database = connect(_in_schema(name), None)
    database.migrate()
    database.forget_connection()


def _in_schema(name: str) -> str:
    """The test database's URL with `name` as its search path."""
    return f"{POSTGRES_ADMIN}{'&' if '?' in POSTGRES_ADMIN else '?'}options=-csearch_path%3D{name}"


def _tables(conn, name: str) -> list[str]:
    return sorted(row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> 'schema_version'",
                                                 (name,)))


def _emptied_backend(migrated):
    import psycopg

    name, tables = migrated
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        if _tables(conn, name) != tables:  # a test broke the schema on purpose (a table dropped): built again
            _migrate(name)
        # DELETE, not TRUNCATE: on a few rows it is ten times faster; ids start again at 1.
        for table in tables:
            conn.execute(f"DELETE FROM {name}.{table}")
        for (sequence,) in conn.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = %s", (name,)).fetchall():
            conn.execute(f"ALTER SEQUENCE {name}.{sequence} RESTART")
        conn.execute(f"INSERT INTO {name}.revisions (name, value) VALUES ('prompts', 0)")
    yield from _settings(name, f"ivrtest:{name}:{uuid.uuid4().hex[:8]}:")


def _settings(name: str, prefix: str):
    """The settings of the shared backend on schema `name`; its Redis keys (under `prefix`) go after."""
    import redis

    try:
        yield {
            "DATABASE_URL": _in_schema(name),
            "REDIS_URL": REDIS_TEST_URL,
            "IVR_REDIS_PREFIX": prefix,
        }
    finally:
        client = redis.Redis.from_url(REDIS_TEST_URL)
        keys = list(client.scan_iter(prefix + "*", count=1000))  # the machine's Redis may hold many other keys
        if keys:
            client.delete(*keys)


def _shared_backend():
    """A schema of its own, empty (for the tests that build the schema themselves)."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield from _settings(name, f"ivrtest:{name}:")
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def shared_backend():
    """Redis + PostgreSQL only (for what only matters with many servers)."""
    _require_servers()
    yield from _shared_backend()


def settled_client(apps: list):
    """A test client that, after each request, waits for the facts it caused to be applied from the
    journal by the real background thread (every app of the test: two servers may share one data
    folder), as they are within milliseconds in service: a test then reads the records at once."""

    class SettledClient(FlaskClient):
        def open(self, *args, **kwargs):
            response = super().open(*args, **kwargs)
            for app in apps:
                app.extensions["ivr"].settle()
            return response

    return SettledClient


@pytest.fixture
def make_app(tmp_path, backend):
    """Build an app with test settings on the current backend; keyword arguments override them."""
    apps = []

    def factory(**overrides):
        config = {
            "TESTING": True,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "IVR_DATA_DIR": str(tmp_path / "data"),
            "IVR_FLOW": str(ROOT / "flows" / "ecps.yaml"),
            "IVR_PROMPTS": str(ROOT / "prompts"),
            "IVR_ALWAYS_OPEN": "1",  # tests about opening hours set a clock and IVR_ALWAYS_OPEN=""
            **backend,
        }
        config.update(overrides)
        app = create_app(config)
        app.test_client_class = settled_client(apps)
        apps.append(app)
        return app

    yield factory
    for app in apps:  # close PostgreSQL connections before the schema is dropped
        services = app.extensions["ivr"]
        services.stop()  # its threads: retention, spool replay, helpdesk delivery
        services.db.forget_connection()
        if hasattr(services.db, "close"):  # PostgreSQL: the connections other threads opened too
            services.db.close()


@pytest.fixture
def app(make_app):
    return make_app(TWILIO_WORKFLOW_SID=WORKFLOW)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def caller(app):
    """A new simulated caller on `app` (each call gets its own CallSid)."""

    def factory(target=None, **kwargs):
        target = target or app
        return Caller(FlaskTransport(target.test_client()), "http://localhost", TOKEN, **kwargs)

    return factory


@pytest.fixture
def records(app):
    return app.extensions["ivr"].records


@pytest.fixture
def files(tmp_path):
    """Editable copies of the flow and the prompts, as a supervisor would have them."""
    target = tmp_path / "files"
    shutil.copytree(ROOT / "flows", target / "flows")
    shutil.copytree(ROOT / "prompts", target / "prompts")
    return target


def heard(text: str) -> str:
    """`text` as a transcript of the call shows it: the words as written. How the voice says some of
    them (the prompt file's « prononciation »: e-CPS, KO) is SSML <sub> in the TwiML (issue 35), not
    a respelling in the text."""
    return text




@pytest.fixture
def shots(tmp_path):
    """Where the browser tests put their screenshots: IVR_SCREENSHOTS=docs/screenshots refreshes the documentation's."""
    target = Path(os.environ.get("IVR_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target
