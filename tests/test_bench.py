"""The benchmarks' own plumbing: what they count must be the webhooks working, not an error path."""

from __future__ import annotations

import pytest

from bench.instructions import Count, _calls_prefix, by_library, lines, record, replay
from bench.wsgi_cost import app_config


@pytest.fixture(autouse=True)
def _environment_kept(monkeypatch):
    # app_config drops REDIS_URL and DATABASE_URL from the environment: restored after each test.
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)


def test_recorded_webhooks_replay_to_a_fresh_app_and_to_the_ceiling():
    from bench.ceiling import create_app as ceiling_app
    from ivr import create_app

    requests = record(3, "00")
    assert [url for url, *_ in requests].count("http://localhost/voice") == 3
    assert all("X-Twilio-Signature" in headers for *_, headers in requests)
    first_two = _calls_prefix(requests, 2)
    assert 0 < first_two < len(requests) and requests[first_two][0] == "http://localhost/voice"
    replay(create_app(app_config("sqlite")), requests)  # every webhook answered 200 by a fresh app
    replay(ceiling_app(), requests, evict=1 << 20)  # --cold reads through a buffer before each one


def test_a_replay_that_is_refused_stops_the_count():
    from ivr import create_app

    url, body, headers = record(1, "00")[0]
    with pytest.raises(RuntimeError, match="403"):
        replay(create_app(app_config("sqlite")), [(url, body, {"X-Twilio-Signature": "forged"})])


# A callgrind output file as valgrind 3.19 writes it: names compressed to "(n)" after their first
# use, positions relative ("+1"), trailing zero events left out, and after each "calls=" line the
# call's inclusive cost (already in the callee's own lines).
CALLGRIND = """\
version: 1
creator: callgrind-3.19.0
events: Ir ILmr DLmr DLmw

ob=(1) /usr/lib/libpython3.11.so.1.0
fl=(1) ceval.c
fn=(1) _PyEval_EvalFrameDefault
3 100 4 5 1
cob=(2) /usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6
cfi=(2) sqlite3.c
cfn=(2) sqlite3_step
calls=2 10
+2 50 3 7 2
+1 2

ob=(2)
fl=(2)
fn=(2)
10 50 3 7 2
summary: 152 7 12 3
totals: 152 7 12 3
"""


def test_the_cold_count_gives_each_library_its_own_cost_not_what_it_calls():
    libraries = by_library(CALLGRIND, ["Ir", "ILmr", "DLmr", "DLmw"])
    assert libraries == {
        "libpython3.11.so.1.0": {"Ir": 102, "ILmr": 4, "DLmr": 5, "DLmw": 1},
        "libsqlite3.so.0.8.6": {"Ir": 50, "ILmr": 3, "DLmr": 7, "DLmw": 2},
    }
    totals = {"Ir": 152, "ILmr": 7, "DLmr": 12, "DLmw": 3}
    assert {event: sum(own[event] for own in libraries.values()) for event in totals} == totals


def test_counts_per_webhook_are_the_longer_runs_less_the_shorters():
    shorter = Count(10, {"Ir": 1000, "ILmr": 10, "DLmr": 20, "DLmw": 0}, {"libc.so.6": {"Ir": 100, "DLmr": 20}})
    longer = Count(30, {"Ir": 5000, "ILmr": 50, "DLmr": 60, "DLmw": 20}, {"libc.so.6": {"Ir": 300, "DLmr": 40}})
    each = longer.per_webhook(shorter)
    assert each.webhooks == 20 and each.totals == {"Ir": 200, "ILmr": 2, "DLmr": 2, "DLmw": 1}
    assert lines(each.totals) == 5 and lines(each.libraries["libc.so.6"]) == 1


def test_the_load_generators_body_and_signature_are_urlencodes_and_twilios():
    """bench/load.py encodes and signs its webhooks its own cheaper way: the same bytes and the
    same signature as urlencode and twilio's validator, for Twilio's fields and awkward ones."""
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator

    from bench.load import TOKEN, LoadCaller, form_body

    caller = LoadCaller(None, "http://localhost", TOKEN)
    url = "http://localhost/voice/answer?node=etape1_a_jour&phase=ask"
    for params in (caller.params(Digits="1", FinishedOnKey="", msg="Gather End"),
                   caller.params(SpeechResult="oui, c'est fait & 100 % à jour", Confidence="0.91"),
                   {"é=&+": " \n%", "": ""}):
        assert form_body(params) == urlencode(params).encode()
        assert caller.headers(url, params)["X-Twilio-Signature"] == RequestValidator(TOKEN).compute_signature(url, params)


def test_the_ratio_round_by_round_pairs_each_round_of_the_ceiling_with_the_same_round_of_ours():
    """A round where the machine was slow for both apps gives the same ratio as a quiet one; the
    ratio of the medians mixes rounds, and this is what shows by how much."""
    from bench.load import round_ratios

    ceiling = [0.87e-3, 0.79e-3, 1.02e-3, 1.10e-3, 0.72e-3]
    ours = [1.62e-3, 1.39e-3, 2.06e-3, 1.19e-3, 1.35e-3]
    assert [round(r, 2) for r in round_ratios(ceiling, ours)] == [0.54, 0.57, 0.50, 0.92, 0.53]
    assert round_ratios([2.0, 1.0], [4.0, 2.0]) == [0.5, 0.5]


def test_the_cold_mode_writes_every_cache_line_before_each_webhook_outside_the_time_counted():
    from bench.ceiling import create_app as ceiling_app
    from bench.wsgi_cost import CacheEvictor, WsgiTransport, eviction_size, largest_cache

    evict = CacheEvictor(64 * 1024)
    evict()
    assert set(evict.buffer[::CacheEvictor.LINE]) == {2}
    evict()
    assert set(evict.buffer[::CacheEvictor.LINE]) == {1}  # each time a new value: every line written again
    assert largest_cache() >= 0 and eviction_size() >= max(64 << 20, 3 * largest_cache())

    calls = []
    transport = WsgiTransport(ceiling_app(), before=lambda: calls.append(len(transport.cpu)))
    for _ in range(3):
        assert transport.post("http://localhost/voice", {"CallSid": "CA1"}, {})[0] == 200
    assert calls == [0, 1, 2]  # before each webhook, and before its time is counted


def test_a_pinned_server_and_its_workers_keep_to_their_cores():
    import os

    from bench.load import Server

    core = max(os.sched_getaffinity(0))
    server = Server("bench.ceiling:create_app()", {}, workers=1, threads=1, cpus={core})
    try:
        for pid in [server.process.pid, *server.workers()]:
            assert os.sched_getaffinity(pid) == {core}
    finally:
        server.stop()
