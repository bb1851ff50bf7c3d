"""What operators watch (issue 37): Prometheus metrics with `prometheus_client`, served at /metrics
to a bearer token (IVR_METRICS_TOKEN; none set, none served).

Under gunicorn every worker counts into files of PROMETHEUS_MULTIPROC_DIR (prometheus_client's
multiprocess mode, set up by gunicorn.conf.py), and a scrape of any worker sums them all. Figures
read at scrape time (the helpdesk outbox, the journal, the version in service) come from the
database and the disk, not from the counters. Names and labels as Prometheus' conventions say:
`_seconds`, `_total`, low-cardinality labels; never a CallSid nor a phone number.
https://prometheus.github.io/client_python/multiprocess/"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

# Twilio waits 15 s for a webhook; the buckets say how far from it each route is.
WEBHOOK_SECONDS = Histogram("ivr_webhook_duration_seconds", "Time to answer one Twilio webhook, by route and backend",
                            ["route", "backend"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15))
WEBHOOKS = Counter("ivr_webhooks", "Twilio webhooks answered, by route and HTTP status", ["route", "status"])
CALLS_STARTED = Counter("ivr_calls_started", "Calls that reached the IVR")
CALLS_ENDED = Counter("ivr_calls_ended", "Calls ended (Twilio's final status), by outcome and the step of the guide it came at",
                      ["outcome", "step"])
FALLBACKS = Counter("ivr_fallbacks", "Calls put through to an agent by the fallback, without the flow: twilio (Twilio's fallback "
                    "URL), error (our code failed), store (the session store did not answer)", ["cause"])
TRANSFERS = Counter("ivr_transfers", "Transfers ended, by Twilio's result (completed, no-answer, redirected…)", ["result"])
QUEUE_ASKED = Counter("ivr_queue_questions_asked", "Questions asked while the caller waits in the queue")
QUEUE_ANSWERED = Counter("ivr_queue_questions_answered", "Questions answered while the caller waits in the queue")
SMS = Counter("ivr_sms", "SMS asked for, by kind (guide: a guide the caller asked for; rating: the rating asked once an agent "
              "took the call) and by what became of them (sent, failed, not_mobile…)", ["kind", "status"])
RELOADS = Counter("ivr_reloads", "Edits of the flow or prompts read by a worker, accepted or refused (each worker counts its own)",
                  ["result"])
FILES_REFUSED = Gauge("ivr_files_refused", "1 while the files on disk are refused (an edit with errors): the last good version serves",
                      multiprocess_mode="livemax")
ARMS = Counter("ivr_experiment_arms_served", "Calls that heard an arm of a sentence experiment", ["prompt", "arm"])
STORE_ERRORS = Counter("ivr_store_errors", "Errors of the session store (sessions) and of the database (database: a write "
                       "kept in the journal for later)", ["store"])

# Known label values start at 0, so that a rate or an alert has a series before the first event.
for _store in ("sessions", "database"):
    STORE_ERRORS.labels(_store)
for _cause in ("twilio", "error", "store"):
    FALLBACKS.labels(_cause)
for _result in ("accepted", "refused"):
    RELOADS.labels(_result)
for _kind in ("guide", "rating"):
    for _status in ("sent", "failed"):
        SMS.labels(_kind, _status)


def sms_kind(key: str) -> str:
    """The kind of an SMS by its sentence: the rating request, or a guide."""
    return "rating" if key.startswith("satisfaction.") else "guide"

_OUTCOMES = {"solved", "service", "transferred", "hung_up", "callback", "voicemail", "closed", "unanswered", "fallback"}
_STEPS = {"1", "2", "3", "4", "5", "6"}


def ended(outcome: str | None, step: int | None) -> None:
    """A call's end, with labels from a known, small set: a call that ends without an outcome was
    left by its caller mid-way (« hung_up »); « unknown »: its session could not be read."""
    outcome = outcome or "hung_up"
    CALLS_ENDED.labels(outcome if outcome in _OUTCOMES | {"unknown"} else "other", str(step) if str(step) in _STEPS else "").inc()


class Scraped:
    """The figures read when Prometheus scrapes: the outbox and the journal, the version in service.
    `read()` returns them as (name, help, labels, value) rows."""

    def __init__(self, read: Callable[[], Iterable[tuple[str, str, dict, float]]]):
        self.read = read

    def collect(self):
        families: dict[str, GaugeMetricFamily] = {}
        for name, text, labels, value in self.read():
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(name, text, labels=sorted(labels))
            family.add_metric([labels[key] for key in sorted(labels)], value)
        return list(families.values())


def exposition(scraped: Scraped, accept: str | None = None) -> tuple[bytes, str]:
    """The text Prometheus reads, in the format its Accept header asks for (OpenMetrics for
    Prometheus itself): every worker's counters (multiprocess mode) or this process's, and the
    figures read now, in one document."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_Process())
    registry.register(scraped)
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class _Process:
    """This process's own metrics (without gunicorn: one process counts everything)."""

    def collect(self):
        from prometheus_client import REGISTRY

        return REGISTRY.collect()
