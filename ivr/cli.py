"""`ivr`: the supervisors' commands — check, hear, simulate and draw the call flow."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from . import engine, twiml
from .library import Bundle, load_bundle
from .lint import DEFAULT_MAX_SECONDS, lint

FLOW_HELP = "fichier du parcours (défaut : $IVR_FLOW ou flows/ecps.yaml)"
PROMPTS_HELP = "dossier des phrases (défaut : $IVR_PROMPTS ou prompts)"


def _flow_default() -> str:
    return os.environ.get("IVR_FLOW", "flows/ecps.yaml")


def _prompts_default() -> str:
    return os.environ.get("IVR_PROMPTS", "prompts")


def _files(function):
    function = click.option("--prompts", "prompts_dir", default=_prompts_default, show_default=False, help=PROMPTS_HELP)(function)
    function = click.option("--flow", "flow_path", default=_flow_default, show_default=False, help=FLOW_HELP)(function)
    return function


def _load(flow_path: str, prompts_dir: str) -> Bundle:
    bundle, problems = load_bundle(flow_path, prompts_dir, os.environ.get("IVR_LANGUAGE", "fr-FR"))
    if bundle is None:
        for problem in problems:
            click.echo(str(problem), err=True)
        raise click.ClickException("le parcours ne se charge pas : corrigez les erreurs ci-dessus (ivr validate les liste toutes)")
    return bundle


def _help(function):
    return click.help_option("-h", "--help", help="Afficher cette aide et quitter.")(function)


@click.group()
@_help
def main() -> None:
    """Outils des superviseurs du serveur vocal e-CPS.

    Vérifiez une modification des phrases (prompts/fr-FR.yaml) ou du parcours (flows/ecps.yaml),
    écoutez-la, essayez l'appel au clavier et dessinez le parcours, avant de la publier.
    """
    # The server's own INFO lines would drown what a supervisor reads; problems still show.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")


@main.command()
@_help
@_files
@click.option("--strict", is_flag=True, help="les avertissements font aussi échouer la vérification")
@click.option("--hours", "hours_path", default=lambda: os.environ.get("IVR_HOURS", "flows/horaires.yaml"),
              help="fichier des horaires (défaut : $IVR_HOURS ou flows/horaires.yaml ; ignoré s'il n'existe pas)")
@click.option("--max-seconds", default=DEFAULT_MAX_SECONDS, type=float,
              help=f"durée orale (secondes) au-delà de laquelle une phrase est signalée trop longue ; défaut : {DEFAULT_MAX_SECONDS:.0f}")
def validate(flow_path: str, prompts_dir: str, strict: bool, max_seconds: float, hours_path: str) -> None:
    """Vérifier le parcours, les phrases et les horaires : erreurs (refusées en service) et avertissements.

    Code de sortie : 0 si tout va bien, 1 s'il y a des erreurs (ou des avertissements avec --strict).
    """
    from . import hours

    bundle, problems = load_bundle(flow_path, prompts_dir, os.environ.get("IVR_LANGUAGE", "fr-FR"))
    if bundle is not None:
        problems = [*problems, *lint(bundle.flow, bundle.prompts, max_seconds)]
    if hours_path and Path(hours_path).exists():
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
@click.argument("node")
@_files
@click.option("--audio", type=click.Path(dir_okay=False, writable=True), help="écrire aussi la phrase en WAV (voix française d'espeak-ng)")
def preview(node: str, flow_path: str, prompts_dir: str, audio: str | None) -> None:
    """Afficher ce que l'appelant entend à l'étape NODE : texte, touches, délais et TwiML."""
    bundle = _load(flow_path, prompts_dir)
    flow, prompts = bundle.flow, bundle.prompts
    if node not in flow.nodes:
        raise click.ClickException(f"l'étape « {node} » n'existe pas ; étapes : {', '.join(flow.nodes)}")
    item = flow.nodes[node]
    step = f", étape {item.step} du guide" if item.step else ""
    click.echo(f"Étape « {node} » ({item.type}{step}) — {flow.source}:{item.line}")
    actions = engine.preview(flow, node)
    heard = [prompts.text(say.key, dict(say.params)) for say in _says(actions)]
    click.echo("\nL'appelant entend :")
    for text in heard:
        click.echo(f"  « {text} »")
    if item.short:
        click.echo(f"\nAprès un silence ou une mauvaise touche :\n  « {prompts.text(item.short)} »")
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
    subprocess.run([program, "-v", "fr", "-s", "160", "-w", path, text], check=True)
    click.echo(f"\nAudio écrit dans {path} (voix de synthèse locale, différente de la voix Twilio).")


@main.command()
@_help
@_files
@click.option("--keys", help='touches à jouer, séparées par des espaces (« . » = silence), ex. "2 2 1"')
@click.option("--url", help="simuler contre un serveur qui tourne (défaut : en local, dans ce processus)")
@click.option("--token", envvar="TWILIO_AUTH_TOKEN", help="TWILIO_AUTH_TOKEN du serveur visé par --url")
@click.option("--caller", "caller_number", default="+33612345678", help="numéro de l'appelant simulé (défaut : +33612345678)")
@click.option("--service", type=click.Choice(["horaires", "ouvert", "ferme"]), default="horaires",
              help="service client selon ses horaires (défaut), toujours ouvert, ou fermé")
def simulate(flow_path: str, prompts_dir: str, keys: str | None, url: str | None, token: str | None, caller_number: str,
             service: str) -> None:
    """Jouer un appel dans le terminal, par les vrais webhooks signés.

    Sans --keys : tapez les touches à chaque question (« . » = silence, « q » = raccrocher).
    Avec --keys : l'appel est joué d'un coup et le compte rendu peut être collé dans un ticket.
    À la fin, affiche la fiche que recevrait le conseiller.
    """
    from .simulator import Caller, FlaskTransport, HttpTransport

    app = None
    if url:
        transport, base = HttpTransport(), url
    else:
        _load(flow_path, prompts_dir)  # clear errors before anything else
        from . import create_app

        token = secrets.token_hex(16)
        app = create_app({
            "TWILIO_AUTH_TOKEN": token,
            "IVR_DATA_DIR": tempfile.mkdtemp(prefix="ivr-simulate-"),
            "IVR_FLOW": flow_path,
            "IVR_PROMPTS": prompts_dir,
            "TWILIO_WORKFLOW_SID": "WW" + "0" * 32,
            "HANDOFF_WEBHOOK_URL": "",
            "IVR_RELOAD_INTERVAL": "0",
            "IVR_ALWAYS_OPEN": "1" if service == "ouvert" else "",
            **({"IVR_CLOCK": _closed_moment} if service == "ferme" else {}),
        })
        transport, base = FlaskTransport(app.test_client()), "http://localhost"
    caller = Caller(transport, base, token, caller=caller_number)
    scripted = keys.split() if keys is not None else None

    def answer(question) -> str | None:
        _print_said(question.heard)
        if question.record:
            click.echo("serveur : (bip, enregistrement du message)")
        if scripted is not None:
            key = scripted.pop(0) if scripted else None
            click.echo(f"    [{question.node}] appelant : {_spoken(key)}")
            return key
        key = click.prompt(f"    [{question.node}] touche(s) ('.' silence, 'q' raccrocher)", default=".", show_default=False).strip()
        return None if key.lower() == "q" else (key or ".")

    result = caller.call(answer)
    _print_said(result.last_heard)
    click.echo(f"\nFin de l'appel : {_ending(result)}")
    if app is not None:
        record = app.extensions["ivr"].records.get(caller.call_sid)
        click.echo(f"Résultat enregistré : {record['outcome']}" + (f" (étape {record['outcome_step']})" if record["outcome_step"] else ""))
        if record["context"]:
            click.echo("\nFiche transmise au conseiller :")
            click.echo(json.dumps(record["context"], ensure_ascii=False, indent=2))
    elif result.task:
        click.echo("\nTâche transmise :")
        click.echo(json.dumps(result.task, ensure_ascii=False, indent=2))


def _closed_moment() -> float:
    """A Sunday at 03:00, Paris time: closed whatever the usual hours."""
    from datetime import datetime

    from .handoff import PARIS

    return datetime(2026, 11, 29, 3, 0, tzinfo=PARIS).timestamp()


def _print_said(said: list[str]) -> None:
    for text in said:
        click.echo(f"serveur : « {text} »")


def _spoken(key: str | None) -> str:
    return {None: "raccroche", ".": "(silence)"}.get(key, key)


def _ending(result) -> str:
    return {
        "hangup": "le serveur a raccroché",
        "enqueue": "transfert vers la file des conseillers",
        "dial": "transfert vers un conseiller",
        "caller_hung_up": "l'appelant a raccroché",
    }.get(result.end, result.end)


@main.command()
@_help
@_files
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="écrire le diagramme Mermaid dans ce fichier")
@click.option("--svg", type=click.Path(dir_okay=False, writable=True), help="écrire aussi une image SVG (avec Graphviz « dot »)")
def graph(flow_path: str, prompts_dir: str, output: str | None, svg: str | None) -> None:
    """Dessiner le parcours : texte Mermaid (et SVG si Graphviz est installé)."""
    from .diagram import dot, mermaid

    bundle = _load(flow_path, prompts_dir)
    text = mermaid(bundle.flow)
    if output:
        Path(output).write_text(text, encoding="utf-8")
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


if __name__ == "__main__":
    main()


# ---- data commands: users, report, prompts changed in the console --------------------------------
def _data_dir_option(function):
    return click.option("--data-dir", default=lambda: os.environ.get("IVR_DATA_DIR", "instance"),
                        help="dossier des données du serveur (défaut : $IVR_DATA_DIR ou instance ; "
                             "$DATABASE_URL l'emporte s'il désigne PostgreSQL)")(function)


def _database(data_dir: str):
    from .db import connect

    return connect(os.environ.get("DATABASE_URL", ""), Path(data_dir))


@main.group()
@_help
def user() -> None:
    """Comptes de la console web (rôles : viewer en lecture, editor peut modifier les phrases)."""


@user.command("add")
@_help
@click.argument("username")
@click.option("--role", type=click.Choice(["viewer", "editor"]), default="viewer", help="rôle (défaut : viewer)")
@click.password_option("--password", prompt="Mot de passe", confirmation_prompt="Confirmez", help="mot de passe (demandé s'il manque)")
@_data_dir_option
def user_add(username: str, role: str, password: str, data_dir: str) -> None:
    """Créer le compte USERNAME."""
    _change_users(data_dir, "add", username, password, role)
    click.echo(f"Compte « {username} » créé ({role}).")


def _change_users(data_dir: str, method: str, *args) -> None:
    """Call Users.<method>(*args); a refusal becomes a clear message and exit code 1."""
    from .users import UserError, Users

    try:
        getattr(Users(_database(data_dir)), method)(*args)
    except UserError as error:
        raise click.ClickException(str(error)) from error


@user.command("passwd")
@_help
@click.argument("username")
@click.password_option("--password", prompt="Nouveau mot de passe", confirmation_prompt="Confirmez", help="nouveau mot de passe")
@_data_dir_option
def user_passwd(username: str, password: str, data_dir: str) -> None:
    """Changer le mot de passe de USERNAME."""
    _change_users(data_dir, "set_password", username, password)
    click.echo(f"Mot de passe de « {username} » changé.")


@user.command("remove")
@_help
@click.argument("username")
@_data_dir_option
def user_remove(username: str, data_dir: str) -> None:
    """Supprimer le compte USERNAME."""
    _change_users(data_dir, "remove", username)
    click.echo(f"Compte « {username} » supprimé.")


@user.command("list")
@_help
@_data_dir_option
def user_list(data_dir: str) -> None:
    """Lister les comptes."""
    from .users import Users

    for account in Users(_database(data_dir)).all():
        click.echo(f"{account['username']}\t{account['role']}")


@main.command()
@_help
@click.option("--from", "first", help="premier jour, AAAA-MM-JJ (défaut : il y a 6 jours)")
@click.option("--to", "last", help="dernier jour inclus, AAAA-MM-JJ (défaut : aujourd'hui)")
@click.option("--json", "as_json", is_flag=True, help="sortie JSON (pour un tableur ou un script)")
@_data_dir_option
def report(first: str | None, last: str | None, as_json: bool, data_dir: str) -> None:
    """Chiffres des appels d'une période : résolution sans conseiller, issues, entonnoir, étape par étape."""
    from datetime import date, datetime, timedelta

    from . import analytics
    from .handoff import PARIS

    try:
        end_day = date.fromisoformat(last) if last else datetime.now(PARIS).date()
        start_day = date.fromisoformat(first) if first else end_day - timedelta(days=6)
    except ValueError as error:
        raise click.ClickException("date invalide : utilisez le format AAAA-MM-JJ") from error
    data = analytics.figures(_database(data_dir), *analytics.day_bounds(start_day, end_day))
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        click.echo(analytics.report(data, start_day, end_day), nl=False)


