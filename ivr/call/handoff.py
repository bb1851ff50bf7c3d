"""The context an agent receives with a transferred call, and every way it reaches them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from . import devices
from .answers import from_device
from .flow import Flow
from .hours import PARIS
from .identifiers import spoken_phone
from .session import Session
from .visual import BUTTONS

SCHEMA = 1
SIP_HEADERS_MAX = 1024  # Twilio's limit for the headers carried in a <Sip> URI
TASK_MAX = 1024  # characters of the <Task> JSON an <Enqueue> carries to TaskRouter
_CUT = " … (suite dans la fiche)"
PUBLIC_IP_NOTE = "non collectable par téléphone : à demander à l'appelant"
REASON_LABELS = {
    "caller_request": "l'appelant a demandé un conseiller",
    "no_input": "pas de réponse après plusieurs relances",
    "invalid_input": "touches non reconnues après plusieurs essais",
    "technical_error": "incident technique du serveur vocal",
    "diagnostic_complete": "diagnostic des étapes 1 à 5 sans solution",
}
# Flow fields (flows/ecps.yaml) → their label in the French summary, in reading order.
FIELD_LABELS = {
    "application_a_jour": "application à jour",
    "resolu_apres_mise_a_jour": "résolu après mise à jour",
    "android_15_et_navigateur": "Android 15 ou plus avec navigateur",
    "resolu_apres_batterie": "résolu après réglage de la batterie",
    "resultat_test_ecps": "test e-CPS",
    "resolu_apres_deconnexion": "résolu après déconnexion des sessions",
    "resolu_apres_reinstallation": "résolu après réinstallation",
    "identifiant": "identifiant",
    "matricule": "matricule",
    "numero_carte": "carte",
    "reproductible": "reproductible",
    "probleme_en_cours": "problème en cours",
    "support": "support",
    "systeme_mobile": "système mobile",
    "version_systeme_mobile": "version",
    "navigateurs": "navigateurs",
    "systeme_ordinateur": "ordinateur",
    "version_systeme_ordinateur": "version",
    "lps": "LPS",
    "numero_rappel": "numéro de rappel",
    "hors_horaires": "hors horaires",
}
# Flow fields → keys of the step-6 questionnaire in the document (the contract with helpdesks).
QUESTIONNAIRE = {
    "numero_carte": "card_number",
    "reproductible": "reproducible",
    "probleme_en_cours": "happening_now",
    "support": "device",
    "systeme_mobile": "mobile_os",
    "version_systeme_mobile": "mobile_os_version",
    "navigateurs": "browsers",
    "systeme_ordinateur": "computer_os",
    "version_systeme_ordinateur": "computer_os_version",
    "lps": "lps",
    "message_vocal": "voice_message_url",
}
_NOT_FIELDS = {"type_identifiant", "message_vocal", "sans_message", "version_systeme_mobile", "version_systeme_ordinateur"}
# A system is said with its version: "système mobile : Android 15".
_VERSIONS = {"systeme_mobile": "version_systeme_mobile", "systeme_ordinateur": "version_systeme_ordinateur"}


@dataclass(frozen=True)
class Destinations:
    """Where agents can be reached, from the configuration; the first one set is used."""

    workflow_sid: str = ""
    agent_number: str = ""
    agent_sip_uri: str = ""
    agent_client: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.workflow_sid or self.agent_number or self.agent_sip_uri or self.agent_client)


@dataclass(frozen=True)
class TransferPlan:
    """Where a transfer goes and what travels with it (decided by the handoff module)."""

    kind: str  # "workflow", "number", "sip", "client", or "none" when nobody can be reached
    address: str = ""
    task: str = ""  # JSON context for a TaskRouter <Task>
    done_url: str = ""  # where Twilio reports how the transfer ended
    wait_url: str = ""  # hold message while in the queue
    whisper_url: str = ""  # played to the agent before the caller is connected
    parameters: tuple[tuple[str, str], ...] = ()  # <Parameter>s for a <Client>
    dial_timeout: int = 30



@dataclass(frozen=True)
class Links:
    """Absolute URLs a transfer needs (Twilio and agents' tools call them back)."""

    done: str  # where Twilio reports how the transfer ended
    context: str  # the agent API for this call's document
    whisper: str = ""  # what an agent's phone plays before the caller is connected
    wait: str = ""  # the hold message while queued
    visual: str = ""  # the visual guide on the caller's phone (/g/<token>)
    agent: str = ""  # the agent's page for this call (/agent/<token>)


def iso(timestamp: float | None) -> str | None:
    """A Unix time as an ISO 8601 UTC string."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def context(session: Session, flow: Flow, now: float, links: Links | None = None) -> dict:
    """The document that tells an agent everything the caller already said (schema 1), with the
    addresses of `links` (the document's own, the caller's visual guide) when the web layer gives them."""
    answers = dict(session.answers)
    path, pages, page = [], [], None
    for entry in session.history:
        if entry.get("event") == "page" and not entry.get("late"):
            page = entry
            pages.append({"step": entry.get("step"), "node": entry.get("node"), "button": BUTTONS.get(entry.get("action"), entry.get("action")),
                          "at": iso(entry.get("at"))})
            continue
        if entry.get("event") not in ("answer", "skip"):
            continue
        node = flow.nodes.get(entry.get("node", ""))
        field = entry.get("field")
        value = entry.get("answer")
        if node is not None and node.type in ("digits", "record"):
            value = answers.get(field) if entry["event"] == "answer" else None
        path.append({"step": entry.get("step"), "node": entry.get("node"), "field": field, "answer": value,
                     "skipped": entry["event"] == "skip", "at": iso(entry.get("at")),
                     "from_page": page is not None and page.get("node") == entry.get("node") and page.get("at") == entry.get("at")})
    identifier = None
    if answers.get("identifiant"):
        identifier = {"type": answers.get("type_identifiant"), "value": answers["identifiant"], "matricule": answers.get("matricule")}
    questionnaire = {key: answers.get(field) for field, key in QUESTIONNAIRE.items()}
    questionnaire["browsers"] = answers["navigateurs"].split(", ") if answers.get("navigateurs") else []
    questionnaire["identifier"] = identifier
    reason = session.transfer_reason
    document = {
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
        "questionnaire": questionnaire,
        "answers": answers,
        "path": path,
        "public_ip": public_ip(session.devices),
        # What the caller's phone or computer sent of itself (issue 36), the answers it gave (their
        # questions were not asked) and, beside an answer given by voice, what the device says.
        "devices": {kind: {**facts, "at": iso(facts.get("at"))} for kind, facts in session.devices.items()},
        "from_device": list(session.from_device),
        "device_answers": {field: value for field, value in devices.answers(session.devices).items()
                           if field in answers and field not in session.from_device},
        "sms": [{"guide": e.get("guide"), "status": e.get("status"), "at": iso(e.get("at"))}
                for e in session.history if e.get("event") == "sms"],
        "flow_version": session.flow_version,
        "incident": session.incident,  # the incident announcement the caller heard, if any
        "experiments": dict(session.arms),  # sentence → the wording ("A" or "B") the caller heard
        "inferred": list(session.inferred),  # answers deduced from others (the flow's inferences), not given by the caller
        # Answers given while waiting in the queue, and the questions still to come when the agent took the call.
        "asked_in_queue": list(dict.fromkeys(e["field"] for e in session.history
                                             if e.get("event") == "queued_answer" and e.get("field") in session.answers)),
        "not_asked": _not_asked(session, flow),
        # Buttons the caller pressed on the visual guide (their answers are marked from_page in the path).
        "from_page": pages,
        "context_url": links.context or None if links else None,
        "visual_guide_url": links.visual or None if links else None,
        "agent_url": links.agent or None if links else None,
    }
    document["summary_fr"] = summary(document, session.started_at)
    return document


def _origin(document: dict, field: str) -> str:
    """Where an answer came from, as the summary says it after the answer: deduced, from a device, or nothing (by voice)."""
    if field in (document.get("inferred") or ()):
        return " (déduit)"
    if field in (document.get("from_device") or ()):
        return " (relevé sur l'appareil)"
    return ""


def public_ip(found: Mapping[str, Mapping]) -> dict:
    """The caller's public IP as our server saw it from their devices (the computer's first: that is
    where the login fails, most often), or the note that it is to be asked."""
    seen = {kind: facts["ip"] for kind, facts in found.items() if facts.get("ip")}
    kind = next((kind for kind in (devices.COMPUTER, devices.PHONE) if kind in seen), None)
    if kind is None:
        return {"collected": False, "note": PUBLIC_IP_NOTE}
    return {"collected": True, "value": seen[kind], "device": kind, "by_device": seen}


def _not_asked(session: Session, flow: Flow) -> list[str]:
    """The questions of the queued part neither answered nor passed yet (the agent asks them)."""
    if session.queue_next is None or flow.while_queued is None:
        return []
    stop, seen, todo, fields = flow.while_queued[1], set(), [session.queue_next], []
    passed = {e.get("field") for e in session.history if e.get("event") == "skip"}
    while todo:
        name = todo.pop(0)
        node = flow.nodes.get(name)
        if name in seen or name == stop or node is None:
            continue
        seen.add(name)
        if node.field and node.field not in session.answers and node.field not in passed and node.field not in fields \
                and from_device(node, session) is None:
            fields.append(node.field)
        todo.extend(node.exits)
    return fields


def summary(document: dict, started_at: float) -> str:
    """A few French sentences an agent can read in ten seconds."""
    when = datetime.fromtimestamp(started_at, PARIS)
    caller = spoken_phone(document["caller"]) if document.get("caller") else "un numéro masqué"  # in pairs: « 06 11 22 33 44 »
    sentences = [f"Appel du {when:%d/%m/%Y} à {when:%H} h {when:%M} depuis le {caller}."]
    if document.get("reason"):
        sentences.append(f"Transfert : {document['reason_label']}.")
    answers = document.get("answers") or {}
    facts = []
    for field, value in answers.items():
        if field in _NOT_FIELDS:
            continue
        label = FIELD_LABELS.get(field, field.replace("_", " "))
        if field == "identifiant" and answers.get("type_identifiant"):
            label = answers["type_identifiant"]
        mark, version = _origin(document, field), _VERSIONS.get(field, "")
        if answers.get(version) and _origin(document, version) == mark:
            value = f"{value} {answers[version]}"  # « Windows 11 (relevé sur l'appareil) »: both from the same place
        elif answers.get(version):  # the system from one place, its version from another: each says where
            value, mark = f"{value}{mark}, version {answers[version]}", _origin(document, version)
        beside = (document.get("device_answers") or {}).get(field)
        if not mark and beside and beside != answers.get(field):
            mark = f" (l'appareil indique : {beside})"
        facts.append(f"{label} : {value}{mark}")
    if answers.get("type_identifiant") and not answers.get("identifiant"):
        facts.append(f"identifiant : {answers['type_identifiant']}")
    sentences.extend(_capitalise(fact) + "." for fact in facts)
    if answers.get("message_vocal"):
        sentences.append("Un message vocal a été laissé.")
    sent = [item["guide"].removeprefix("sms.") for item in document.get("sms") or [] if item["status"] in ("sent", "sending")]
    if sent:
        sentences.append(f"Guide(s) envoyé(s) par SMS : {', '.join(sent)}.")
    pressed = [f"« {item['button']} » (étape {item['step']})" for item in document.get("from_page") or []]
    if pressed:
        sentences.append(f"Sur la page du guide visuel : {', '.join(pressed)}.")
    if document.get("incident"):
        sentences.append("L'appelant a entendu l'annonce d'incident en cours.")
    ip = document.get("public_ip") or {}
    if ip.get("device") == devices.COMPUTER:
        sentences.append(f"IP publique de l'ordinateur : {ip['value']}.")
    elif ip.get("collected"):  # the phone's (often its mobile network's): the computer's, where the login fails, is still to ask
        sentences.append(f"IP publique du téléphone : {ip['value']} ; celle de l'ordinateur est à demander.")
    else:
        sentences.append("IP publique à demander.")
    return " ".join(sentences)


WHISPER_MAX_CHARS = 200  # about 15 s at a French speaking rate: the caller waits while the agent hears it


def whisper_text(document: dict) -> str:
    """What the agent hears before the caller is put through (the rest is on the screen): who (the
    identifier's type and value), where the diagnosis stopped, the e-CPS test's result."""
    identifier = document.get("identifier") or {}
    answers = document.get("answers") or {}
    parts = [f"{identifier.get('type') or 'Identifiant'} {identifier['value']}." if identifier.get("value") else "Pas d'identifiant donné."]
    step = document.get("last_step")
    parts.append(f"Diagnostic arrêté à l'étape {step}." if step else "Diagnostic non commencé.")
    if answers.get("resultat_test_ecps"):
        parts.append(f"Test e-CPS : {answers['resultat_test_ecps']}.")
    if document.get("reason") == "caller_request":
        parts.append("L'appelant a demandé un conseiller.")
    parts.append("Le reste est à l'écran.")
    return " ".join(parts)[:WHISPER_MAX_CHARS]


def compact(document: dict) -> dict:
    """The key fields for a TaskRouter task, with the URL of the whole document."""
    identifier = document.get("identifier") or {}
    return {
        "type": "ecps_support",
        "name": document.get("caller") or "appel e-CPS",
        "call_sid": document["call_sid"],
        "caller": document.get("caller"),
        "started_at": document.get("started_at"),
        "reason": document.get("reason"),
        "last_step": document.get("last_step"),
        "ecps_test": document.get("ecps_test"),
        "identifier_type": identifier.get("type"),
        "identifier": identifier.get("value"),
        "summary_fr": document.get("summary_fr"),
        "context_url": document.get("context_url"),
        "agent_url": document.get("agent_url"),
    }


def task_json(fields: dict) -> str:
    """The task's JSON within TASK_MAX characters: the summary is shortened first (the whole of it
    is in the document at `context_url`, which is never cut)."""
    task = json.dumps(fields, ensure_ascii=False)
    summary = fields.get("summary_fr") or ""
    while len(task.encode()) > TASK_MAX and summary:  # counted in bytes: an accent is two
        keep = max(0, len(summary) - (len(task.encode()) - TASK_MAX) - len(_CUT))
        summary = summary[:keep].rstrip()
        task = json.dumps({**fields, "summary_fr": summary + _CUT if summary else None}, ensure_ascii=False)
    return task


def sip_address(base_uri: str, document: dict) -> str:
    """The SIP URI with X- headers for the agent's PBX, kept within Twilio's header limit."""
    identifier = document.get("identifier") or {}
    wanted = [
        ("X-Context-Id", document["call_sid"]),
        ("X-Reason", document.get("reason")),
        ("X-Ecps-Test", document.get("ecps_test")),
        ("X-Identifier-Type", identifier.get("type")),
        ("X-Identifier", identifier.get("value")),
        ("X-Caller", document.get("caller")),
        ("X-Context-Url", document.get("context_url")),
    ]
    headers = ""
    for name, value in wanted:
        if not value:
            continue
        pair = f"{name}={quote(str(value), safe='')}"
        candidate = f"{headers}&{pair}" if headers else pair
        if len(candidate) > SIP_HEADERS_MAX:
            continue  # least important last: drop what does not fit
        headers = candidate
    separator = "&" if "?" in base_uri else "?"
    return f"{base_uri}{separator}{headers}"


def plan(destinations: Destinations, document: dict, links: Links) -> TransferPlan:
    """Choose how the call reaches an agent and attach the context to it."""
    if destinations.workflow_sid:
        task = task_json(compact(document))
        return TransferPlan("workflow", destinations.workflow_sid, task=task, done_url=links.done, wait_url=links.wait)
    if destinations.agent_number:
        return TransferPlan("number", destinations.agent_number, done_url=links.done, whisper_url=links.whisper)
    if destinations.agent_sip_uri:
        return TransferPlan("sip", sip_address(destinations.agent_sip_uri, document), done_url=links.done)
    if destinations.agent_client:
        parameters = {key: str(value) for key, value in compact(document).items() if value is not None}
        return TransferPlan("client", destinations.agent_client, done_url=links.done, parameters=tuple(parameters.items()))
    return TransferPlan("none")


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]
