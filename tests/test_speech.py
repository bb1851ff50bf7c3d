"""Spoken French answers at yes/no questions and short menus; keys always work."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from conftest import heard


def test_speech_questions_listen_for_words(caller):
    call = caller()
    call.post("http://localhost/voice", call.params())
    _, body = call.post("http://localhost/voice/answer?node=etape1_a_jour&phase=ask", call.params(Digits="2"))
    gather = ET.fromstring(body).find("Gather")
    assert gather.get("input") == "dtmf speech" and gather.get("language") == "fr-FR" and gather.get("speechTimeout") == "auto"
    assert gather.get("hints") == "oui, ouais, exact, c'est bon, non, pas du tout"
    assert gather.get("numDigits") == "1"  # keys still work


def test_menus_without_words_stay_keypad_only(caller):
    body = caller().post("http://localhost/voice", caller().params())[1]
    assert 'input="dtmf"' in body


@pytest.mark.parametrize(
    ("said", "ending"),
    [("Oui.", "Parfait, votre problème est résolu."), ("euh non c'est toujours là", "Vous connectez-vous à Pro Santé Connect"), ("Bravo !", None)],
)
def test_sure_answers_count_as_the_key(caller, said, ending):
    keys = ["1", "1", f"dit:{said}"]
    if ending is None:
        keys = ["2", "2", "dit:bravo"]
        ending = heard("Votre e-CPS fonctionne.")
    result = caller().call(keys)
    assert any(text.startswith(ending) for text in result.said)


def test_unsure_answer_is_read_back_and_confirmed(caller):
    result = caller().call(["2", "2", "dit:ko:0.3", "1", "1", "1"])
    assert "Vous avez dit « ko ». Si c'est exact, tapez 1. Sinon, tapez 2." in result.said
    assert any(text.startswith("Étape 4.") for text in result.said)


def test_unsure_answer_denied_asks_again(caller):
    result = caller().call(["2", "2", "dit:bravo:0.2", "2", "2"])
    assert result.said.count("Vous avez dit « bravo ». Si c'est exact, tapez 1. Sinon, tapez 2.") == 1
    assert any(text.startswith("Étape 4.") for text in result.said)


def test_words_not_understood_count_as_a_failed_answer(caller):
    result = caller().call(["2", "dit:peut-être", "dit:je ne sais pas", "dit:hmm"])
    assert result.said.count("Je n'ai pas compris votre réponse.") == 2
    assert result.end == "enqueue" and result.task["reason"] == "invalid_input"


def test_an_answer_with_words_of_two_keys_is_not_guessed(caller):
    result = caller().call(["2", "dit:oui et non", "2", "1"])
    assert "Je n'ai pas compris votre réponse." in result.said
    assert result.said[-1].startswith(heard("Votre e-CPS fonctionne."))


def test_speech_answers_are_in_the_context(app, caller):
    call = caller()
    call.call(["2", "dit:non", "dit:ko", "0"])
    path = app.extensions["ivr"].records.get(call.call_sid)["context"]["path"]
    assert [(p["field"], p["answer"]) for p in path if p["field"]][-2:] == [("android_15_et_navigateur", "non"), ("resultat_test_ecps", "KO")]


def test_speech_words_are_checked_when_the_flow_loads(files):
    from ivr.call import flow_loader, prompts
    from ivr.call.flow import FlowError

    path = files / "flows" / "ecps.yaml"
    text = path.read_text(encoding="utf-8").replace('speech: {"1": [bravo]', 'speech: {"7": [bravo]', 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FlowError, match="la touche 7, qui n'est pas un choix"):
        flow_loader.load(path, prompts.load(files / "prompts"))
