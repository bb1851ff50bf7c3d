"""The running server picks up edited prompts and flows, refuses broken ones, and keeps calls on
the version they started with."""

from __future__ import annotations

import logging

import pytest
from conftest import heard

from ivr.call.library import FlowLibrary

OLD_ANDROID = "Pro Santé Connect dans le navigateur d'un téléphone Android 15 ou plus : tapez 1. Sinon, tapez 2."
NEW_ANDROID = "Pro Santé Connect dans le navigateur d'un Android 15 ou plus ? Oui, tapez 1. Non, tapez 2."


@pytest.fixture
def live(make_app, files):
    return make_app(IVR_FLOW=str(files / "flows" / "ecps.yaml"), IVR_PROMPTS=str(files / "prompts"), IVR_RELOAD_INTERVAL="0")


def edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def post(call, path, **params):
    status, body = call.post("http://localhost" + path, call.params(**params))
    assert status == 200
    return body


def test_new_calls_hear_the_edit_and_calls_in_progress_keep_their_version(live, files, caller):
    first = caller(target=live)
    post(first, "/voice")
    edit(files / "prompts" / "fr-FR.yaml", OLD_ANDROID, NEW_ANDROID)
    # A new call hears the new sentence at once.
    second = caller(target=live)
    post(second, "/voice")
    post(second, "/voice/answer?node=etape1_a_jour&phase=ask", Digits="2")
    body = post(second, "/voice/answer?node=etape1_android&phase=ask", Digits="5")
    assert NEW_ANDROID in body
    # The call that started before the edit finishes on its own version.
    post(first, "/voice/answer?node=etape1_a_jour&phase=ask", Digits="2")
    body = post(first, "/voice/answer?node=etape1_android&phase=ask", Digits="5")
    assert OLD_ANDROID in body and NEW_ANDROID not in body


def test_flow_edit_applies_to_new_calls_only(live, files, caller):
    call = caller(target=live)
    post(call, "/voice")
    post(call, "/voice/answer?node=etape1_a_jour&phase=ask", Digits="2")
    # The supervisor sends "no Android" callers straight to step 4.
    edit(files / "flows" / "ecps.yaml", '"2": {answer: non, goto: etape3_test}', '"2": {answer: non, goto: etape4_deconnexion}')
    body = post(call, "/voice/answer?node=etape1_android&phase=ask", Digits="2")
    assert "node=etape3_test" in body  # its own version still goes to step 3
    fresh = caller(target=live)
    result = fresh.call(["2", "2"])
    assert result.questions[-1].node == "etape4_deconnexion"


@pytest.mark.logs_errors("edited flow or prompts refused")
def test_broken_edit_is_refused_and_last_good_version_keeps_serving(live, files, caller, caplog):
    version = live.extensions["ivr"].library.current().version
    edit(files / "flows" / "ecps.yaml", "goto: etape1_android}", "goto: etape_inconnue}")
    with caplog.at_level(logging.ERROR):
        result = caller(target=live).call(["2", "2", "1", "1", "."])
    assert result.end == "hangup" and heard("Votre e-CPS fonctionne.") in " ".join(result.said)
    assert live.extensions["ivr"].library.current().version == version
    assert "edited flow or prompts refused" in caplog.text and "renvoie vers « etape_inconnue »" in caplog.text
    health = live.test_client().get("/health").json
    assert health["flow_version"] == version and "etape_inconnue" in health["refused"][0]
    # Refused once: the same broken file is not re-read and re-logged on every request.
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        caller(target=live).call(["1", "1", "1"])
    assert "refused" not in caplog.text
    # Fixed: published.
    edit(files / "flows" / "ecps.yaml", "goto: etape_inconnue}", "goto: etape1_android}")
    caller(target=live).call(["1"])
    assert live.test_client().get("/health").json["refused"] == []


@pytest.mark.logs_errors("edited flow or prompts refused")
def test_broken_yaml_in_prompts_is_refused(live, files, caller):
    edit(files / "prompts" / "fr-FR.yaml", "accueil:\n", "accueil: [\n")
    result = caller(target=live).call(["1", "1", "1"])
    assert result.said[0].startswith(heard("Bonjour, vous êtes sur l'assistance e-CPS"))
    assert "YAML illisible" in live.extensions["ivr"].library.last_problems[0].message


def test_files_are_checked_at_most_once_per_interval(files):
    library = FlowLibrary(files / "flows" / "ecps.yaml", files / "prompts", interval=60)
    before = library.current(now=1000.0).version
    edit(files / "prompts" / "fr-FR.yaml", OLD_ANDROID, NEW_ANDROID)
    assert library.current(now=1030.0).version == before  # not looked at yet
    assert library.current(now=1061.0).version != before  # looked at, changed


def test_a_call_goes_on_with_its_version_after_a_restart_or_on_another_server(make_app, files, caller):
    """Versions are kept in the shared database by the digest of the very texts loaded: a server
    that never served a version (restarted, or another one) loads it back for the call."""
    settings = {"IVR_FLOW": str(files / "flows" / "ecps.yaml"), "IVR_PROMPTS": str(files / "prompts"), "IVR_RELOAD_INTERVAL": "0"}
    before = make_app(**settings)
    call = caller(target=before)
    post(call, "/voice")
    started = before.extensions["ivr"].library.current_bundle.version
    edit(files / "prompts" / "fr-FR.yaml", OLD_ANDROID, NEW_ANDROID)
    after = make_app(**settings)  # a restart (or another server) that only ever read the edited files
    assert after.extensions["ivr"].library.current().version != started
    call.transport = type(call.transport)(after.test_client())
    post(call, "/voice/answer?node=etape1_a_jour&phase=ask", Digits="2")
    body = post(call, "/voice/answer?node=etape1_android&phase=ask", Digits="7")  # a wrong key: the short sentence
    assert OLD_ANDROID in body and NEW_ANDROID not in body
    fresh = caller(target=after)  # while a new call hears the edit
    post(fresh, "/voice")
    post(fresh, "/voice/answer?node=etape1_a_jour&phase=ask", Digits="2")
    assert NEW_ANDROID in post(fresh, "/voice/answer?node=etape1_android&phase=ask", Digits="7")


def test_a_versions_label_is_the_digest_of_the_texts_it_was_loaded_from(files):
    import hashlib

    library = FlowLibrary(files / "flows" / "ecps.yaml", files / "prompts")
    texts = [(files / "flows" / "ecps.yaml").read_bytes(), (files / "prompts" / "fr-FR.yaml").read_bytes()]
    assert library.current().version == hashlib.sha256(b"".join(texts)).hexdigest()[:12]
