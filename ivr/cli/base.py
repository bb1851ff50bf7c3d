"""The `ivr` group and what its commands share: options for the files and the data, loading the flow."""

from __future__ import annotations

import logging
import os
import re
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


def _console_changes_option(function):
    """--file-only and --data-dir: whether the sentences changed in the console are applied, as the
    server does, and where they are."""
    function = click.option("--file-only", is_flag=True,
                            help="ignorer les phrases modifiées dans la console (par défaut elles s'appliquent, comme en service)")(function)
    return _data_dir_option(function)


def console_changes(data_dir: str, file_only: bool = False) -> dict[str, str]:
    """The sentences changed in the console, which the server says instead of the file's (nothing
    with --file-only, or where there is no database); named on the way, so that nobody wonders why
    a file edit does not show."""
    if file_only:
        return {}
    from ..storage.overrides import PromptOverrides

    try:
        db = _database(data_dir, must_exist=True)
        changes = PromptOverrides(db).all()
    except click.ClickException:  # no database here: the files alone are what the server would say
        return {}
    except Exception as error:  # noqa: BLE001 - an unreachable database must not stop a check of the files
        click.echo(f"Attention : la base de données ne répond pas ({type(error).__name__}) : "
                   "les phrases modifiées dans la console ne sont pas appliquées ci-dessous.")
        return {}
    if changes:
        click.echo(f"Modifiées dans la console, elles remplacent le fichier (ce que les appelants entendent) : {', '.join(sorted(changes))}. "
                   "Option --file-only pour voir le fichier seul ; « ivr prompts export » pour les y reporter.")
    return changes


def console_state(data_dir: str) -> tuple[list[dict], list[dict]]:
    """The console's changes (with the file's wording each replaced) and the experiments running;
    nothing where there is no database or it does not answer (console_changes has said so)."""
    from ..storage.experiments import Experiments
    from ..storage.overrides import PromptOverrides

    try:
        db = _database(data_dir, must_exist=True)
        return PromptOverrides(db).rows(), Experiments(db).running()
    except Exception:  # noqa: BLE001 - a check of the files goes on without
        return [], []


def file_prompts(prompts_dir: str):
    """The sentences of the prompt file alone (None if it does not load): the base of the console's changes."""
    from ..call import prompts as prompts_module

    return prompts_module.parse(prompts_dir, os.environ.get("IVR_LANGUAGE", "fr-FR"))[0]


def _load(flow_path: str, prompts_dir: str, overrides: dict[str, str] | None = None) -> Bundle:
    bundle, problems = load_bundle(flow_path, prompts_dir, os.environ.get("IVR_LANGUAGE", "fr-FR"), overrides)
    if bundle is None:
        for problem in problems:
            click.echo(str(problem), err=True)
        raise click.ClickException("le parcours ne se charge pas : corrigez les erreurs ci-dessus (ivr validate les liste toutes)")
    return bundle


def _help(function):
    return click.help_option("-h", "--help", help="Afficher cette aide et quitter.")(function)


class FrenchFormatter(click.HelpFormatter):
    """Click's help in French: its headings, the kinds of values (TEXT, FILE…) and the marks it
    adds after an option's help ([required], a range) are English."""

    SECTIONS = {"Options": "Options", "Commands": "Commandes", "Arguments": "Arguments"}
    KINDS = {"INTEGER RANGE": "ENTIER", "FLOAT RANGE": "NOMBRE", "INTEGER": "ENTIER", "FLOAT": "NOMBRE", "TEXT": "TEXTE",
             "FILE": "FICHIER", "PATH": "CHEMIN", "DIRECTORY": "DOSSIER"}
    _KIND = re.compile(r"\b(" + "|".join(KINDS) + r")\b")
    _MARKS = re.compile(r"\[([^\[\]]*)\]$")

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args.replace("COMMAND", "COMMANDE"), prefix="Utilisation : ")

    def section(self, name: str):
        return super().section(self.SECTIONS.get(name, name))

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        def marks(match: re.Match) -> str:
            return "[" + match.group(1).replace("required", "obligatoire").replace("default: ", "défaut : ").replace("; ", " ; ") + "]"

        super().write_dl([(self._KIND.sub(lambda m: self.KINDS[m.group(1)], term), self._MARKS.sub(marks, text)) for term, text in rows],
                         col_max, col_spacing)


class FrenchContext(click.Context):
    formatter_class = FrenchFormatter


class FrenchCommand(click.Command):
    context_class = FrenchContext


class FrenchGroup(click.Group):
    """The `ivr` group: a mistake on the command line is said in one French sentence (click's own
    messages are English), and our refusals (click.ClickException, in French) are printed as they are."""

    context_class = FrenchContext
    command_class = FrenchCommand

    @property
    def group_class(self):  # noqa: D401 - sub-groups (`ivr user`) are French groups too
        return FrenchGroup

    def main(self, args=None, prog_name=None, **extra):
        try:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        except click.UsageError as error:
            if type(error).__name__ == "NoArgsIsHelpError" and error.ctx is not None:  # `ivr` alone: its help
                click.echo(error.ctx.get_help())
                raise SystemExit(0) from None
            click.echo(f"Erreur : {_usage_in_french(error)}", err=True)
            raise SystemExit(2) from None
        except click.ClickException as error:
            click.echo(f"Erreur : {error.format_message()}", err=True)
            raise SystemExit(error.exit_code) from None
        except click.Abort:
            click.echo("Interrompu.", err=True)
            raise SystemExit(1) from None
        except Exception as error:
            if not _is_unreachable(error):
                raise
            click.echo(f"Erreur : la base de données ne répond pas ({type(error).__name__}) : vérifiez DATABASE_URL "
                       "(ou --data-dir) et que le serveur de base de données tourne.", err=True)
            raise SystemExit(1) from None


