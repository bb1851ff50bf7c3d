"""`twiml.document` and its siblings, verb by verb: whole expected documents, as twilio-python's own
tests compare them (its keyword arguments become attributes silently: the ones that matter are pinned)."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from ivr.call import twiml
from ivr.call.handoff import TransferPlan
from ivr.call.prompts import Prompt, Prompts
from ivr.call.session import Ask, Hangup, Listen, Say, Transfer

HEAD = '<?xml version="1.0" encoding="UTF-8"?>'
SENTENCES = {
    "q": "Tapez 1.", "bye": "Au revoir.", "num": "Vous avez tapé {chiffres}.", "audio": "Bonjour.",
    "conseiller.indisponible": "Aucun conseiller n'est disponible.", "transfert.erreur": "Désolé, un incident.",
    "conseiller.chuchotement": "Résumé de l'appel :", "attente.message": "Merci de patienter.",
    "attente.position": "Vous êtes en position {position}.", "attente.estimation": "Environ {minutes} minutes.",
    "attente.rappel": "Pour être rappelé, tapez 1.",
}
SPEECH = twiml.Speech(Prompts("fr-FR", "test", MappingProxyType({
    key: Prompt(key, text, 1, "https://cdn.example.fr/bonjour.mp3" if key == "audio" else None) for key, text in SENTENCES.items()
})), "Polly.Lea-Neural")
ACTION = "/voice/answer?node=n&amp;phase=ask"


def say(text: str) -> str:
    return f'<Say language="fr-FR" voice="Polly.Lea-Neural">{text}</Say>'


def answer_url(node: str, phase: str) -> str:
    return f"/voice/answer?node={node}&phase={phase}"


def test_a_menu_listens_for_one_key_with_the_sentence_inside_and_redirects_on_silence():
    assert twiml.document((Ask("n", "ask", (Say("q"),), 6),), SPEECH, answer_url) == (
        f'{HEAD}<Response><Gather action="{ACTION}" actionOnEmptyResult="false" finishOnKey="" input="dtmf" method="POST" '
        f'numDigits="1" timeout="6">{say("Tapez 1.")}</Gather><Redirect method="POST">{ACTION}</Redirect></Response>'
    )


def test_words_and_a_patient_pause_turn_speech_on_in_french():
    ask = Ask("n", "ask", (Say("q"),), 6, pause=20, hints=("oui", "non"))
    assert twiml.document((ask,), SPEECH, answer_url) == (
        f'{HEAD}<Response><Gather action="{ACTION}" actionOnEmptyResult="false" finishOnKey="" hints="oui, non" input="dtmf speech" '
        f'language="fr-FR" method="POST" numDigits="1" speechTimeout="auto" timeout="6">{say("Tapez 1.")}<Pause length="20" />'
        f'</Gather><Redirect method="POST">{ACTION}</Redirect></Response>'
    )


def test_a_number_ends_with_hash_and_its_digits_are_filled_in():
    ask = Ask("n", "confirm", (Say.filled("num", chiffres="1 0 0"),), 12, None, "#")
    action = "/voice/answer?node=n&amp;phase=confirm"
    assert twiml.document((ask,), SPEECH, answer_url) == (
        f'{HEAD}<Response><Gather action="{action}" actionOnEmptyResult="false" finishOnKey="#" input="dtmf" method="POST" '
        f'timeout="12">{say("Vous avez tapé 1 0 0.")}</Gather><Redirect method="POST">{action}</Redirect></Response>'
    )


def test_a_voice_message_is_recorded_with_a_beep_and_silence_goes_on():
    action = "/voice/answer?node=m&amp;phase=ask"
    assert twiml.document((Listen("m", (Say("q"),), 60),), SPEECH, answer_url) == (
        f'{HEAD}<Response>{say("Tapez 1.")}<Record action="{action}" finishOnKey="#" maxLength="60" method="POST" '
        f'playBeep="true" timeout="5" /><Redirect method="POST">{action}</Redirect></Response>'
    )


def test_a_goodbye_plays_recorded_audio_where_a_sentence_has_it_then_hangs_up():
    assert twiml.document((Hangup((Say("audio"), Say("bye"))),), SPEECH, answer_url) == (
        f'{HEAD}<Response><Play>https://cdn.example.fr/bonjour.mp3</Play>{say("Au revoir.")}<Hangup /></Response>'
    )


@pytest.mark.parametrize("plan, verb", [
    (TransferPlan("workflow", "WW1", task='{"reason": "no_input", "caller": "é"}', done_url="/voice/transfer-done", wait_url="https://h/voice/wait"),
     '<Enqueue action="/voice/transfer-done" method="POST" waitUrl="https://h/voice/wait" waitUrlMethod="POST" workflowSid="WW1">'
     '<Task>{"reason": "no_input", "caller": "é"}</Task></Enqueue>'),
    (TransferPlan("number", "+33100000000", done_url="/voice/transfer-done", whisper_url="https://h/voice/whisper?call=CA1"),
     '<Dial action="/voice/transfer-done" method="POST" timeout="30"><Number method="POST" url="https://h/voice/whisper?call=CA1">'
     "+33100000000</Number></Dial>"),
    (TransferPlan("sip", "sip:agent@pbx.example.fr?X-Context-Id=CA1&X-Reason=no_input", done_url="/voice/transfer-done"),
     '<Dial action="/voice/transfer-done" method="POST" timeout="30">'
     "<Sip>sip:agent@pbx.example.fr?X-Context-Id=CA1&amp;X-Reason=no_input</Sip></Dial>"),
    (TransferPlan("client", "agent1", done_url="/voice/transfer-done", parameters=(("call_sid", "CA1"), ("reason", "no_input"))),
     '<Dial action="/voice/transfer-done" method="POST" timeout="30"><Client><Identity>agent1</Identity>'
     '<Parameter name="call_sid" value="CA1" /><Parameter name="reason" value="no_input" /></Client></Dial>'),
    (TransferPlan("none"), say("Aucun conseiller n'est disponible.") + "<Hangup />"),
], ids=["workflow", "number", "sip", "client", "none"])
def test_a_transfer_says_why_then_reaches_each_kind_of_destination(plan, verb):
    expected = f"{HEAD}<Response>{say('Au revoir.')}{verb}</Response>"
    assert twiml.document((Transfer("no_input", (Say("bye"),)),), SPEECH, answer_url, plan) == expected


def test_the_apology_without_a_destination_says_so_and_hangs_up():
    assert twiml.apology(SPEECH, None) == (
        HEAD + "<Response>" + say("Désolé, un incident.") + say("Aucun conseiller n'est disponible.") + "<Hangup /></Response>"
    )


def test_goodbye_whisper_leave_and_empty():
    assert twiml.goodbye(SPEECH) == f"{HEAD}<Response><Hangup /></Response>"
    assert twiml.goodbye(SPEECH, "bye") == f"{HEAD}<Response>{say('Au revoir.')}<Hangup /></Response>"
    assert twiml.whisper(SPEECH, "Appel de 10 h 12.") == HEAD + "<Response>" + say("Résumé de l'appel :") + say("Appel de 10 h 12.") + "</Response>"
    assert twiml.leave() == f"{HEAD}<Response><Leave /></Response>"
    assert twiml.empty() == f"{HEAD}<Response />"


def test_the_hold_loop_gives_position_and_wait_then_offers_a_callback():
    assert twiml.hold(SPEECH, 2, 3, "/voice/wait/choice") == (
        f"{HEAD}<Response>{say('Vous êtes en position 2.')}{say('Environ 3 minutes.')}{say('Merci de patienter.')}"
        '<Gather action="/voice/wait/choice" finishOnKey="" input="dtmf" method="POST" numDigits="1" timeout="5">'
        f"{say('Pour être rappelé, tapez 1.')}</Gather><Pause length=\"20\" /></Response>"
    )
    assert twiml.hold(SPEECH, None) == f'{HEAD}<Response>{say("Merci de patienter.")}<Pause length="20" /></Response>'


def test_the_cache_serves_a_question_again_only_for_the_same_scope_and_builds_filled_sentences_each_time():
    cache = twiml.Cache()
    ask = (Ask("n", "ask", (Say("q"),), 6),)
    first = cache.document(("v1", ""), ask, SPEECH, answer_url)
    assert cache.document(("v1", ""), ask, SPEECH, lambda n, p: "/elsewhere") is first  # the same scope: the same document
    assert "/ecps/voice" in cache.document(("v1", "/ecps"), ask, SPEECH, lambda n, p: "/ecps" + answer_url(n, p))
    filled = (Ask("n", "confirm", (Say.filled("num", chiffres="1"),), 6),)
    assert cache.document(("v1", ""), filled, SPEECH, answer_url) is not cache.document(("v1", ""), filled, SPEECH, answer_url)
