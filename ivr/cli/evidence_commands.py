"""Commands for evidence: incident announcements and sentence experiments (A/B)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime

import click

from .. import french
from ..supervisor import experiments as experiments_module
from .base import _by_option, _data_dir_option, _database, _files, _help, _load, console_changes, file_prompts, main


def _interactive() -> bool:
    """Whether a person answers at the terminal (a script's run gets a refusal, not a question)."""
    import sys

    return sys.stdin.isatty()


# ---- incidents ------------------------------------------------------------------------------------
@main.group()
@_help
def incident() -> None:
    """Annonce d'incident, dite à chaque nouvel appel juste après l'accueil (panne nationale…)."""


@incident.command("set")
@_help
@click.argument("text", metavar="TEXTE")
@click.option("--until", "until", help="fin de l'annonce, heure de Paris « AAAA-MM-JJ HH:MM » ou « JJ/MM/AAAA HH:MM » "
                                       "(défaut : jusqu'à « ivr incident clear »)")
@_by_option
@_data_dir_option
def incident_set(text: str, until: str | None, by: str, data_dir: str) -> None:
    """Annoncer TEXTE à chaque nouvel appel (sur tous les serveurs, sans redémarrage)."""
    from ..storage.incidents import Incidents
    from ..supervisor.lint import check_announcement

    now = time.time()
    ends = _paris_time(until) if until else None
    if ends is not None and ends <= now:
        raise click.ClickException(f"la fin « {until} » est déjà passée")
    problems = check_announcement(text)
    if problems:
        raise click.ClickException("annonce refusée : " + " ; ".join(p.message for p in problems))
    number = Incidents(_database(data_dir)).set(" ".join(text.split()), ends, by, now)
    click.echo(f"Annonce n° {number} en service" + (f" jusqu'au {french.moment(ends)}" if ends else " jusqu'à « ivr incident clear »") +
               " : les nouveaux appels l'entendent après l'accueil (dans les 2 secondes sur chaque serveur).")


@incident.command("clear")
@_help
@_by_option
@_data_dir_option
def incident_clear(by: str, data_dir: str) -> None:
    """Arrêter l'annonce en cours."""
    from ..storage.incidents import Incidents

    if not Incidents(_database(data_dir)).clear(by, time.time()):
        click.echo("Aucune annonce en cours.")
        return
    click.echo("Annonce arrêtée : les nouveaux appels ne l'entendent plus.")


@incident.command("show")
@_help
@_data_dir_option
def incident_show(data_dir: str) -> None:
    """L'annonce en cours et les précédentes."""
    from ..storage.incidents import Incidents

    incidents = Incidents(_database(data_dir))
    current = incidents.current(time.time())
    click.echo(f"En cours (n° {current['id']}) : « {current['text']} »" + (f", jusqu'au {_paris(current['until_at'])}" if current["until_at"] else "")
               if current else "Aucune annonce en cours.")
    for row in incidents.history(10):
        ended = f", arrêtée le {_paris(row['cleared_at'])} par {row['cleared_by']}" if row["cleared_at"] else ""
        click.echo(f"  n° {row['id']} posée le {_paris(row['set_at'])} par {row['set_by']}{ended} : « {row['text']} »")


def _paris_time(text: str) -> float:
    """« 2026-12-06 12:30 », or as the commands print it, « 06/12/2026 12:30 » (Paris time)."""
    from ..call.hours import PARIS

    for form in ("%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M"):
        try:
            return datetime.strptime(" ".join(text.split()), form).replace(tzinfo=PARIS).timestamp()
        except ValueError:
            continue
    raise click.ClickException(f"« {text} » n'est pas une date « AAAA-MM-JJ HH:MM » ou « JJ/MM/AAAA HH:MM » (heure de Paris)")


def _paris(at: float) -> str:
    return french.moment(at)


# ---- experiments ------------------------------------------------------------------------------------
@main.group()
@_help
def experiment() -> None:
    """Expériences sur une phrase (A/B) : une part des appels entend une autre formulation, et les
    chiffres disent laquelle marche le mieux."""


@experiment.command("start")
@_help
@click.argument("key", metavar="CLE")
@click.argument("text_b", metavar="TEXTE_B")
@click.option("--share", default=50, type=click.IntRange(1, 99), help="part des nouveaux appels qui entendent B, en % (défaut : 50)")
@click.option("--malgre-avertissements", "despite_warnings", is_flag=True,
              help="lancer même si la formulation B a des avertissements (sinon la question est posée, ou refusée hors terminal)")
@_files
@_by_option
@_data_dir_option
def experiment_start(key: str, text_b: str, share: int, despite_warnings: bool, flow_path: str, prompts_dir: str, by: str,
                     data_dir: str) -> None:
    """Essayer TEXTE_B à la place de la phrase CLE, pour une part des nouveaux appels."""
    from ..call.library import load_bundle
    from ..storage.experiments import ExperimentError, Experiments
    from ..supervisor.lint import check_change

    db = _database(data_dir)
    changes = console_changes(data_dir)
    bundle = _load(flow_path, prompts_dir, changes)
    if key not in bundle.prompts.entries:
        raise click.ClickException(f"la phrase « {key} » n'existe pas (voir prompts/fr-FR.yaml)")
    text_b = " ".join(text_b.split())
    refusal = experiments_module.refusal(bundle, key, text_b)
    if refusal:
        raise click.ClickException(refusal)
    problems = check_change(lambda extra: load_bundle(flow_path, prompts_dir, os.environ.get("IVR_LANGUAGE", "fr-FR"), {**changes, **extra}),
                            key, text_b)
    for problem in problems:  # B is on the command line, not in the file: said without a file and line
        click.echo(f"formulation B : {'erreur' if problem.severity == 'error' else 'avertissement'} : {problem.message}")
    if any(p.severity == "error" for p in problems):
        raise click.ClickException("la formulation B est refusée : corrigez-la (les erreurs sont ci-dessus)")
    if problems and not despite_warnings:  # as the console asks for a second click
        if not _interactive() or not click.confirm("Lancer l'expérience malgré ces avertissements ?", default=False):
            raise click.ClickException("expérience non lancée à cause des avertissements ci-dessus : corrigez la formulation B, "
                                       "ou relancez avec --malgre-avertissements")
    try:
        number = Experiments(db).start(key, text_b, share, by, time.time(), bundle.prompts.entries[key].text)
    except ExperimentError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Expérience n° {number} en cours sur « {key} » : {share} % des nouveaux appels entendent B. "
               f"Suivez-la avec « ivr experiment show {key} ».")


