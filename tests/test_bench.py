"""The benchmarks' own plumbing: what they count must be the webhooks working, not an error path."""

from __future__ import annotations


def test_the_load_generators_body_is_urlencodes():
    """bench/load.py encodes its webhooks its own cheaper way: the same bytes as urlencode, for
    Twilio's fields and awkward ones."""
    from urllib.parse import urlencode

    from bench.load import TOKEN, form_body
    from ivr.supervisor.simulator import Caller

    caller = Caller(None, "http://localhost", TOKEN)
    for params in (caller.params(Digits="1", FinishedOnKey="", msg="Gather End"),
                   caller.params(SpeechResult="oui, c'est fait & 100 % à jour", Confidence="0.91"),
                   {"é=&+": " \n%", "": ""}):
        assert form_body(params) == urlencode(params).encode()


def test_the_ratio_round_by_round_pairs_each_round_of_the_ceiling_with_the_same_round_of_ours():
    """A round where the machine was slow for both apps gives the same ratio as a quiet one; the
    ratio of the medians mixes rounds, and this is what shows by how much."""
    from bench.load import round_ratios

    ceiling = [0.87e-3, 0.79e-3, 1.02e-3, 1.10e-3, 0.72e-3]
    ours = [1.62e-3, 1.39e-3, 2.06e-3, 1.19e-3, 1.35e-3]
    assert [round(r, 2) for r in round_ratios(ceiling, ours)] == [0.54, 0.57, 0.50, 0.92, 0.53]
    assert round_ratios([2.0, 1.0], [4.0, 2.0]) == [0.5, 0.5]


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


def test_the_speech_benchmark_plays_each_path_to_the_agent(capsys):
    """bench/speech.py: every path it measures reaches the agent, and the seconds are printed."""
    from bench import speech

    speech.main([])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("path") and len(lines) == 1 + 2 * len(speech.PATHS)  # with SMS configured, and without
    assert all(line.rstrip().endswith(" s") for line in lines[1:])
