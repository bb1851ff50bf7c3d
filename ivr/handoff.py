"""The context an agent receives with a transferred call, and how it reaches them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from .engine import Session
from .flow import Flow
from .twiml import TransferPlan

SCHEMA = 1
PUBLIC_IP_NOTE = "non collectable par téléphone : à demander à l'appelant"
REASON_LABELS = {
    "caller_request": "l'appelant a demandé un conseiller",
    "no_input": "pas de réponse après plusieurs relances",
    "invalid_input": "touches non reconnues après plusieurs essais",
    "technical_error": "incident technique du serveur vocal",
    "diagnostic_complete": "diagnostic des étapes 1 à 5 sans solution",
}


@dataclass(frozen=True)
class Destinations:
    """Where agents can be reached, from the configuration; the first one set is used."""

    workflow_sid: str = ""
    agent_number: str = ""
    agent_sip_uri: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.workflow_sid or self.agent_number or self.agent_sip_uri)


def iso(timestamp: float | None) -> str | None:
    """A Unix time as an ISO 8601 UTC string."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def context(session: Session, flow: Flow, now: float) -> dict:
    """The document that tells an agent everything the caller already said."""
    steps = []
    for entry in session.history:
        if entry.get("event") != "answer":
            continue
        node = flow.nodes.get(entry.get("node", ""))
        field = entry.get("field")
        steps.append(
            {
                "step": entry.get("step"),
                "node": entry.get("node"),
                "field": field,
                "answer": session.answers.get(field) if node is not None and node.type == "digits" else entry.get("answer"),
                "at": iso(entry.get("at")),
            }
        )
    answers = dict(session.answers)
    identifier = None
    if answers.get("identifiant"):
        identifier = {"type": answers.get("type_identifiant"), "value": answers["identifiant"], "matricule": answers.get("matricule")}
    reason = session.transfer_reason
    return {
        "schema": SCHEMA,
        "call_sid": session.call_sid,
        "caller": session.caller,
        "started_at": iso(session.started_at),
        "transferred_at": iso(now),
        "reason": reason,
        "reason_label": REASON_LABELS.get(reason or "", reason),
        "last_step": session.step,
        "last_node": session.node,
        "ecps_test": answers.get("resultat_test_ecps"),
        "identifier": identifier,
        "answers": answers,
        "steps": steps,
        "public_ip": PUBLIC_IP_NOTE,
        "flow_version": session.flow_version,
    }


def plan(destinations: Destinations, document: dict, done_url: str) -> TransferPlan:
    """Choose how the call reaches an agent and attach the context to it."""
    if destinations.workflow_sid:
        task = {"name": document.get("caller") or "appel e-CPS", "type": "ecps_support", **document}
        return TransferPlan("workflow", destinations.workflow_sid, json.dumps(task, ensure_ascii=False), done_url)
    if destinations.agent_number:
        return TransferPlan("number", destinations.agent_number, done_url=done_url)
    if destinations.agent_sip_uri:
        separator = "&" if "?" in destinations.agent_sip_uri else "?"
        address = f"{destinations.agent_sip_uri}{separator}X-Call-Context={quote(document['call_sid'] or '')}"
        return TransferPlan("sip", address, done_url=done_url)
    return TransferPlan("none")
