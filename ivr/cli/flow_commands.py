"""Commands on the flow files: check them, hear a step, draw the flow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

from ..call import engine, twiml
from ..call.library import load_bundle
from ..call.yamlfile import Problem
from ..supervisor.lint import DEFAULT_MAX_SECONDS, lint
from .base import _console_changes_option, _files, _help, _load, console_changes, console_state, file_prompts, main


@main.command()
@_help
@_files
@click.option("--strict", is_flag=True, help="les avertissements font aussi échouer la vérification")
@click.option("--hours", "hours_path", default=lambda: os.environ.get("IVR_HOURS", "flows/horaires.yaml"),
              help="fichier des horaires (défaut : $IVR_HOURS ou flows/horaires.yaml ; "
                   "s'il n'est pas donné et n'existe pas, le service est toujours ouvert)")
@click.option("--max-seconds", default=DEFAULT_MAX_SECONDS, type=float,
              help=f"durée orale (secondes) au-delà de laquelle une phrase est signalée trop longue ; défaut : {DEFAULT_MAX_SECONDS:.0f}")
@_console_changes_option
def validate(flow_path: str, prompts_dir: str, strict: bool, max_seconds: float, hours_path: str, data_dir: str, file_only: bool) -> None:
    """Vérifier le parcours, les phrases et les horaires : erreurs (refusées en service) et avertissements.

    Toutes les erreurs de tous les fichiers sont listées en une fois. Code de sortie : 0 si tout va
    bien, 1 s'il y a des erreurs (ou des avertissements avec --strict).
    """
    from ..call import hours

    hours_given = click.get_current_context().get_parameter_source("hours_path") != click.core.ParameterSource.DEFAULT or "IVR_HOURS" in os.environ

    changes = console_changes(data_dir, file_only)
    bundle, problems = load_bundle(flow_path, prompts_dir, os.environ.get("IVR_LANGUAGE", "fr-FR"), changes, partial=True)
    if bundle is not None:
        try:
            problems = [*problems, *lint(bundle.flow, bundle.prompts, max_seconds)]
        except Exception:  # a flow read in part, too broken for the style checks: its errors are listed
            if not any(p.severity == "error" for p in problems):
                raise
    if not file_only:  # where what callers hear comes from, and what needs an action
        from ..supervisor import experiments, wording

        rows, running = console_state(data_dir)
        file = file_prompts(prompts_dir)
        problems = [*problems, *wording.problems(file, rows)]
        for found in running:
            entry = bundle.prompts.entries.get(found["key"]) if bundle is not None else None
            changed = experiments.a_changed(found, entry.text if entry else None)
            if changed:
                problems.append(Problem(bundle.prompts.source, entry.line, changed, "warning"))
    if hours_path and (Path(hours_path).exists() or hours_given):
        problems = [*problems, *hours.load(hours_path)[1]]
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity != "error"]
    for problem in sorted(problems):
        click.echo(str(problem))
    if bundle is not None and not errors:
        summary = f"{len(bundle.flow.nodes)} étapes, {len(bundle.prompts.entries)} phrases, version {bundle.version}"
        click.echo(f"OK : {summary} ; {len(warnings)} avertissement(s).")
    else:
        click.echo(f"REFUSÉ : {len(errors)} erreur(s), {len(warnings)} avertissement(s). Le serveur garderait la version précédente.")
    if errors or (strict and warnings):
        sys.exit(1)


@main.command()
@_help
@click.argument("node", metavar="ETAPE")
@_files
@click.option("--audio", type=click.Path(dir_okay=False, writable=True), help="écrire aussi la phrase en WAV (voix française d'espeak-ng)")
@_console_changes_option
def preview(node: str, flow_path: str, prompts_dir: str, audio: str | None, data_dir: str, file_only: bool) -> None:
    """Afficher ce que l'appelant entend à l'étape ETAPE : texte, touches, délais et TwiML."""
    changes = console_changes(data_dir, file_only)
    bundle = _load(flow_path, prompts_dir, changes)
    flow, prompts = bundle.flow, bundle.prompts
    running = {row["key"]: row for row in console_state(data_dir)[1]} if not file_only else {}
    if node not in flow.nodes:
        raise click.ClickException(f"l'étape « {node} » n'existe pas ; étapes : {', '.join(flow.nodes)}")
    item = flow.nodes[node]
    step = f", étape {item.step} du guide" if item.step else ""
    click.echo(f"Étape « {node} » ({item.type}{step}) — {flow.source}:{item.line}")
    actions = engine.preview(flow, node)
    says = _says(actions)
    heard = [prompts.text(say.key, dict(say.params)) for say in says]
    click.echo("\nL'appelant entend :")
    for say, text in zip(says, heard, strict=True):
        origin = "console" if say.key in changes else "fichier"
        click.echo(f"  « {text} »  [{say.key}, {origin}]")
        if say.key in running:
            found = running[say.key]
            click.echo(f"    expérience n° {found['id']} en cours : {found['share']} % des nouveaux appels entendent B « {found['text_b']} »")
    if item.short:
        click.echo(f"\nAprès un silence ou une mauvaise touche :\n  « {prompts.text(item.short)} »  "
                   f"[{item.short}, {'console' if item.short in changes else 'fichier'}]")
    if item.type == "wait":
        click.echo(f"\nPendant qu'il agit (toutes les {flow.settings.wait_pause} s, jusqu'à {flow.settings.wait_max} s) :")
        click.echo(f"  « {prompts.text(item.hold or 'commun.attente')} »")
    _describe_keys(flow, item)
    click.echo("\nTwiML :")
    click.echo(twiml.document(actions, twiml.Speech(prompts, os.environ.get("IVR_VOICE", "Polly.Lea-Neural")),
                              lambda name, phase: f"/voice/answer?node={name}&phase={phase}", twiml.TransferPlan("workflow", "WW…", "{…}")))
    if audio:
        _speak(" ".join(heard), audio)


def _says(actions) -> list:
    says = []
    for action in actions:
        says.extend(getattr(action, "says", ()))
    return says


def _describe_keys(flow, item) -> None:
    settings = flow.settings
    if item.type in ("menu", "wait"):
        click.echo("\nTouches :")
        for key, choice in item.choices.items():
            answer = f" (réponse enregistrée : {choice.answer})" if choice.answer else ""
            click.echo(f"  {engine.spoken_key(key)} → {choice.goto}{answer}")
        click.echo(f"Délai : {settings.menu_timeout} s de silence ; {settings.max_attempts} essais avant un conseiller"
                   + (" (le silence n'est pas compté pendant l'action)" if item.type == "wait" else ""))
    elif item.type == "digits":
        what = f"contrôle {item.check}" if item.check else "choix " + ", ".join(f"{k} {v}" for k, v in item.options.items())
        click.echo(f"\nSaisie terminée par dièse ({what}) → {item.next}")
        click.echo(f"Délai : {settings.digits_timeout} s ; relecture : {'oui' if item.confirm else 'non'} ; "
                   f"facultative : {'oui (dièse seul ou silence)' if item.optional else 'non'}")
    elif item.type == "record":
        click.echo(f"\nMessage vocal de {item.max_length} s au plus, terminé par dièse → {item.next}")
    elif item.type == "end":
        click.echo(f"\nFin de l'appel, résultat enregistré : {item.outcome}")
    elif item.type == "transfer":
        click.echo(f"\nTransfert vers un conseiller, motif : {item.reason}")
    if item.type not in ("end", "transfer", "say"):
        click.echo("Partout : étoile pour réécouter, 0 pour un conseiller.")


def _speak(text: str, path: str) -> None:
    program = shutil.which("espeak-ng")
    if program is None:
        raise click.ClickException("espeak-ng n'est pas installé : l'audio ne peut pas être produit "
                                   "(Debian : apt-get install espeak-ng). Le texte ci-dessus reste valable.")
    folder = Path(path).resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise click.ClickException(f"impossible d'écrire {path} : le dossier {folder} n'existe pas ou n'est pas modifiable")
    done = subprocess.run([program, "-v", "fr", "-s", "160", "-w", path, text], capture_output=True, text=True)
    if done.returncode != 0 or not Path(path).exists():
        raise click.ClickException(f"espeak-ng n'a pas pu écrire {path} ({(done.stderr or '').strip()[:120] or done.returncode})")
    click.echo(f"\nAudio écrit dans {path} (voix de synthèse locale, différente de la voix Twilio).")


@main.command()
@_help
@_files
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="écrire le diagramme Mermaid dans ce fichier")
@click.option("--svg", type=click.Path(dir_okay=False, writable=True), help="écrire aussi une image SVG (avec Graphviz « dot »)")
def graph(flow_path: str, prompts_dir: str, output: str | None, svg: str | None) -> None:
    """Dessiner le parcours : texte Mermaid (et SVG si Graphviz est installé)."""
    from ..supervisor.diagram import dot, mermaid

    bundle = _load(flow_path, prompts_dir)
    text = mermaid(bundle.flow)
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as error:
            raise click.ClickException(f"impossible d'écrire {output} ({error.strerror}) : vérifiez le dossier") from error
        click.echo(f"Diagramme Mermaid écrit dans {output}")
    else:
        click.echo(text)
    if svg:
        program = shutil.which("dot")
        if program is None:
            raise click.ClickException("Graphviz (dot) n'est pas installé : pas de SVG (Debian : apt-get install graphviz). "
                                       "Le texte Mermaid s'affiche dans la plupart des outils (GitLab, GitHub, mermaid.live).")
        subprocess.run([program, "-Tsvg", "-o", svg], input=dot(bundle.flow).encode("utf-8"), check=True)
        click.echo(f"Image SVG écrite dans {svg}")
