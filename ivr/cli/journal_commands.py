"""`ivr journal`: the writes the database refused while it answered (poison lines of the spool), set
aside with the reason: listed, retried or dropped by an operator."""

from __future__ import annotations

import os

import click

from .. import french
from .base import _data_dir_option, _database, _help, main


@main.command()
@_help
@click.option("--retry", "retry", metavar="N|all", help="réessayer l'écriture n° N (ou toutes) comme le serveur la ferait")
@click.option("--drop", "drop", metavar="N|all", help="supprimer l'écriture n° N (ou toutes) sans l'écrire")
@_data_dir_option
def journal(retry: str | None, drop: str | None, data_dir: str) -> None:
    """Les écritures mises de côté : ce que la base de données a refusé alors qu'elle répondait
    (une donnée qu'elle ne peut pas garder). Les autres écritures ont continué ; celles-ci attendent
    qu'on les réessaie (après une correction) ou qu'on les supprime. La durée de conservation les
    efface avec les appels."""
    from ..storage.set_aside import SetAside

    if retry and drop:
        raise click.ClickException("--retry et --drop ne vont pas ensemble : choisissez l'un des deux")
    aside = SetAside(_database(data_dir))
    items = aside.list()
    if not retry and not drop:
        from pathlib import Path

        from ..storage.spool import Spool

        waiting = len(Spool(Path(data_dir) / "spool.jsonl"))
        if waiting:
            click.echo(f"{waiting} écriture(s) attendent la base de données dans le journal de ce serveur "
                       "(appliquées dès qu'elle répond ; /health les compte).")
        click.echo(f"{len(items)} écriture(s) mise(s) de côté." + (" Rien à faire." if not items else ""))
        for item in items:
            when = french.moment(item["at"])
            call = f"appel •••{item['call_sid'][-2:]}" if item["call_sid"] else "appel inconnu"
            click.echo(f"  n° {item['id']}  {when}  {item['kind']}  {call}\n      raison : {item['reason']}")
        return
    chosen = _chosen(items, retry or drop)
    if drop:
        for item in chosen:
            aside.remove(item["id"])
        click.echo(f"{len(chosen)} écriture(s) supprimée(s).")
        return
    refused = _retry(aside, chosen, data_dir)
    click.echo(f"{len(chosen) - len(refused)} écriture(s) faite(s).")
    if refused:
        raise click.ClickException(f"{len(refused)} écriture(s) toujours refusée(s) : " + " ; ".join(refused))


def _chosen(items: list[dict], which: str) -> list[dict]:
    if which == "all":
        return items
    if not (which.isascii() and which.isdigit()):
        raise click.ClickException(f"« {which} » n'est pas un numéro d'écriture (ou « all ») : voir « ivr journal »")
    found = [item for item in items if item["id"] == int(which)]
    if not found:
        raise click.ClickException(f"aucune écriture mise de côté n° {which} : voir « ivr journal »")
    return found


def _retry(aside, items: list[dict], data_dir: str) -> list[str]:
    """Write each item as the server would (its configuration from the environment); the ones
    written leave the list; the reasons of the others."""
    import orjson

    from ..web import services, writes
    from ..web.app import ENVIRONMENT

    config = {name: os.environ.get(name, default) for name, default in ENVIRONMENT.items()}
    config.update(IVR_DATA_DIR=data_dir, IVR_OUTBOX_THREAD="0")
    ivr = services.build(config)
    refused = []
    try:
        for item in items:
            try:
                line = orjson.loads(item["line"])
                writes.writers(ivr)[line["kind"]](line["args"])
            except Exception as error:  # noqa: BLE001 - said to the operator, the item stays
                refused.append(f"n° {item['id']} ({type(error).__name__}: {str(error)[:200]})")
                continue
            aside.remove(item["id"])
    finally:
        ivr.stop()
    return refused
