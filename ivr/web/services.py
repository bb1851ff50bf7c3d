"""What the webhooks, the API and the console need, built once per process from the configuration."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flask import current_app
from twilio.request_validator import RequestValidator

from ..call import hours as hours_module
from ..call.handoff import Destinations
from ..call.hours import PARIS
from ..call.library import Bundle, FlowLibrary
from ..call.session import Conditions, Experiment
from ..call.twiml import Cache, Speech
from ..delivery.outbox import Deliverer, Outbox
from ..delivery.sms import Guides, recording_deleter
from ..delivery.twilio_rest import CallMover
from ..storage.callbacks import Callbacks
from ..storage.db import Database, connect, private_folder
from ..storage.devices import Devices
from ..storage.experiments import Experiments
from ..storage.incidents import Incidents
from ..storage.kept_files import KeptFiles
from ..storage.overrides import PromptOverrides
from ..storage.records import CallRecords
from ..storage.retention import Housekeeper
from ..storage.sessions import RedisSessionStore, SessionStore, SqlSessionStore
from ..storage.set_aside import SetAside
from ..storage.spool import Spool
from ..storage.users import Users
from ..storage.versions import VersionArchive

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


class ConfigurationError(RuntimeError):
    """The server cannot start with this configuration; the message says what to change."""


@dataclass
class Services:
    """The IVR's parts for one process."""

    db: Database
    library: FlowLibrary
    voice: str
    language: str
    store: SessionStore
    records: CallRecords
    destinations: Destinations
    validator: RequestValidator | None
    public_base: str
    users: Users
    overrides: PromptOverrides
    callbacks: Callbacks
    guides: Guides
    spool: Spool
    set_aside: SetAside
    devices: Devices
    mover: CallMover | None = None  # moves a live call when the caller presses a button of the visual guide
    outbox: Outbox | None = None
    deliverer: Deliverer | None = None
    twiml_cache: Cache = field(default_factory=Cache)
    hours_file: hours_module.HoursFile | None = None  # None: agents always answer (IVR_ALWAYS_OPEN, or IVR_HOURS empty)
    retention_days: int = 90  # how long calls are kept: said to callers ({jours})
    background: list = field(default_factory=list)  # this process's threads (retention, spool replay): stopped by `stop()`
    incidents: Incidents | None = None
    experiments: Experiments | None = None
    evidence_interval: float = 2.0  # seconds an incident or experiment read from the database is used before reading again
    _evidence: list = field(default_factory=lambda: [float("-inf"), None, ()], repr=False)  # [read at, incident, experiments]
    clock: Callable[[], float] = time.time  # seconds since the epoch; tests give a fixed clock
    computer_address: str = ""  # the computer page's address as callers hear it (« aide.exemple.fr/o »); "": not offered
    watched: bool = False  # a Watcher reads the announcements every evidence_interval: calls never do

    def bundle(self, version: str | None = None) -> Bundle:
        """The flow and prompts of `version` (a call in progress), or the current ones."""
        return self.library.get(version) if version else self.library.current()

    def speech(self, bundle: Bundle | None = None, variants: Mapping[str, str] | None = None) -> Speech:
        """How to speak the sentences of `bundle` (default: the version in service), with a call's
        experiment `variants` worded as they are for it."""
        prompts = (bundle or self.library.current_bundle).prompts.with_texts(variants or {})
        return Speech(prompts, self.voice, self.language, (("jours", str(self.retention_days)),))

    def conditions(self, now: float) -> Conditions:
        """Whether agents answer at `now`, and when they do again if not (for the engine)."""
        moment = datetime.fromtimestamp(now, PARIS)
        incident, experiments = self.announcements(now)
        sms = self.guides.client is not None
        if self.hours.is_open(moment):
            return Conditions(agents=self.destinations.configured, incident=incident, experiments=experiments,
                              queue=bool(self.destinations.workflow_sid), sms=sms)
        return Conditions(service_open=False, reopening=self.hours.spoken_opening(moment), agents=self.destinations.configured,
                          incident=incident, experiments=experiments, queue=bool(self.destinations.workflow_sid), sms=sms)

    @property
    def hours(self) -> hours_module.Hours:
        """The opening hours in service (the last good ones if an edit was refused)."""
        return self.hours_file.current() if self.hours_file is not None else hours_module.ALWAYS_OPEN

    def announcements(self, now: float) -> tuple[tuple[int, str] | None, tuple[Experiment, ...]]:
        """The incident announced and the experiments running, read at most every
        `evidence_interval` seconds (every server sees a change within it); with the database
        down, the last ones read."""
        read_at, incident, experiments = self._evidence
        if not self.watched and time.monotonic() - read_at >= self.evidence_interval:
            incident, experiments = self.read_announcements(now)
        if incident is not None and incident[2] is not None and incident[2] <= now:
            incident = None  # it ended by itself at its « until »
        return (incident[:2] if incident else None), experiments

    def read_announcements(self, now: float) -> tuple:
        """Read the incident and the experiments from the database now (the last ones read if it
        does not answer)."""
        _, incident, experiments = self._evidence
        if self.incidents is not None:
            try:
                row = self.incidents.current(now)
                incident = (row["id"], row["text"], row["until_at"]) if row else None
                experiments = tuple(Experiment(r["id"], r["key"], r["text_b"], r["share"]) for r in self.experiments.running())
            except Exception:  # the calls go on without: an announcement is not worth a failed call
                log.warning("incidents and experiments unreadable (database): the last ones read are used")
        self._evidence = [time.monotonic(), incident, experiments]
        return incident, experiments

    def stop(self) -> None:
        """Stop this process's background threads (tests build hundreds of apps in one process)."""
        threads = [*self.background, *([self.deliverer] if self.deliverer else [])]
        for thread in threads:
            thread.stop() if hasattr(thread, "stop") else thread.stopped.set()
        for thread in threads:  # a round under way ends before the caller closes what it uses (the database)
            if thread.is_alive():
                thread.join(timeout=10)
        if hasattr(self.store, "close"):  # the Redis store's probe, if one is waiting for Redis
            self.store.close()
        self.guides.close()

    def nudge_spool(self) -> None:
        """Apply the journal now rather than at the next round (a fact was appended)."""
        for thread in self.background:
            if hasattr(thread, "nudge"):
                thread.nudge()

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until what this process appended to the journal has been applied (or waits for the
        database): for tests and tools that read the records right after a webhook."""
        for thread in self.background:
            if hasattr(thread, "settle"):
                thread.settle(timeout)

    def database_answers(self) -> bool:
        """Whether the database answers now (a write it refuses then is refused for what it holds)."""
        try:
            self.db.one("SELECT 1 AS ok")
            return True
        except Exception:
            return False

    def nudge_outbox(self) -> None:
        """Deliver a new document now rather than at the next poll."""
        if self.deliverer is not None:
            self.deliverer.nudge()


class Watcher(threading.Thread):
    """Every `interval` seconds, what the database and the files may have changed for new calls (the
    console's sentence changes, an edit of the flow or prompts, the incident announced, the
    experiments running) is read by this thread: no call waits for the database or a reload."""

    def __init__(self, ivr: Services, interval: float):
        super().__init__(name="ivr-watcher", daemon=True)
        self.ivr, self.interval = ivr, interval
        self.stopped = threading.Event()

    def start(self) -> None:
        self.ivr.read_announcements(self.ivr.clock())  # before the first call
        super().start()
        self.ivr.library.watched = self.ivr.watched = True
        if self.ivr.hours_file is not None:
            self.ivr.hours_file.watched = True

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.ivr.library.check()
                if self.ivr.hours_file is not None:
                    self.ivr.hours_file.check()
                self.ivr.read_announcements(self.ivr.clock())
            except Exception:  # looked at again at the next round
                log.exception("the watch for edits and announcements failed")


def services() -> Services:
    """The current app's IVR services, built by create_app."""
    return current_app.extensions["ivr"]


