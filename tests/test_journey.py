"""Issue 36, the supervisor's call journey: a call played by signed webhooks, found again by the last
digits of its number, its steps in order with what was said, pressed, and the time spent."""

from __future__ import annotations

import re

from conftest import WORKFLOW
from test_console import EDITOR, VIEWER, login

from ivr.storage.users import Users


def test_a_calls_journey_shows_its_steps_in_order_and_the_search_finds_it(make_app, caller):
    app = make_app(TWILIO_WORKFLOW_SID=WORKFLOW)
    Users(app.extensions["ivr"].db).add(*VIEWER, "viewer")
    call = caller(target=app, caller="+33611224471")
    call.call(["2", "7", "2", "2", "*", "1", "0"])  # up to date; a wrong key, no Android; KO; a repeat, done; agent
    caller(target=app, caller="+33699999999").call(["1", "1", "1", "4"])  # another call, solved
    client = login(app, VIEWER)
    found = client.get("/console/appels?numero=4471").get_data(as_text=True)
    assert found.count('href="/console/appels/CA') == 1 and call.call_sid in found
    assert "•• •• •• 44 71" in found and "+33611224471" not in found  # the number is masked in the list
    assert call.call_sid not in client.get("/console/appels?issue=solved").get_data(as_text=True)
    page = client.get(f"/console/appels/{call.call_sid}").get_data(as_text=True)
    assert "transféré à un conseiller" in page
    assert "+33611224471" not in page and "06 11 22 44 71" not in page and "•• •• •• 44 71" in page  # every supervisor sees it
    rows = re.findall(r"<tr><td class=\"num\">([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>\s*<td>([^<]*)</td>", page)
    events = [(node.split(" (")[0], what, detail) for _, node, what, detail in rows]
    assert events[:8] == [
        ("accueil", "étape", ""), ("etape1_a_jour", "étape", ""), ("etape1_a_jour", "réponse", "touche 2 : oui"),
        ("etape1_android", "étape", ""), ("etape1_android", "mauvaise touche", "touche 7"),
        ("etape1_android", "réponse", "touche 2 : non"), ("etape3_test", "étape", ""), ("etape3_test", "réponse", "touche 2 : KO"),
    ]
    assert ("etape4_deconnexion", "réécoute (étoile)", "") in events
    assert events[-2:] == [("etape4_resolu", "demande un conseiller (0)", ""), ("etape4_resolu", "transfert vers un conseiller",
                                                                                "l&#39;appelant a demandé un conseiller")]
    assert all(offset.startswith("+0:") for offset, *_ in rows)
    assert "Étape 3. Testez votre e-CPS dans l&#39;application." in page  # the sentence of the step, as written


def test_a_wrong_search_is_said_and_an_unknown_call_is_a_404(make_app):
    app = make_app()
    Users(app.extensions["ivr"].db).add(*EDITOR, "editor")
    client = login(app, EDITOR)
    wrong = client.get("/console/appels?numero=12ab")
    assert wrong.status_code == 400 and "les 2 à 4 derniers chiffres" in wrong.get_data(as_text=True)
    assert client.get("/console/appels/CA" + "0" * 32).status_code == 404
