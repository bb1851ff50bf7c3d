"""Instructions per webhook of our WSGI app against bench/ceiling.py, counted by valgrind: the same
figure on every run, whatever else the machine is doing.

Timings on this shared machine move by ±5 % from one run to the next, more than most single
changes; valgrind's callgrind counts the instructions the process executes, which only the code and
its inputs change. What it does not see: time in the kernel (system calls, the network to Redis and
PostgreSQL), waits, cache misses. Use it to judge a change to our code, and bench/load.py for what
a server does.

    python bench/instructions.py                           # SQLite
    python bench/instructions.py --backend redis+postgres

Each count is the difference between two runs of one process under callgrind (--calls and twice as
many), so start-up, imports and the first connections cancel out. The webhooks are recorded once
from simulated callers playing bench/calls.py, then replayed as WSGI environs to a fresh app; the
ceiling gets the same requests. About a minute (four processes under valgrind, two at a time).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.calls import SCRIPTS  # noqa: E402
from bench.wsgi_cost import TOKEN, WsgiTransport, app_config, call_wsgi, wsgi_environ  # noqa: E402


class Recorder(WsgiTransport):
    """A transport that keeps each signed request and forwards it to an app."""

    def __init__(self, app):
        super().__init__(app)
        self.requests: list[tuple[str, bytes, dict]] = []

    def post(self, url: str, params: dict, headers: dict) -> tuple[int, str]:
        self.requests.append((url, urlencode(params).encode(), headers))
        return super().post(url, params, headers)


def record(calls: int, prefix: str) -> list[tuple[str, bytes, dict]]:
    """The webhooks of `calls` whole calls, played against a throwaway app (embedded SQLite)."""
    from ivr import create_app
    from ivr.simulator import Caller

    recorder = Recorder(create_app(app_config("sqlite")))
    for number in range(calls):
        Caller(recorder, "http://localhost", TOKEN, call_sid=f"CA{prefix}{number:030x}").call(list(SCRIPTS[number % len(SCRIPTS)]))
    return recorder.requests


def replay(app, requests: list[tuple[str, bytes, dict]]) -> None:
    """Each request to `app`, as gunicorn would pass it; any answer but 200 stops the count (it
    would be counting an error path)."""
    for url, body, headers in requests:
        environ = wsgi_environ(url, body, headers)
        environ["wsgi.errors"] = io.StringIO()
        status, _ = call_wsgi(app, environ)
        if status != 200:
            raise RuntimeError(f"{url} answered {status} on replay")


def child(target: str, backend: str, calls: int, most: int) -> None:
    """One process under valgrind: record `most` calls, warm the app up, replay `calls` of them."""
    import logging

    logging.basicConfig(level=logging.INFO, stream=io.StringIO())  # logged as in production, shown nowhere
    warm_up, requests = record(8, "ff"), record(most, "00")
    wanted = _calls_prefix(requests, calls)
    if target == "ceiling":
        from bench.ceiling import create_app as ceiling_app

        app = ceiling_app()
    else:
        from ivr import create_app

        app = create_app(app_config(backend))
    replay(app, warm_up)
    replay(app, requests[:wanted])
    print(wanted)


def _calls_prefix(requests: list, calls: int) -> int:
    """How many of the recorded requests make up the first `calls` calls."""
    starts = [index for index, (url, *_) in enumerate(requests) if url.endswith("/voice")]
    return starts[calls] if calls < len(starts) else len(requests)


def count(target: str, backend: str, calls: int, most: int, work: Path) -> tuple[int, int]:
    """Instructions of the whole process and the webhooks it replayed."""
    out = work / f"{target}-{calls}.out"
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
               "--child", target, "--backend", backend, "--calls", str(calls), "--most", str(most)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    totals = next(line for line in out.read_text().splitlines() if line.startswith(("summary:", "totals:")))
    return int(totals.split()[1]), int(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "redis+postgres"])
    parser.add_argument("--calls", type=int, default=24, help="calls in the shorter run; the longer one plays twice as many")
    parser.add_argument("--child", choices=["ours", "ceiling"], help=argparse.SUPPRESS)
    parser.add_argument("--most", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.backend, args.calls, args.most)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install -y valgrind): it counts the instructions")

    most = 2 * args.calls
    with tempfile.TemporaryDirectory() as work, ThreadPoolExecutor(2) as pool:
        jobs = {(target, calls): pool.submit(count, target, args.backend, calls, most, Path(work))
                for target in ("ours", "ceiling") for calls in (args.calls, most)}
        per_webhook = {}
        for target in ("ours", "ceiling"):
            (short, short_hooks), (long, long_hooks) = jobs[target, args.calls].result(), jobs[target, most].result()
            per_webhook[target] = (long - short) / (long_hooks - short_hooks)
    ours, ceiling = per_webhook["ours"], per_webhook["ceiling"]
    print(f"instructions per webhook, in-process, {args.backend} ({most - args.calls} calls, {long_hooks - short_hooks} webhooks counted):")
    print(f"  ours     {ours:10,.0f}")
    print(f"  ceiling  {ceiling:10,.0f}  (the same requests to a fixed TwiML document)")
    print(f"  ratio ceiling/ours {ceiling / ours:.2f} (user-space only: no kernel, no waits, no cache misses)")


if __name__ == "__main__":
    main()