def _is_unreachable(error: Exception) -> bool:
    """A database that cannot be reached or opened (PostgreSQL down, a wrong URL, an unreadable file)."""
    import sqlite3

    try:
        import psycopg
        kinds: tuple = (sqlite3.OperationalError, sqlite3.DatabaseError, psycopg.OperationalError)
    except ImportError:
        kinds = (sqlite3.OperationalError, sqlite3.DatabaseError)
    return isinstance(error, kinds)


def _usage_in_french(error: click.UsageError) -> str:
    command = error.ctx.command_path if error.ctx else "ivr"
    see = f"voir « {command} --help »"
    if isinstance(error, click.NoSuchOption):
        return f"l'option « {error.option_name} » n'existe pas ; {see}."
    if isinstance(error, click.MissingParameter):
        return f"il manque {_named(error.param)} ; {see}."
    if isinstance(error, click.BadParameter):
        return f"valeur refusée pour {_named(error.param)}{_allowed(error.param)} ; {see}."
    if "Missing command" in error.message or error.message == "":
        return f"il manque la commande ; {see}."
    if "No such command" in error.message:
        return f"cette commande n'existe pas ; {see}."
    return f"la commande est mal formée ; {see}."


def _allowed(param: click.Parameter | None) -> str:
    """What the option takes, said with the refusal (« valeurs possibles : viewer, editor »)."""
    kind = getattr(param, "type", None)
    if isinstance(kind, FrenchNumber):
        return f" (un nombre plus grand que {_number(kind.above)}, par exemple 30 ou 0,5)"
    if isinstance(kind, click.Choice):
        return f" (valeurs possibles : {', '.join(map(str, kind.choices))})"
    if isinstance(kind, click.types._NumberRangeBase):
        bounds = []
        if kind.min is not None:
            bounds.append(f"{'plus de' if kind.min_open else 'au moins'} {_number(kind.min)}")
        if kind.max is not None:
            bounds.append(f"{'moins de' if kind.max_open else 'au plus'} {_number(kind.max)}")
        whole = "un nombre entier" if isinstance(kind, click.IntRange) else "un nombre"
        return f" ({whole}, {' et '.join(bounds)})" if bounds else f" ({whole})"
    if isinstance(kind, click.types.IntParamType):
        return " (un nombre entier)"
    if isinstance(kind, click.types.FloatParamType):
        return " (un nombre)"
    return ""


def _number(value) -> str:
    from .. import french

    return french.number(value, 0 if float(value).is_integer() else 1)


def _named(param: click.Parameter | None) -> str:
    if param is None:
        return "un paramètre"
    if isinstance(param, click.Option):
        return f"l'option « {param.opts[0]} »"
    return f"l'argument « {param.human_readable_name} »"


@click.group(cls=FrenchGroup)
@_help
@click.version_option(package_name="ivr", message="ivr, serveur vocal e-CPS, version %(version)s",
                      help="Afficher la version et quitter.")
def main() -> None:
    """Outils des superviseurs du serveur vocal e-CPS.

    Vérifiez une modification des phrases (prompts/fr-FR.yaml) ou du parcours (flows/ecps.yaml),
    écoutez-la, essayez l'appel au clavier et dessinez le parcours, avant de la publier.
    """
    # The server's own INFO lines would drown what a supervisor reads; problems still show.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")


def _by_option(function):
    """--par NOM: who makes the change, recorded with it (default: the system user)."""
    return click.option("--par", "by", default=_system_user, show_default=False, callback=_a_name,
                        help="qui fait ce changement, enregistré avec lui (défaut : l'utilisateur du système)")(function)


def _a_name(ctx, param, value: str) -> str:
    name = " ".join(str(value).split())
    if not name:
        raise click.ClickException("--par : donnez le nom de la personne qui fait ce changement (il est enregistré avec lui)")
    return name


class FrenchNumber(click.ParamType):
    """A number as a French person writes it (« 0,5 » as well as « 0.5 »), finite, above `above`."""

    name = "nombre"

    def __init__(self, above: float = 0.0):
        self.above = above

    def convert(self, value, param, ctx):
        import math

        try:
            number = float(str(value).replace(",", ".").strip())
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number <= self.above:
            self.fail(str(value), param, ctx)  # said by the group, with what is allowed
        return number


def _system_user() -> str:
    import getpass

    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name known (a container): the change is still recorded
        return "inconnu"


def _data_dir_option(function):
    return click.option("--data-dir", default=lambda: os.environ.get("IVR_DATA_DIR", "instance"),
                        help="dossier des données du serveur (défaut : $IVR_DATA_DIR ou instance ; "
                             "$DATABASE_URL l'emporte s'il désigne PostgreSQL)")(function)


def _database(data_dir: str, must_exist: bool = True):
    """The server's database: PostgreSQL when DATABASE_URL says so, else the SQLite file of
    `data_dir`, which must already exist (a command run outside the server's folder must not quietly
    make an empty one) unless `must_exist` is False."""
    from ..storage.db import connect

    url = os.environ.get("DATABASE_URL", "")
    path = Path(data_dir) / "ivr.sqlite3"
    if not url and must_exist and not path.exists():
        raise click.ClickException(f"aucune base de données dans « {data_dir} » ({path} n'existe pas) : lancez la commande "
                                   "depuis le dossier du serveur, ou donnez --data-dir (ou DATABASE_URL)")
    try:
        return connect(url, Path(data_dir))
    except ValueError as error:
        raise click.ClickException("DATABASE_URL doit commencer par postgresql:// ou sqlite:///") from error
