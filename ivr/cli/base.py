"""The `ivr` group and what its commands share: options for the files and the data, loading the flow."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from ..call.library import Bundle, load_bundle

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


class FrenchGroup(click.Group):
    """The `ivr` group: a mistake on the command line is said in one French sentence (click's own
    messages are English), and our refusals (click.ClickException, in French) are printed as they are."""

    def main(self, args=None, prog_name=None, **extra):
        try:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        except click.UsageError as error:
            click.echo(f"Erreur : {_usage_in_french(error)}", err=True)
            raise SystemExit(2) from None
        except click.ClickException as error:
            click.echo(f"Erreur : {error.format_message()}", err=True)
            raise SystemExit(error.exit_code) from None
        except click.Abort:
            click.echo("Interrompu.", err=True)
            raise SystemExit(1) from None


def _usage_in_french(error: click.UsageError) -> str:
    command = error.ctx.command_path if error.ctx else "ivr"
    see = f"voir « {command} --help »"
    if isinstance(error, click.NoSuchOption):
        return f"l'option « {error.option_name} » n'existe pas ; {see}."
    if isinstance(error, click.MissingParameter):
        return f"il manque {_named(error.param)} ; {see}."
    if isinstance(error, click.BadParameter):
        return f"valeur refusée pour {_named(error.param)} ; {see}."
    if "No such command" in error.message:
        return f"cette commande n'existe pas ; {see}."
    return f"la commande est mal formée ; {see}."


def _named(param: click.Parameter | None) -> str:
    if param is None:
        return "un paramètre"
    if isinstance(param, click.Option):
        return f"l'option « {param.opts[0]} »"
    return f"l'argument « {param.human_readable_name} »"


@click.group(cls=FrenchGroup)
@_help
def main() -> None:
    """Outils des superviseurs du serveur vocal e-CPS.

    Vérifiez une modification des phrases (prompts/fr-FR.yaml) ou du parcours (flows/ecps.yaml),
    écoutez-la, essayez l'appel au clavier et dessinez le parcours, avant de la publier.
    """
    # The server's own INFO lines would drown what a supervisor reads; problems still show.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")


def _data_dir_option(function):
    return click.option("--data-dir", default=lambda: os.environ.get("IVR_DATA_DIR", "instance"),
                        help="dossier des données du serveur (défaut : $IVR_DATA_DIR ou instance ; "
                             "$DATABASE_URL l'emporte s'il désigne PostgreSQL)")(function)


def _database(data_dir: str):
    from ..storage.db import connect

    return connect(os.environ.get("DATABASE_URL", ""), Path(data_dir))
