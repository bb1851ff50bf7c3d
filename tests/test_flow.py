"""The loader refuses a broken flow or prompt file, saying where and why."""

from __future__ import annotations

import pytest
from conftest import ROOT

from ivr.call import flow_loader, prompts
from ivr.call.flow import FlowError
from ivr.call.prompts import PromptsError


def load(files):
    catalogue = prompts.load(files / "prompts")
    return flow_loader.load(files / "flows" / "ecps.yaml", catalogue)


def edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path, fragment):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(fragment)


def test_shipped_flow_loads():
    catalogue = prompts.load(ROOT / "prompts")
    loaded = flow_loader.load(ROOT / "flows" / "ecps.yaml", catalogue)
    assert loaded.start == "accueil"
    assert {node.step for node in loaded.nodes.values()} == {None, 1, 2, 3, 4, 5, 6}


@pytest.mark.parametrize(
    ("old", "new", "line_fragment", "message"),
    [
        ('"2": {answer: oui, goto: etape1_android}', '"2": {answer: oui, goto: etape9}', "goto: etape9",
         "renvoie vers « etape9 », qui n'existe pas"),
        ("prompt: etape1.question\n", "prompt: etape1.questoin\n", "etape1.questoin", "la phrase « etape1.questoin » n'existe pas"),
        ('"1": {answer: Bravo, goto: fin_service}', '"1": {answer: Bravo, goto: etape4_deconnexion}', "  fin_service:", "aucun chemin n'y mène"),
        ('"9": {answer: non fourni', '"0": {answer: non fourni', '"0": {answer', "la touche 0 est réservée"),
        ('"9": {answer: non fourni', '"12": {answer: non fourni', '"12": {answer', "n'est pas une touche du clavier"),
        ("type: wait\n    step: 3", "type: attente\n    step: 3", "type: attente", "type « attente » inconnu"),
        ("    prompt: etape4.deconnexion\n", "    promt: etape4.deconnexion\n", "promt:", "« promt » n'a pas de sens ici"),
        ("    check: rpps\n", "    check: adeli\n", "check: adeli", "« check » doit être"),
        ("  max_attempts: 3", "  max_attempts: trois", "max_attempts: trois", "« max_attempts » doit être un nombre entier positif"),
        ("    next: etape1_a_jour\n", "    next: accueil\n", "  accueil:", "revient sur elle-même"),
        ("start: accueil", "start: bienvenue", "start: bienvenue", "« start » doit nommer une étape"),
        ("2: etape3_test, 3: etape4", "2: etape3_tset, 3: etape4", "etape3_tset", "« not_working », étape 2 : renvoie vers « etape3_tset »"),
        ("  resolved: fin_resolu", "  resolu: fin_resolu", "visual_guide:", "« visual_guide » s'écrit {resolved: étape_résolu"),
        ("    visual: visuel.batterie", "    visual: visuel.batery", "visuel.batery", "la phrase « visuel.batery » n'existe pas"),
    ],
    ids=["unknown-destination", "missing-prompt", "unreachable", "reserved-key", "not-a-key", "unknown-type",
         "misspelt-field", "unknown-check", "bad-setting", "say-loop", "bad-start", "visual-target", "visual-section", "visual-text"],
)
def test_broken_flow_is_refused_with_file_line_and_reason(files, old, new, line_fragment, message):
    path = files / "flows" / "ecps.yaml"
    edit(path, old, new)
    expected_line = line_of(path, line_fragment)
    with pytest.raises(FlowError) as caught:
        load(files)
    matching = [p for p in caught.value.problems if message in p.message]
    assert matching, [str(p) for p in caught.value.problems]
    assert matching[0].file == str(path)
    assert matching[0].line == expected_line
    assert str(matching[0]).startswith(f"{path}:{expected_line}: erreur: ")


def test_every_problem_is_reported_at_once(files):
    path = files / "flows" / "ecps.yaml"
    edit(path, "goto: etape1_android}", "goto: nulle_part}")
    edit(path, "prompt: etape4.deconnexion", "prompt: etape4.inconnue")
    with pytest.raises(FlowError) as caught:
        load(files)
    assert len(caught.value.problems) >= 2


def test_yaml_syntax_error_gives_the_line(files):
    path = files / "flows" / "ecps.yaml"
    edit(path, "    field: application_a_jour\n", "    field: [application_a_jour\n")
    with pytest.raises(FlowError) as caught:
        load(files)
    problem = caught.value.problems[0]
    assert "YAML illisible" in problem.message
    assert problem.line >= line_of(path, "field: [application_a_jour")


def test_duplicate_node_is_refused(files):
    path = files / "flows" / "ecps.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "\n  fin_resolu:\n    type: end\n    prompt: fin.resolu\n    outcome: solved\n", encoding="utf-8")
    with pytest.raises(FlowError, match="« fin_resolu » est écrite deux fois"):
        load(files)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  silence: >-\n    Je n'ai pas eu de réponse.\n", "", "la phrase « commun.silence » manque"),
        ("La touche {touche} ne", "La touche {touch} ne", "{touch} n'est pas une valeur connue"),
        ("  prefixe: >-\n    Un numéro RPPS commence par le chiffre 1.\n", "  prefixe: \n", "« saisie.prefixe » : la phrase est vide"),
        ("Ce numéro a {compte:chiffre}", "Ce numéro a <compte>", "les signes < et >"),
    ],
)
def test_broken_prompts_are_refused(files, old, new, message):
    edit(files / "prompts" / "fr-FR.yaml", old, new)
    with pytest.raises((FlowError, PromptsError)) as caught:
        load(files)
    assert any(message in p.message for p in caught.value.problems), [str(p) for p in caught.value.problems]


def test_prompt_too_long_for_twilio(files):
    edit(files / "prompts" / "fr-FR.yaml", "Parfait, votre problème est résolu.", "Parfait. " * 500)
    with pytest.raises(PromptsError, match="Twilio n'en lit pas plus de 4096"):
        load(files)


def test_app_refuses_to_start_on_a_broken_flow(make_app, files):
    edit(files / "flows" / "ecps.yaml", "goto: etape1_android}", "goto: nulle_part}")
    with pytest.raises(FlowError, match="nulle_part"):
        make_app(IVR_FLOW=str(files / "flows" / "ecps.yaml"))