@main.group()
@_help
def prompts() -> None:
    """Phrases modifiées dans la console."""


@prompts.command("export")
@_help
@_files
@_data_dir_option
@click.option("--write", is_flag=True, help="reporter les modifications dans le fichier YAML (commentaires conservés)")
@click.option("--clear", is_flag=True, help="avec --write : retirer ensuite ces modifications de la base (le fichier les porte)")
def prompts_export(flow_path: str, prompts_dir: str, data_dir: str, write: bool, clear: bool) -> None:
    """Afficher (ou écrire dans le fichier) les phrases modifiées dans la console."""
    from . import prompts as prompts_module
    from .overrides import PromptOverrides, write_into_yaml

    overrides = PromptOverrides(_database(data_dir))
    changes = overrides.all()
    if not changes:
        click.echo("Aucune phrase modifiée dans la console.")
        return
    base = prompts_module.load(prompts_dir, os.environ.get("IVR_LANGUAGE", "fr-FR"))
    for key, text in changes.items():
        click.echo(f"{key}:\n  fichier : {base.entries[key].text if key in base.entries else '(absente)'}\n  console : {text}")
    if write:
        path = prompts_module.path_for(prompts_dir, os.environ.get("IVR_LANGUAGE", "fr-FR"))
        written = write_into_yaml(path, {k: (base.entries[k].line, t) for k, t in changes.items() if k in base.entries})
        _load(flow_path, prompts_dir)  # the rewritten file must still load
        click.echo(f"{len(written)} phrase(s) écrite(s) dans {path} : vérifiez avec « git diff », puis enregistrez (commit).")
        if clear:
            overrides.clear(written)
            click.echo("Modifications retirées de la base : le fichier fait foi.")