def build(config: Mapping) -> Services:
    """Every part, from the app's configuration (environment variables, overridden in tests)."""
    token = config["TWILIO_AUTH_TOKEN"]
    data_dir = private_folder(resolve(config["IVR_DATA_DIR"], must_exist=False))
    db = connect(config["DATABASE_URL"], data_dir, float(config["IVR_DB_TIMEOUT"]))
    overrides = PromptOverrides(db)
    library = FlowLibrary(resolve(config["IVR_FLOW"]), resolve(config["IVR_PROMPTS"]), config["IVR_LANGUAGE"],
                          interval=float(config["IVR_RELOAD_INTERVAL"]), overrides=overrides, archive=VersionArchive(db))
    destinations = Destinations(config["TWILIO_WORKFLOW_SID"], config["AGENT_NUMBER"], config["AGENT_SIP_URI"], config["AGENT_CLIENT"])
    if not destinations.configured:
        log.warning("no TWILIO_WORKFLOW_SID, AGENT_NUMBER, AGENT_SIP_URI or AGENT_CLIENT: callers who need an agent will hear none is available")
    always_open = config["IVR_ALWAYS_OPEN"] not in ("", "0", "false", "no")
    hours_file = None
    if config["IVR_HOURS"] and not always_open:
        try:
            hours_file = hours_module.HoursFile(resolve(config["IVR_HOURS"]), float(config["IVR_RELOAD_INTERVAL"]), KeptFiles(db))
        except hours_module.HoursError as error:
            raise ConfigurationError("les horaires sont refusés (IVR_HOURS) et aucun horaire n'a encore été accepté sur ce serveur :\n"
                                     + "\n".join(str(p) for p in error.problems)
                                     + "\nCorrigez le fichier (ivr validate le vérifie), "
                                     "ou IVR_ALWAYS_OPEN=1 pour un service toujours ouvert.") from None
    outbox = deliverer = None
    if config["HANDOFF_WEBHOOK_URL"]:
        if not config["IVR_WEBHOOK_SECRET"]:
            raise ConfigurationError("HANDOFF_WEBHOOK_URL est donné mais pas IVR_WEBHOOK_SECRET : le helpdesk ne pourrait pas vérifier nos envois.")
        outbox = Outbox(db, config["HANDOFF_WEBHOOK_URL"], config["IVR_WEBHOOK_SECRET"], timeout=float(config["IVR_HTTP_TIMEOUT"]))
        if config["IVR_OUTBOX_THREAD"] not in ("0", "false", "no", ""):
            deliverer = Deliverer(outbox)
            deliverer.start()
    retention = str(config["IVR_RETENTION_DAYS"]).strip()
    if not (retention.isascii() and retention.isdigit() and 1 <= int(retention) <= 3650):
        raise ConfigurationError(f"IVR_RETENTION_DAYS doit être un nombre de jours, de 1 à 3650 (trouvé : {retention!r}) : "
                                 "c'est la durée de conservation annoncée aux appelants")
    housekeeper = Housekeeper(db, float(retention), recording_deleter(config["TWILIO_ACCOUNT_SID"], token, float(config["IVR_HTTP_TIMEOUT"])))
    housekeeper.start()
    ttl = int(config["IVR_SESSION_TTL"])
    if config["REDIS_URL"]:
        store = RedisSessionStore(config["REDIS_URL"], ttl, config["IVR_REDIS_PREFIX"], float(config["IVR_REDIS_TIMEOUT"]))
    else:
        store = SqlSessionStore(db, ttl)
    return Services(
        db=db,
        library=library,
        voice=config["IVR_VOICE"],
        language=config["IVR_LANGUAGE"],
        store=store,
        records=CallRecords(db),
        destinations=destinations,
        validator=RequestValidator(token) if token else None,
        public_base=config["IVR_PUBLIC_URL"].rstrip("/"),
        users=Users(db),
        overrides=overrides,
        callbacks=Callbacks(db),
        guides=Guides(db, config["TWILIO_ACCOUNT_SID"], token, config["IVR_SMS_FROM"], float(config["IVR_HTTP_TIMEOUT"])),
        spool=Spool(data_dir / "spool.jsonl"),
        set_aside=SetAside(db),
        devices=Devices(db),
        computer_address=computer_address(config),
        mover=CallMover(config["TWILIO_ACCOUNT_SID"], token, float(config["IVR_HTTP_TIMEOUT"])),
        outbox=outbox,
        deliverer=deliverer,
        hours_file=hours_file,
        retention_days=int(retention),
        background=[housekeeper],
        incidents=Incidents(db),
        experiments=Experiments(db),
        evidence_interval=float(config["IVR_RELOAD_INTERVAL"]),
        clock=config.get("IVR_CLOCK") or time.time,
    )


