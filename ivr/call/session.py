"""What the engine works on: the state of one call, the caller's events, the conditions the web
layer knows (opening hours), and the actions the engine asks for. Plain frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace


# ---- what the shell tells the engine ------------------------------------------------------------
@dataclass(frozen=True)
class Keys:
    """The caller pressed keys at a question."""

    node: str
    phase: str
    digits: str
    at: float


@dataclass(frozen=True)
class Recorded:
    """The caller left a voice message (`hung_up`: the recording ended because they hung up)."""

    node: str
    phase: str
    url: str
    duration: int
    at: float
    hung_up: bool = False


@dataclass(frozen=True)
class Spoken:
    """The caller answered by voice: Twilio's transcript and its confidence (0 to 1)."""

    node: str
    phase: str
    text: str
    confidence: float
    at: float


@dataclass(frozen=True)
class GuideRequested:
    """The caller pressed a node's guide key; the shell tried to send the SMS: `status` says how it went."""

    node: str
    phase: str
    guide: str
    status: str  # "sent", "sending" (still on its way when the caller had to be answered), "already", "not_mobile", "unavailable", "failed"
    at: float


@dataclass(frozen=True)
class NoInput:
    """A question timed out with nothing pressed."""

    node: str
    phase: str
    at: float


@dataclass(frozen=True)
class PageAction:
    """A button of the visual guide, pressed on the caller's phone at question `node` (phase `phase`):
    "fait", "resolu", "echec" or "conseiller"."""

    node: str
    phase: str
    action: str
    at: float


Event = Keys | Recorded | Spoken | GuideRequested | NoInput | PageAction


@dataclass(frozen=True)
class Conditions:
    """What the web layer knows that the flow does not: whether agents answer now, and if not, when
    they do again (as said on the phone)."""

    service_open: bool = True
    reopening: str = ""
    agents: bool = True  # a destination (queue, number…) is configured to put callers through to
    incident: tuple[int, str] | None = None  # (id, text) of the announcement new calls hear
    queue: bool = False  # a transfer goes to a queue (TaskRouter), where questions can be asked while the caller waits
    sms: bool = True  # SMS can be sent (configured): the guides by SMS are offered
    experiments: tuple[Experiment, ...] = ()  # sentence experiments running: new calls get an arm of each


@dataclass(frozen=True)
class Experiment:
    """A sentence tried in two wordings: `share` % of new calls hear `text_b` instead of the usual one."""

    id: int
    key: str
    text_b: str
    share: int


OPEN = Conditions()


# ---- what the engine tells the shell to do ------------------------------------------------------
@dataclass(frozen=True)
class Say:
    """Speak the prompt `key`, with placeholders filled from `params` (name, value) pairs."""

    key: str
    params: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def filled(key: str, **params: str) -> Say:
        return Say(key, tuple(sorted(params.items())))


@dataclass(frozen=True)
class Ask:
    """Speak `says` while listening for keys; answers come back tagged with node and phase."""

    node: str
    phase: str
    says: tuple[Say, ...]
    timeout: int
    num_digits: int | None = 1
    finish_on_key: str = ""
    pause: int = 0  # seconds of quiet, still listening, after the sentences
    hints: tuple[str, ...] = ()  # words the caller may say instead of pressing a key (speech on)


@dataclass(frozen=True)
class Listen:
    """Speak `says`, then record a voice message of at most `max_length` seconds."""

    node: str
    says: tuple[Say, ...]
    max_length: int


@dataclass(frozen=True)
class Hangup:
    """Speak `says`, then end the call."""

    says: tuple[Say, ...] = ()


@dataclass(frozen=True)
class Transfer:
    """Speak `says`, then put the caller through to an agent with the context."""

    reason: str
    says: tuple[Say, ...] = ()


Action = Ask | Listen | Hangup | Transfer


# ---- the state of one call ----------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    """Everything we know about one call, kept in the store between webhooks."""

    call_sid: str
    caller: str
    started_at: float
    flow_version: str
    node: str = ""
    phase: str = "ask"  # "ask" a question, "confirm" a number read back, "speech" a word read back, "more" keys to add
    step: int | None = None  # step of the guide the caller is at
    entered_at: float = 0.0
    failures: int = 0  # silences and wrong keys at the current question
    pending: str | None = None  # number keyed in (or key heard), waiting for the caller's confirmation
    answers: Mapping[str, str] = field(default_factory=dict)
    history: tuple[Mapping, ...] = ()  # what happened, oldest first; the engine only appends
    outcome: str | None = None
    outcome_step: int | None = None
    transfer_reason: str | None = None
    incident: int | None = None  # the incident announced to this call
    arms: Mapping[str, str] = field(default_factory=dict)  # sentence → "A" or "B", for each experiment running when it started
    variants: Mapping[str, str] = field(default_factory=dict)  # sentence → the wording it hears instead (its "B" arms)
    rating: int | None = None  # 1 to 5, what the caller thought of the call
    inferred: tuple[str, ...] = ()  # fields answered by the flow's inferences, not by the caller
    devices: Mapping[str, Mapping] = field(default_factory=dict)  # what the caller's phone or computer sent of itself (devices.py)
    from_device: tuple[str, ...] = ()  # fields answered by what a device sent, not asked (« relevé sur l'appareil »)
    said: tuple[str, ...] = ()  # the flow's facts already told to this caller (« fermeture »…): each is said once
    queue_next: str | None = None  # the question to ask next while the caller waits in the queue
    queue_phase: str = "ask"
    queue_asked: bool = False  # that question was asked at the last turn of the wait (no answer came yet)
    page: str = ""  # a visual guide button pressed and not yet applied: "node|phase|action" (see visual.py)
    recorded: int = 0  # history entries already written to the call's events (by the shell)
    reply_token: str = ""  # Twilio's I-Twilio-Idempotency-Token of the last request answered (by the shell)
    reply: str = ""  # what that request was answered: the same again if Twilio retries it
    revision: int = 0  # the store's revision this session was loaded at (not part of the call logic)

    @property
    def ended(self) -> bool:
        return self.outcome is not None

    def evolve(self, **changes) -> Session:
        """A copy with `changes` (dataclasses.replace)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The session's fields (the store keeps the revision itself). Shallow: every value is
        already plain data, and dataclasses.asdict's deep copy of the whole history at every
        webhook cost more than the rest of the webhook's own work."""
        return {name: getattr(self, name) for name in _STORED_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping, revision: int = 0) -> Session:
        """The session `to_dict` gave (fields added since it was saved take their defaults; an
        unknown or missing field raises the dataclass's TypeError)."""
        values = dict(data)
        values["answers"] = dict(values.get("answers") or {})
        for name in ("arms", "variants", "devices"):
            values[name] = dict(values.get(name) or {})
        values["inferred"] = tuple(values.get("inferred") or ())
        values["said"] = tuple(values.get("said") or ())
        values["from_device"] = tuple(values.get("from_device") or ())
        values["history"] = tuple(values.get("history") or ())
        return cls(**values, revision=revision)



_STORED_FIELDS = tuple(f.name for f in fields(Session) if f.name != "revision")
