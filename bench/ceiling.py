"""The ceiling of the stack: a minimal Flask app that answers every webhook with one fixed TwiML
document (a French <Say> in a <Gather>, like ours), under the same gunicorn settings."""

from flask import Flask, Response

DOCUMENT = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    '<Gather action="/voice/answer?node=etape1_a_jour&amp;phase=ask" actionOnEmptyResult="false" finishOnKey="" '
    'input="dtmf" method="POST" numDigits="1" timeout="6"><Say language="fr-FR" voice="Polly.Lea-Neural">'
    "Étape 1. Vérifiez sur votre téléphone si l'application e-CPS est à jour. Si elle n'est pas à jour, tapez 1. "
    "Si elle est à jour, tapez 2.</Say></Gather>"
    '<Redirect method="POST">/voice/answer?node=etape1_a_jour&amp;phase=ask</Redirect></Response>'
)


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/voice", defaults={"rest": ""})
    @app.post("/voice/<path:rest>")
    def fixed(rest: str) -> Response:
        return Response(DOCUMENT, mimetype="text/xml")

    return app