@main.command()
@_help
@click.option("--all", "include_done", is_flag=True, help="montrer aussi les demandes déjà traitées")
@click.option("--done", "done_id", type=int, help="marquer la demande n° N comme traitée")
@click.option("--agent", default=lambda: os.environ.get("USER", "cli"), help="qui l'a traitée (avec --done)")
@_data_dir_option
def callbacks(include_done: bool, done_id: int | None, agent: str, data_dir: str) -> None:
    """Demandes de rappel et messages laissés hors horaires, les plus anciens d'abord."""
    from datetime import datetime

    from .callbacks import Callbacks
    from .handoff import PARIS

    requests_list = Callbacks(_database(data_dir))
    if done_id is not None:
        if not requests_list.done(done_id, agent):
            raise click.ClickException(f"aucune demande en attente n° {done_id}")
        click.echo(f"Demande n° {done_id} traitée.")
        return
    items = requests_list.list(include_done)
    if not items:
        click.echo("Aucune demande de rappel en attente.")
    for item in items:
        when = datetime.fromtimestamp(item["requested_at"], PARIS).strftime("%d/%m/%Y %H:%M")
        kind = "rappel" if item["kind"] == "callback" else "message"
        summary = (item["context"] or {}).get("summary_fr", "")
        state = "" if item["status"] == "pending" else f" [traitée par {item['done_by']}]"
        click.echo(f"n° {item['id']}  {when}  {kind}  {item['number']}{state}")
        if item["message_url"]:
            click.echo(f"    message : {item['message_url']}")
        click.echo(f"    {summary}")
