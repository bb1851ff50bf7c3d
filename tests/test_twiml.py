"""Exact TwiML documents for a few nodes: attributes that matter are pinned, accents included."""

from __future__ import annotations

import json

from conftest import WORKFLOW

VOICE = 'language="fr-FR" voice="Polly.Lea-Neural"'
HEAD = '<?xml version="1.0" encoding="UTF-8"?>'


def post(caller, url, **params):
    status, body = caller.post("http://localhost" + url, caller.params(**params))
    assert status == 200
    return body


def test_first_document(caller):
    # The words the voice says otherwise are SSML <sub> (issue 35): the text keeps « e-CPS » as written.
    body = post(caller(), "/voice")
    action = "/voice/answer?node=etape1_a_jour&amp;phase=ask"
    assert body == (
        f"{HEAD}<Response>"
        f'<Gather action="{action}" actionOnEmptyResult="false" finishOnKey="" input="dtmf" method="POST" numDigits="1" timeout="6">'
        f"<Say {VOICE}>Bonjour, vous êtes sur l'assistance <sub alias=\"é-C-P-S\">e-CPS</sub>. Mettez votre téléphone sur haut-parleur. "
        "À tout moment, tapez étoile pour réécouter, ou 0 pour parler à un conseiller.</Say>"
        f"<Say {VOICE}>Étape 1. Vérifiez sur votre téléphone si l'application <sub alias=\"é-C-P-S\">e-CPS</sub> est à jour. "
        "Si elle n'est pas à jour, tapez 1. Si elle est à jour, tapez 2.</Say>"
        "</Gather>"
        f'<Redirect method="POST">{action}</Redirect>'
        "</Response>"
    )


def test_wait_node_listens_through_a_pause(caller):
    call = caller()
    post(call, "/voice")
    body = post(call, "/voice/answer?node=etape1_a_jour&phase=ask", Digits="1")
    action = "/voice/answer?node=etape1_mise_a_jour&amp;phase=ask"
    assert body == (
        f"{HEAD}<Response>"
        f'<Gather action="{action}" actionOnEmptyResult="false" finishOnKey="" input="dtmf" method="POST" numDigits="1" timeout="6">'
        f"<Say {VOICE}>Mettez à jour l'application <sub alias=\"é-C-P-S\">e-CPS</sub>, puis vérifiez si le problème persiste "
        "en vous connectant à nouveau. "
        "Prenez votre temps, je reste en ligne. Tapez 1 quand c'est fait.</Say>"
        '<Pause length="20" />'
        "</Gather>"
        f'<Redirect method="POST">{action}</Redirect>'
        "</Response>"
    )


def test_number_entry_ends_with_hash(caller):
    call = caller()
    post(call, "/voice")
    for node, key in [("etape1_a_jour", "2"), ("etape1_android", "2"), ("etape3_test", "2"), ("etape4_deconnexion", "1"),
                      ("etape4_resolu", "2"), ("etape5_suppression", "1"), ("etape5_desinstallation", "1"),
                      ("etape5_activation", "1"), ("etape5_resolu", "2")]:
        post(call, f"/voice/answer?node={node}&phase=ask", Digits=key)
    body = post(call, "/voice/answer?node=etape6_type_identifiant&phase=ask", Digits="1")
    action = "/voice/answer?node=etape6_rpps&amp;phase=ask"
    assert body == (
        f"{HEAD}<Response>"
        f'<Gather action="{action}" actionOnEmptyResult="false" finishOnKey="#" input="dtmf" method="POST" timeout="12">'
        f"<Say {VOICE}>Tapez les 11 chiffres de votre RPPS, puis dièse. Vous ne l'avez pas : dièse seul.</Say>"
        "</Gather>"
        f'<Redirect method="POST">{action}</Redirect>'
        "</Response>"
    )


def test_transfer_document_enqueues_with_task(caller):
    call = caller()
    post(call, "/voice")
    body = post(call, "/voice/answer?node=etape1_a_jour&phase=ask", Digits="0")
    prefix = (
        f"{HEAD}<Response>"
        # 0 at the first question: no answers yet, none promised (issue 35).
        f"<Say {VOICE}>Je vous mets en relation avec un conseiller.</Say>"
        '<Enqueue action="/voice/transfer-done" method="POST" waitUrl="http://localhost/voice/wait" waitUrlMethod="POST" '
        f'workflowSid="{WORKFLOW}"><Task>'
    )
    assert body.startswith(prefix)
    assert body.endswith("</Task></Enqueue></Response>")
    task = json.loads(body[len(prefix) : -len("</Task></Enqueue></Response>")].replace("&quot;", '"'))
    assert task["reason"] == "caller_request"
    assert task["name"] == call.caller


def test_voice_is_configurable(make_app, caller):
    app = make_app(IVR_VOICE="Google.fr-FR-Neural2-A")
    body = post(caller(target=app), "/voice")
    assert '<Say language="fr-FR" voice="Google.fr-FR-Neural2-A">' in body


def test_prompt_with_audio_is_played(make_app, caller, files):
    catalogue = files / "prompts" / "fr-FR.yaml"
    text = catalogue.read_text(encoding="utf-8")
    text = text.replace(
        "accueil:\n  bienvenue: >-\n",
        "accueil:\n  bienvenue:\n    audio: https://cdn.example.fr/accueil.mp3\n    text: >-\n",
    )
    text = text.replace("\n    Bonjour, vous êtes", "\n      Bonjour, vous êtes", 1).replace(
        "\n    À tout moment, tapez étoile", "\n      À tout moment, tapez étoile", 1)
    catalogue.write_text(text, encoding="utf-8")
    app = make_app(IVR_PROMPTS=str(files / "prompts"), TWILIO_WORKFLOW_SID=WORKFLOW)  # an agent reachable: the usual welcome
    body = post(caller(target=app), "/voice")
    assert "<Play>https://cdn.example.fr/accueil.mp3</Play>" in body


