"""Fixtures: an app on a temporary data dir, a signed simulated caller, copies of the YAML files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ivr import create_app
from ivr.app import ENVIRONMENT
from ivr.simulator import Caller, FlaskTransport

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


@pytest.fixture
def make_app(tmp_path):
    """Build an app with test settings; keyword arguments override them."""

    def factory(**overrides):
        config = {
            "TESTING": True,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "IVR_DATA_DIR": str(tmp_path / "data"),
            "IVR_FLOW": str(ROOT / "flows" / "ecps.yaml"),
            "IVR_PROMPTS": str(ROOT / "prompts"),
        }
        config.update(overrides)
        return create_app(config)

    return factory


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
