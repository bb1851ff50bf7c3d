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
import time
from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
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
SMS = Counter("ivr_sms", "Guides asked for by SMS, by what became of them (sent, failed, not_mobile…)", ["status"])
RELOADS = Counter("ivr_reloads", "Edits of the flow or prompts read by a worker, accepted or refused (each worker counts its own)",
                  ["result"])
FILES_REFUSED = Gauge("ivr_files_refused", "1 while the files on disk are refused (an edit with errors): the last good version serves",
                      multiprocess_mode="livemax")
ARMS = Counter("ivr_experiment_arms_served", "Calls that heard an arm of a sentence experiment", ["prompt", "arm"])
STORE_ERRORS = Counter("ivr_store_errors", "Errors of the session store (sessions) and of the database (database: a write "
                       "kept in the journal for later)", ["store"])

_OUTCOMES = {"solved", "service", "transferred", "hung_up", "callback", "voicemail", "closed", "unanswered", "fallback"}
_STEPS = {"1", "2", "3", "4", "5", "6"}


def ended(outcome: str | None, step: int | None) -> None:
    """A call's end, with labels from a known, small set."""
    CALLS_ENDED.labels(outcome if outcome in _OUTCOMES else "other" if outcome else "unknown",
                       str(step) if str(step) in _STEPS else "").inc()


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


def exposition(scraped: Scraped) -> tuple[bytes, str]:
    """The text Prometheus reads: every worker's counters (multiprocess mode) or this process's, and
    the figures read now."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    extra = CollectorRegistry()
    extra.register(scraped)
    return generate_latest(registry) + generate_latest(extra), CONTENT_TYPE_LATEST


class Timer:
    """Seconds since it was made (for a webhook's duration)."""

    def __init__(self):
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start