def backend_name(config: Mapping) -> str:
    """The backend as the metrics label it: « sqlite », « redis+postgres » (sessions + database)."""
    sessions = "redis" if config.get("REDIS_URL") else "sqlite"
    database = "postgres" if config.get("DATABASE_URL") else "sqlite"
    return "sqlite" if sessions == database == "sqlite" else f"{sessions}+{database}"


def scraped_figures(ivr: Services):
    """The figures Prometheus reads at each scrape (ivr/metrics.py): the flow version in service, the
    journal of writes waiting for the database, and from the database the helpdesk outbox and the
    writes set aside; `ivr_database_up` 0 when it does not answer (those figures are then missing)."""
    now = ivr.clock()
    yield ("ivr_flow_version_info", "The flow and prompts version this worker serves", {"version": ivr.library.current_bundle.version}, 1)
    try:
        spooled = len(ivr.spool)
    except OSError:
        spooled = 0
    yield ("ivr_spool_facts", "Facts of calls in the journal, waiting for the database", {}, spooled)
    try:
        pending, oldest, abandoned = ivr.outbox.backlog() if ivr.outbox is not None else (0, None, 0)
        aside = ivr.set_aside.count()
    except Exception:  # noqa: BLE001 - the database does not answer: said by ivr_database_up
        yield ("ivr_database_up", "1 when the database answered this scrape", {}, 0)
        return
    yield ("ivr_database_up", "1 when the database answered this scrape", {}, 1)
    yield ("ivr_outbox_pending", "Helpdesk documents not delivered yet", {}, pending)
    yield ("ivr_outbox_oldest_age_seconds", "Age of the oldest helpdesk document not delivered yet (0: none)", {},
           max(0.0, now - oldest) if oldest is not None else 0)
    yield ("ivr_outbox_abandoned", "Helpdesk documents abandoned after their last try (until the purge)", {}, abandoned)
    yield ("ivr_set_aside_facts", "Facts that could not be applied, set aside (ivr journal)", {}, aside)


def computer_address(config: Mapping) -> str:
    """The computer page's address said to callers: IVR_COMPUTER_ADDRESS (a short address of the
    operator's that leads to our /code), else our public address's host and /code; none without either
    (the page could not be reached from the caller's computer)."""
    given = (config.get("IVR_COMPUTER_ADDRESS") or "").strip()
    if given:
        return given.removeprefix("https://").removeprefix("http://").rstrip("/")
    public = (config.get("IVR_PUBLIC_URL") or "").strip().rstrip("/")
    if not public:
        return ""
    return public.removeprefix("https://").removeprefix("http://") + "/code"


def resolve(value: str, must_exist: bool = True) -> Path:
    """A configured path: as given if absolute or present here, else beside the project's files."""
    path = Path(value)
    if path.is_absolute() or path.exists() or not must_exist:
        return path
    candidate = PROJECT_ROOT / path
    return candidate if candidate.exists() else path
