"""Commands on the server's data: console accounts, figures, sentences changed in the console,
callback requests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .. import french
from .base import FrenchNumber, _by_option, _data_dir_option, _database, _files, _help, _load, file_prompts, main


@main.group()
@_help
def user() -> None:
    """Comptes de la console web (rôles : viewer en lecture, editor peut modifier les phrases)."""


@user.command("add")
@_help
@click.argument("username", metavar="IDENTIFIANT")
@click.option("--role", type=click.Choice(["viewer", "editor"]), default="viewer", help="rôle (défaut : viewer)")
@click.option("--password", help="mot de passe (demandé s'il manque, sans s'afficher)")
@_data_dir_option
def user_add(username: str, role: str, password: str | None, data_dir: str) -> None:
    """Créer le compte IDENTIFIANT (la base de données est créée si c'est le premier compte)."""
    from ..storage.users import Users

    fresh = not os.environ.get("DATABASE_URL") and not (Path(data_dir) / "ivr.sqlite3").exists()
    users = Users(_database(data_dir, must_exist=False))
    if fresh:
        click.echo(f"Base de données créée : {Path(data_dir) / 'ivr.sqlite3'}")
    if any(account["username"] == username for account in users.all()):  # said before a password is asked for
        raise click.ClickException(f"l'utilisateur « {username} » existe déjà (ivr user passwd {username} pour changer son mot de passe)")
    if password is None:
        password = click.prompt("Mot de passe", hide_input=True, confirmation_prompt="Confirmez")
    _change_users(data_dir, "add", username, password, role, users=users)
    click.echo(f"Compte « {username} » créé ({role}).")


def _change_users(data_dir: str, method: str, *args, users=None) -> None:
    """Call Users.<method>(*args); a refusal becomes a clear message and exit code 1."""
    from ..storage.users import UserError, Users

    try:
        getattr(users or Users(_database(data_dir)), method)(*args)
    except UserError as error:
        raise click.ClickException(str(error)) from error


@user.command("passwd")
@_help
@click.argument("username", metavar="IDENTIFIANT")
@click.password_option("--password", prompt="Nouveau mot de passe", confirmation_prompt="Confirmez", help="nouveau mot de passe")
@_data_dir_option
def user_passwd(username: str, password: str, data_dir: str) -> None:
    """Changer le mot de passe de IDENTIFIANT."""
    _change_users(data_dir, "set_password", username, password)
    click.echo(f"Mot de passe de « {username} » changé.")


@user.command("unlock")
@_help
@click.argument("username", metavar="IDENTIFIANT")
@_data_dir_option
def user_unlock(username: str, data_dir: str) -> None:
    """Rouvrir le compte IDENTIFIANT, fermé pour tous après trop de mots de passe essayés (une
    alerte l'a dit dans le journal du serveur). Les adresses qui ont essayé restent comptées."""
    from ..storage.users import Users

    users = Users(_database(data_dir))
    if not any(account["username"] == username for account in users.all()):
        raise click.ClickException(f"aucun utilisateur « {username} » (ivr user list les donne)")
    click.echo(f"Compte « {username} » rouvert." if users.unlock(username) else f"Le compte « {username} » n'était pas fermé.")


@user.command("remove")
@_help
@click.argument("username", metavar="IDENTIFIANT")
@_data_dir_option
def user_remove(username: str, data_dir: str) -> None:
    """Supprimer le compte IDENTIFIANT."""
    _change_users(data_dir, "remove", username)
    click.echo(f"Compte « {username} » supprimé.")


@user.command("list")
@_help
@_data_dir_option
def user_list(data_dir: str) -> None:
    """Lister les comptes."""
    from ..storage.users import Users

    accounts = Users(_database(data_dir)).all()
    if not accounts:
        click.echo("Aucun compte : créez-en un avec « ivr user add NOM --role editor ».")
    for account in accounts:
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

    from ..call.hours import PARIS
    from ..supervisor import analytics

    try:
        end_day = date.fromisoformat(last) if last else datetime.now(PARIS).date()
        start_day = date.fromisoformat(first) if first else end_day - timedelta(days=6)
    except ValueError as error:
        raise click.ClickException("date invalide : utilisez le format AAAA-MM-JJ") from error
    if start_day > end_day:
        raise click.ClickException(f"la période commence ({start_day:%d/%m/%Y}) après sa fin ({end_day:%d/%m/%Y}) : inversez --from et --to")
    data = analytics.figures(_database(data_dir), *analytics.day_bounds(start_day, end_day))
    if as_json:
        data = {**data, "period": {"from": start_day.isoformat(), "to": end_day.isoformat()}}
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        click.echo(analytics.report(data, start_day, end_day), nl=False)


@main.group()
@_help
def prompts() -> None:
    """Phrases modifiées dans la console : d'où vient ce que les appelants entendent."""


@prompts.command("export")
@_help
@_files
@_data_dir_option
@click.option("--write", is_flag=True, help="reporter les modifications dans le fichier YAML (commentaires conservés)")
@click.option("--clear", is_flag=True, help="avec --write : retirer ensuite ces modifications de la base (le fichier les porte)")
@_by_option
def prompts_export(flow_path: str, prompts_dir: str, data_dir: str, write: bool, clear: bool, by: str) -> None:
    """Afficher (ou écrire dans le fichier) les phrases modifiées dans la console, avec ce qui en
    reste à régler (une phrase du fichier modifiée depuis, une copie identique au fichier)."""
    from ..call import prompts as prompts_module
    from ..storage.overrides import PromptOverrides, write_into_yaml
    from ..supervisor import wording

    overrides = PromptOverrides(_database(data_dir))
    rows = overrides.rows()
    if not rows:
        click.echo("Aucune phrase modifiée dans la console : les appelants entendent le fichier.")
        return
    base = prompts_module.load(prompts_dir, os.environ.get("IVR_LANGUAGE", "fr-FR"))
    for origin in wording.origins(base, rows).values():
        click.echo(f"{origin.key} (console, par {origin.changed_by} le {french.moment(origin.changed_at)}) :\n"
                   f"  fichier : {origin.file_text if origin.file_text is not None else '(absente)'}\n  console : {origin.heard}")
        if origin.needs_action:
            click.echo(f"  ! {origin.advice()}")
    if write:
        changes = {row["key"]: row["text"] for row in rows}
        path = prompts_module.path_for(prompts_dir, os.environ.get("IVR_LANGUAGE", "fr-FR"))
        written = write_into_yaml(path, {k: (base.entries[k].line, t) for k, t in changes.items() if k in base.entries})
        _load(flow_path, prompts_dir)  # the rewritten file must still load
        click.echo(f"{len(written)} phrase(s) écrite(s) dans {path} : vérifiez avec « git diff », puis enregistrez (commit).")
        if clear:
            for key in written:
                overrides.remove(key, by, changes[key], changes[key], "reportée dans le fichier (ivr prompts export --write --clear)")
            click.echo("Modifications retirées de la base (inscrit dans l'historique) : le fichier fait foi.")


@prompts.command("reset")
@_help
@click.argument("key", metavar="CLE")
@_files
@_by_option
@_data_dir_option
def prompts_reset(key: str, flow_path: str, prompts_dir: str, by: str, data_dir: str) -> None:
    """Retirer la modification de la console de la phrase CLE : les appelants entendent de nouveau
    le texte du fichier (et ses modifications à venir). Inscrit dans l'historique."""
    from ..storage.experiments import Experiments
    from ..storage.overrides import PromptOverrides
    from ..supervisor import experiments as experiments_module
    from ..supervisor import wording

    db = _database(data_dir)
    file = file_prompts(prompts_dir)
    if file is None:
        raise click.ClickException("le fichier des phrases ne se charge pas : corrigez-le d'abord (ivr validate --file-only)")
    if key not in file.entries:
        raise click.ClickException(f"la phrase « {key} » n'existe pas dans le fichier : rien à reprendre")
    overrides = PromptOverrides(db)
    before = overrides.all().get(key)
    running = Experiments(db).running_on(key)
    if before is not None and running is not None:
        raise click.ClickException(experiments_module.locked(running))
    if before is None or not wording.reset(overrides, file, key, by, before):
        click.echo(f"« {key} » n'est pas modifiée dans la console : les appelants entendent déjà le texte du fichier.")
        return
    click.echo(f"« {key} » : la modification de la console est retirée ; les nouveaux appels entendent le texte du fichier "
               "(sur chaque serveur, dans les 2 secondes).")


@main.command()
@_help
@click.option("--all", "include_done", is_flag=True, help="montrer aussi les demandes déjà traitées")
@click.option("--done", "done_id", type=int, help="marquer la demande n° N comme traitée")
@click.option("--agent", default=lambda: os.environ.get("USER", "cli"), help="qui l'a traitée (avec --done)")
@_data_dir_option
def callbacks(include_done: bool, done_id: int | None, agent: str, data_dir: str) -> None:
    """Demandes de rappel et messages laissés hors horaires, les plus anciens d'abord."""

    from ..storage.callbacks import Callbacks

    if done_id is None and click.get_current_context().get_parameter_source("agent") != click.core.ParameterSource.DEFAULT:
        raise click.ClickException("--agent dit qui a traité une demande : il va avec --done N (ivr callbacks --done 3 --agent nadia)")
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
        when = french.moment(item["requested_at"])
        kind = "rappel" if item["kind"] == "callback" else "message"
        summary = (item["context"] or {}).get("summary_fr", "")
        state = "" if item["status"] == "pending" else f" [traitée par {item['done_by']}]"
        click.echo(f"n° {item['id']}  {when}  {kind}  {item['number']}{state}")
        if item["message_url"]:
            click.echo(f"    message : {item['message_url']}")
        click.echo(f"    {summary}")


@main.command()
@_help
@click.option("--older-than", "days", type=FrenchNumber(above=0), required=True,
              help="supprimer ce qui a plus de ce nombre de jours (ex. 90, ou 0,5 pour douze heures)")
@_data_dir_option
def purge(days: float, data_dir: str) -> None:
    """Supprimer les appels, leurs événements, les fiches remises au helpdesk, les demandes de rappel,
    les SMS et les informations envoyées par les appareils des appelants (système, navigateur, IP
    publique) de plus de N jours (ce que l'appelant a dit n'est pas gardé plus longtemps), et leurs
    messages vocaux chez Twilio (avec TWILIO_ACCOUNT_SID et TWILIO_AUTH_TOKEN) ; aussi les connexions
    à la console, les échecs de connexion et les codes de la page ordinateur de plus de N jours."""
    import time

    from ..delivery.sms import recording_deleter
    from ..storage.retention import DAY, LABELS
    from ..storage.retention import purge as purge_older

    forget = recording_deleter(os.environ.get("TWILIO_ACCOUNT_SID", ""), os.environ.get("TWILIO_AUTH_TOKEN", ""))
    removed = purge_older(_database(data_dir), time.time() - days * DAY, forget)
    click.echo("Supprimé : " + ", ".join(f"{LABELS.get(table, table)} : {count}" for table, count in removed.items()) + ".")
