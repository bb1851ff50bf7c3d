"""`ivr simulate`: a call in the terminal over the real, signed webhooks."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile

import click

from ..storage.records import SIMULATED_PREFIX
from .base import _console_changes_option, _files, _help, _load, console_changes, main


@main.command()
@_help
@_files
@click.option("--keys", help='touches à jouer, séparées par des espaces, ex. "2 2 1" : « . » = silence, « dit:oui » = répondre '
                             "de vive voix, « rec:0 » = un message vide ; un numéro se tape d'un bloc, un # final est retiré "
                             "comme le fait Twilio, # seul = pas de réponse")
@click.option("--url", help="simuler contre un serveur qui tourne (défaut : en local, dans ce processus)")
@click.option("--token", envvar="TWILIO_AUTH_TOKEN", help="TWILIO_AUTH_TOKEN du serveur visé par --url")
@click.option("--caller", "caller_number", default="+33612345678", help="numéro de l'appelant simulé (défaut : +33612345678)")
@click.option("--service", type=click.Choice(["horaires", "ouvert", "ferme"]), default="horaires",
              help="service client selon ses horaires (défaut), toujours ouvert, ou fermé")
@click.option("--hours", "hours_path", default=lambda: os.environ.get("IVR_HOURS", "flows/horaires.yaml"),
              help="fichier des horaires (défaut : $IVR_HOURS ou flows/horaires.yaml), avec --service horaires")
@_console_changes_option
def simulate(flow_path: str, prompts_dir: str, keys: str | None, url: str | None, token: str | None, caller_number: str,
             service: str, hours_path: str, data_dir: str, file_only: bool) -> None:
    """Jouer un appel dans le terminal, par les vrais webhooks signés.

    Sans --keys : tapez les touches à chaque question (« . » = silence, « q » = raccrocher).
    Avec --keys : l'appel est joué d'un coup et le compte rendu peut être collé dans un ticket.
    À la fin, affiche la fiche que recevrait le conseiller.
    """
    from ..supervisor.simulator import Caller, FlaskTransport, HttpTransport

    with contextlib.ExitStack() as cleanup:
        app = None
        if url:
            transport, base = HttpTransport(), url
        else:
            changes = console_changes(data_dir, file_only)
            _load(flow_path, prompts_dir, changes)  # clear errors before anything else
            if service != "ouvert":  # closed or by the hours: when it opens again is said from them
                _check_hours(hours_path)
            from .. import create_app
            from ..call.flow import FlowError
            from ..call.prompts import PromptsError
            from ..web.services import ConfigurationError

            token = secrets.token_hex(16)
            # A database of its own, removed at the end with the app's threads and connection.
            temporary = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="ivr-simulate-"))
            try:
                app = _app(create_app, token, temporary, flow_path, prompts_dir, service, hours_path)
            except (ConfigurationError, FlowError, PromptsError) as error:
                raise click.ClickException(f"le serveur simulé ne démarre pas : {error}") from error
            cleanup.callback(app.extensions["ivr"].db.forget_connection)
            cleanup.callback(app.extensions["ivr"].stop)
            for key, text in changes.items():  # what the server says: the console's sentences too
                app.extensions["ivr"].overrides.set(key, text, "ivr simulate", None)
            transport, base = FlaskTransport(app.test_client()), "http://localhost"
        # A simulated call's id says so: out of the figures, the reports and the helpdesk, on any server.
        caller = Caller(transport, base, token, caller=caller_number, call_sid=SIMULATED_PREFIX + secrets.token_hex(15)[:29])
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

        try:
            result = caller.call(answer)
        except BrokenPipeError:  # the output was cut short (| head): nothing more to say
            return
        except OSError as error:
            if not url:
                raise
            why = _why(getattr(error, "reason", error))
            raise click.ClickException(f"le serveur {url} ne répond pas ({why}) : vérifiez l'adresse et qu'il tourne") from error
        except RuntimeError as error:  # it answered something else than TwiML (a wrong --token: 403)
            if "403" in str(error) and url and not token:
                raise click.ClickException("le serveur a refusé l'appel simulé : il n'accepte que les appels signés ; donnez son "
                                           "TWILIO_AUTH_TOKEN (--token ou la variable d'environnement)") from error
            if "403" in str(error) and url:
                raise click.ClickException("le serveur a refusé l'appel simulé : le jeton (--token ou TWILIO_AUTH_TOKEN) n'est pas celui "
                                           "du serveur, ou son IVR_PUBLIC_URL n'est pas l'adresse donnée à --url") from error
            raise click.ClickException(f"le serveur a refusé l'appel simulé ({str(error)[:120]})") from error
        _print_said(result.last_heard)
        click.echo(f"\nFin de l'appel : {_ending(result)}")
        if app is not None:
            from ..supervisor.analytics import outcome_label

            app.extensions["ivr"].settle()  # the call's record is written from the journal, in the background
            record = app.extensions["ivr"].records.get(caller.call_sid)
            click.echo(f"Résultat enregistré : {outcome_label(record['outcome'])} ({record['outcome']})"
                       + (f", étape {record['outcome_step']}" if record["outcome_step"] else ""))
            if record["context"]:
                click.echo("\nFiche transmise au conseiller :")
                click.echo(json.dumps(record["context"], ensure_ascii=False, indent=2))
        elif result.task:
            click.echo("\nTâche transmise :")
            click.echo(json.dumps(result.task, ensure_ascii=False, indent=2))


def _why(error: object) -> str:
    """Why a server cannot be reached, in French."""
    import errno
    import socket

    if isinstance(error, TimeoutError | socket.timeout):
        return "pas de réponse à temps"
    if isinstance(error, socket.gaierror):
        return "adresse inconnue"
    return {errno.ECONNREFUSED: "connexion refusée", errno.EHOSTUNREACH: "machine injoignable",
            errno.ENETUNREACH: "réseau injoignable", errno.ECONNRESET: "connexion coupée"}.get(getattr(error, "errno", None),
                                                                                                type(error).__name__)


def _check_hours(path: str) -> None:
    """The hours the simulated call follows: a file that is not there or is refused is said, never
    taken for « always open »."""
    from ..call import hours

    found, problems = hours.load(path)
    if found is None:
        raise click.ClickException("les horaires ne se chargent pas (--hours) :\n" + "\n".join(map(str, problems))
                                   + "\n(--service ouvert ou --service ferme pour simuler sans eux)")


def _app(create_app, token: str, data_dir: str, flow_path: str, prompts_dir: str, service: str, hours_path: str):
    """An app of its own for the simulated call: a temporary database, no SMS, no helpdesk, signed
    for the address it is reached at here (whatever IVR_PUBLIC_URL says for the real server)."""
    return create_app({
        "TWILIO_AUTH_TOKEN": token,
        "IVR_DATA_DIR": data_dir,
        "IVR_FLOW": flow_path,
        "IVR_PROMPTS": prompts_dir,
        "TWILIO_WORKFLOW_SID": "WW" + "0" * 32,
        "HANDOFF_WEBHOOK_URL": "",
        "DATABASE_URL": "",  # a simulation never writes into the server's database, whatever the shell says
        "REDIS_URL": "",
        "TWILIO_ACCOUNT_SID": "",  # nor sends an SMS
        "IVR_RELOAD_INTERVAL": "0",
        "IVR_PUBLIC_URL": "",
        "IVR_HOURS": hours_path,
        "IVR_ALWAYS_OPEN": "1" if service == "ouvert" else "",
        **({"IVR_CLOCK": _closed_moment} if service == "ferme" else {}),
    })


def _closed_moment() -> float:
    """A Sunday at 03:00, Paris time: closed whatever the usual hours."""
    from datetime import datetime

    from ..call.hours import PARIS

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
