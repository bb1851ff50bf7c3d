"""`ivr parcours`: the script book, what a caller hears on each main path and in each situation."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import click

from .base import _files, _help, _load, main


@main.command()
@_help
@_files
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="écrire le livret dans ce fichier (Markdown ; ex. docs/parcours-entendus.md)")
@click.option("--strict", is_flag=True, help="code de sortie 1 si une phrase est redite sans que l'appelant le demande")
def parcours(flow_path: str, prompts_dir: str, output: str | None, strict: bool) -> None:
    """Le livret des parcours : ce qu'un appelant entend sur chaque parcours principal et dans
    chaque situation (ouvert ou fermé, SMS ou non, portable ou fixe, file ou ligne directe), joué par
    les vrais webhooks signés, avec ce qui est dit deux fois sans que l'appelant le demande. Les
    phrases de la console ne s'y appliquent pas : c'est le livret des fichiers."""
    from ..supervisor import scripts

    _load(flow_path, prompts_dir)  # clear errors before anything else
    heard = play(flow_path, prompts_dir)
    text = scripts.render(heard)
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as error:
            raise click.ClickException(f"impossible d'écrire {output} ({error.strerror}) : vérifiez le dossier") from error
        twice = sum(bool(item.said_twice()) for item in heard)
        click.echo(f"Livret écrit dans {output} : {len(heard)} parcours" + (f", dont {twice} avec une redite" if twice else ", sans redite") + ".")
    else:
        click.echo(text, nl=False)
    if strict and any(item.said_twice() for item in heard):
        raise SystemExit(1)


def play(flow_path: str, prompts_dir: str) -> list:
    """Every script of the book, played on an app of its situation; what each heard."""
    from .. import create_app
    from ..storage.records import SIMULATED_PREFIX
    from ..supervisor import scripts
    from ..supervisor.simulator import Caller, FlaskTransport
    from .simulate import _closed_moment

    heard = []
    apps = {}
    with contextlib.ExitStack() as cleanup:
        for index, script in enumerate(scripts.SCRIPTS):
            situation = script.situation
            if situation not in apps:
                folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="ivr-parcours-"))
                app = create_app({
                    "TWILIO_AUTH_TOKEN": "parcours", "IVR_DATA_DIR": folder, "IVR_FLOW": flow_path, "IVR_PROMPTS": prompts_dir,
                    "DATABASE_URL": "", "REDIS_URL": "", "HANDOFF_WEBHOOK_URL": "", "IVR_RELOAD_INTERVAL": "0", "IVR_PUBLIC_URL": "",
                    "IVR_HOURS": "", "IVR_ALWAYS_OPEN": "1" if situation.open else "",
                    # Closed: the usual hours, on a Sunday night (it opens « demain à 8 heures 30 »).
                    **({} if situation.open else {"IVR_HOURS": str(Path(__file__).resolve().parents[2] / "flows" / "horaires.yaml"),
                                                  "IVR_CLOCK": _closed_moment}),
                    "TWILIO_WORKFLOW_SID": "WW" + "0" * 32 if situation.queue else "",
                    "AGENT_NUMBER": "" if situation.queue else "+33100000000",
                    # SMS configured: the calls are simulated ones (CAtry…): heard as sent, never sent.
                    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32 if situation.sms else "", "IVR_SMS_FROM": "+33700000000" if situation.sms else "",
                })
                cleanup.callback(app.extensions["ivr"].db.forget_connection)
                cleanup.callback(app.extensions["ivr"].stop)
                apps[situation] = app
            caller = Caller(FlaskTransport(apps[situation].test_client()), "http://localhost", "parcours", caller=situation.caller,
                            call_sid=f"{SIMULATED_PREFIX}{index:029d}")
            result = caller.call(list(script.keys))
            turns = [(question.node, tuple(question.heard)) for question in result.questions]
            turns.append(("", tuple(result.last_heard)))
            heard.append(scripts.Heard(script, tuple(turns), _ending(result)))
    return heard


def _ending(result) -> str:
    return {"hangup": "le serveur raccroche", "enqueue": "en file d'attente d'un conseiller", "dial": "mis en relation avec un conseiller",
            "caller_hung_up": "l'appelant raccroche"}.get(result.end, result.end)
