"""What each result Twilio reports for a transfer means for the call: whether an agent took it, and
whether Twilio hands the caller back to us afterwards (so that the rating question can be asked).

Every value Twilio documents is here on purpose; a value it adds later is read as "nobody took the
call" and logged, so that the offer of a callback is never lost.

- `<Enqueue>` action, `QueueResult` (https://www.twilio.com/docs/voice/twiml/enqueue, "action"):
  the action is requested at once when the call leaves the queue by `<Leave>` or the REST API
  (a Flex/TaskRouter agent accepting the Task moves the call into a conference: `redirected`), and
  only once both parties hang up when it was bridged by `<Dial><Queue>`.
- `<Dial>` action, `DialCallStatus` (https://www.twilio.com/docs/voice/twiml/dial, "action").
- Ours: `no_destination` (no agent destination configured), `unknown` (a request with neither field).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TransferResult:
    agent: bool  # an agent took the call (it counts as answered)
    caller_back: bool  # Twilio runs our answer afterwards, with the caller still on the line
    label: str  # in French, for the supervisors' figures


RESULTS: dict[str, TransferResult] = {
    # <Enqueue> QueueResult
    "bridged": TransferResult(True, True, "pris par un conseiller"),
    # Dequeued but the bridge was not made when the action came (the caller gone meanwhile): not
    # counted as answered, and nothing offered to a caller who is not there.
    "bridging-in-process": TransferResult(False, False, "raccroché pendant la mise en relation"),
    # Moved out of the queue through the REST API. This server never moves a queued call (the visual
    # guide moves only calls still in the diagnostic): with a TaskRouter workflow it is Flex putting
    # the agent who accepted the Task and the caller in its conference.
    "redirected": TransferResult(True, False, "pris par un conseiller (Flex)"),
    "redirected-from-bridged": TransferResult(True, False, "pris par un conseiller (Flex)"),
    "hangup": TransferResult(False, False, "raccroché en attente"),
    "leave": TransferResult(False, True, "sorti de l'attente"),
    "queue-full": TransferResult(False, True, "file d'attente pleine"),
    "error": TransferResult(False, True, "erreur de la file d'attente"),
    "system-error": TransferResult(False, True, "erreur de Twilio"),
    # <Dial> DialCallStatus
    "completed": TransferResult(True, True, "pris par un conseiller"),
    "answered": TransferResult(True, True, "pris par un conseiller"),
    "busy": TransferResult(False, True, "conseiller occupé"),
    "no-answer": TransferResult(False, True, "conseiller sans réponse"),
    "failed": TransferResult(False, True, "appel du conseiller en échec"),
    "canceled": TransferResult(False, True, "appel du conseiller annulé"),
    # ours
    "no_destination": TransferResult(False, True, "aucun conseiller configuré"),
    "unknown": TransferResult(False, True, "résultat inconnu"),
}


def of(result: str) -> TransferResult:
    """What `result` means (an undocumented value: nobody took the call)."""
    return RESULTS.get(result) or RESULTS["unknown"]


def documented(result: str) -> bool:
    return result in RESULTS