@experiment.command("show")
@_help
@click.argument("key", required=False, metavar="[CLE]")
@click.option("--json", "as_json", is_flag=True, help="sortie JSON")
@_files
@_data_dir_option
def experiment_show(key: str | None, as_json: bool, flow_path: str, prompts_dir: str, data_dir: str) -> None:
    """Les expériences en cours ; avec CLE, les chiffres de chaque version et le verdict."""
    from ..storage.experiments import Experiments
    from ..supervisor import experiments as figures_module

    store = Experiments(_database(data_dir))
    if key is None:
        running = store.running()
        if not running:
            click.echo("Aucune expérience en cours.")
        for row in running:
            click.echo(f"« {row['key']} » : {row['share']} % en B depuis le {_paris(row['started_at'])} — B : « {row['text_b']} »")
        return
    found = store.get(key)
    if found is None:
        raise click.ClickException(f"aucune expérience sur « {key} »")
    bundle = _load(flow_path, prompts_dir, console_changes(data_dir))  # A as callers hear it
    data = figures_module.figures(store.db, found, bundle.flow)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(experiments_module.report(data, bundle.prompts.entries[key].text if key in bundle.prompts.entries else "?"))


@experiment.command("stop")
@_help
@click.argument("key", metavar="CLE")
@click.option("--keep", type=click.Choice(["A", "B"]), required=True,
              help="la formulation gardée : A (l'actuelle) ou B (devient une modification de la console)")
@_files
@_by_option
@_data_dir_option
def experiment_stop(key: str, keep: str, flow_path: str, prompts_dir: str, by: str, data_dir: str) -> None:
    """Arrêter l'expérience sur CLE en gardant A ou B."""
    from ..storage.experiments import ExperimentError, Experiments
    from ..storage.overrides import PromptOverrides
    from ..supervisor import wording

    db = _database(data_dir)
    try:
        stopped = Experiments(db).stop(key, keep, by, time.time())
    except ExperimentError as error:
        raise click.ClickException(str(error)) from error
    if keep == "B":
        before = _load(flow_path, prompts_dir, console_changes(data_dir)).prompts.entries.get(key)
        wording.publish(PromptOverrides(db), file_prompts(prompts_dir), key, stopped["text_b"], by, before.text if before else None,
                        action=f"expérience n° {stopped['id']} : B gardé")
        click.echo(f"Expérience arrêtée : B devient la phrase « {key} » (modification de la console, dans l'historique ; "
                   "« ivr prompts export --write » la reporte dans le fichier).")
    else:
        click.echo(f"Expérience arrêtée : la phrase « {key} » reste telle quelle (A).")
