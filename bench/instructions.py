"""Instructions per webhook of our WSGI app against bench/ceiling.py, counted by valgrind: the same
figure on every run, whatever else the machine is doing.

Timings on this shared machine move by ±5 % from one run to the next, more than most single
changes; valgrind's callgrind counts the instructions the process executes, which only the code and
its inputs change. What it does not see: time in the kernel (system calls, the network to Redis and
PostgreSQL), waits, the pages SQLite reads again when the other worker wrote (the replay is one
process: docs/capacite.md), and, unless --cold, cache misses. Use it to judge a change to our
code, and bench/load.py for what a server does.

    python bench/instructions.py                           # SQLite
    python bench/instructions.py --backend redis+postgres
    python bench/instructions.py --cold                    # also the cache lines each webhook fetches from memory

With --cold, valgrind also simulates the CPU's caches (32 KiB L1 for code and for data, a 4 MiB
last-level cache) and the replay reads a byte of each line of three times that cache before each
webhook, the reading not counted (valgrind's --toggle-collect on memoryview.tobytes, which our
webhooks never call; reading with zlib.crc32, which lets go of the GIL, moved the counts by 5 %
from run to run): each webhook starts with cold caches, as under gunicorn where the other
processes run in between (bench/wsgi_cost.py --cold measures the same thing in seconds). It then
prints, for each app, the lines of 64 bytes that each webhook misses in the last-level cache, that
is fetches from memory: code, data read, data written; and for ours above the ceiling, the
libraries they are missed in. On this machine a webhook's cold time is about 0.4 ns an
instruction plus 40 to 80 ns a line, the latter as busy as the machine's memory is that day
(docs/capacite.md): the lines decide the ratio. Two runs of the same code agree to 0.5 %; a change
to the code also moves where the garbage collector runs, so differences under 1 to 2 % between
two versions are noise.

Each count is the difference between two runs of one process under callgrind (--calls and twice as
many), so start-up, imports and the first connections cancel out. The webhooks are recorded once
from simulated callers playing bench/calls.py, then replayed as WSGI environs to a fresh app; the
ceiling gets the same requests. About a minute (four processes under valgrind, two at a time);
with --cold several times longer (--calls 8: five minutes).
"""

from __future__ import annotations

import argparse
import compileall
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.calls import SCRIPTS  # noqa: E402
from bench.wsgi_cost import TOKEN, CacheEvictor, WsgiTransport, app_config, call_wsgi, wsgi_environ  # noqa: E402


class Recorder(WsgiTransport):
    """A transport that keeps each signed request and forwards it to an app."""

    def __init__(self, app):
        super().__init__(app)
        self.requests: list[tuple[str, bytes, dict]] = []

    def post(self, url: str, params: dict, headers: dict) -> tuple[int, str]:
        self.requests.append((url, urlencode(params).encode(), headers))
        return super().post(url, params, headers)


def counted_config(backend: str) -> dict:
    """The benchmark's settings, with no look for edited flows or prompts while counting: it runs
    every 2 s, that is once in a thousand webhooks under load, but every few webhooks under
    valgrind and more often the slower the machine is that day."""
    return {**app_config(backend), "IVR_RELOAD_INTERVAL": "3600"}


def record(calls: int, prefix: str) -> list[tuple[str, bytes, dict]]:
    """The webhooks of `calls` whole calls, played against a throwaway app (embedded SQLite)."""
    from ivr import create_app
    from ivr.simulator import Caller

    recorder = Recorder(create_app(counted_config("sqlite")))
    for number in range(calls):
        Caller(recorder, "http://localhost", TOKEN, call_sid=f"CA{prefix}{number:030x}").call(list(SCRIPTS[number % len(SCRIPTS)]))
    return recorder.requests


def replay(app, requests: list[tuple[str, bytes, dict]], evict: int = 0) -> None:
    """Each request to `app`, as gunicorn would pass it; any answer but 200 stops the count (it
    would be counting an error path). With `evict`, a byte of each cache line of a buffer that
    many bytes long is read before each request (memoryview.tobytes: not counted under --cold), to
    push the webhook before out of the caches."""
    one_a_line = memoryview(bytes(evict))[::CacheEvictor.LINE]
    for url, body, headers in requests:
        environ = wsgi_environ(url, body, headers)
        environ["wsgi.errors"] = io.StringIO()
        if evict:
            one_a_line.tobytes()
        status, _ = call_wsgi(app, environ)
        if status != 200:
            raise RuntimeError(f"{url} answered {status} on replay")


def child(target: str, backend: str, calls: int, most: int, evict: int) -> None:
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

        app = create_app(counted_config(backend))
    replay(app, warm_up)
    replay(app, requests[:wanted], evict)
    print(wanted)


def _calls_prefix(requests: list, calls: int) -> int:
    """How many of the recorded requests make up the first `calls` calls."""
    starts = [index for index, (url, *_) in enumerate(requests) if url.endswith("/voice")]
    return starts[calls] if calls < len(starts) else len(requests)


# Simulated caches for --cold: L1 for code and for data, and a last-level cache small enough that
# reading three times through it before each webhook stays quick under valgrind.
LAST_LEVEL = 4 << 20
CACHES = ("--cache-sim=yes", "--I1=32768,8,64", "--D1=32768,8,64", f"--LL={LAST_LEVEL},16,{CacheEvictor.LINE}")
EVICT = 3 * LAST_LEVEL  # as bench/wsgi_cost.py's eviction_size(): three times the largest cache
# Events that are cache lines missed in the last-level cache, that is fetched from memory.
MISSED = {"ILmr": "code", "DLmr": "data read", "DLmw": "data written"}


@dataclass
class Count:
    """What callgrind counted for one process: totals by event, and under --cold each library's own."""

    webhooks: int
    totals: dict[str, int]
    libraries: dict[str, dict[str, int]] = field(default_factory=dict)

    def per_webhook(self, shorter: Count) -> Count:
        """This longer run's counts less `shorter`'s, per webhook added."""
        webhooks = self.webhooks - shorter.webhooks

        def less(ours: dict, theirs: dict) -> dict:
            return {event: (value - theirs.get(event, 0)) / webhooks for event, value in ours.items()}

        return Count(webhooks, less(self.totals, shorter.totals),
                     {name: less(events, shorter.libraries.get(name, {})) for name, events in self.libraries.items()})


def lines(events: dict) -> float:
    """The cache lines fetched from memory among `events` (a count's totals or a library's)."""
    return sum(events.get(event, 0) for event in MISSED)


def count(target: str, backend: str, calls: int, most: int, work: Path, cold: bool) -> Count:
    """What callgrind counts in one process that replays `calls` calls."""
    out = work / f"{target}-{calls}.out"
    caches = [*CACHES, "--toggle-collect=memoryview_tobytes", "--collect-atstart=yes"] if cold else []
    command = ["valgrind", "--tool=callgrind", *caches, f"--callgrind-out-file={out}", sys.executable, __file__,
               "--child", target, "--backend", backend, "--calls", str(calls), "--most", str(most),
               "--evict", str(EVICT if cold else 0)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    text = out.read_text()
    names = re.search(r"^events: (.*)$", text, re.MULTILINE).group(1).split()
    totals = re.search(r"^(?:summary|totals): (.*)$", text, re.MULTILINE).group(1).split()
    return Count(int(done.stdout.split()[-1]), dict(zip(names, map(int, totals), strict=True)),
                 by_library(text, names) if cold else {})


def by_library(text: str, names: list[str]) -> dict[str, dict[str, int]]:
    """Each library's own counts (its functions' self cost) from a callgrind output file: cost
    lines add to the library of the current `ob=`; the line after `calls=` is a call's inclusive
    cost, counted in the callee's own lines already."""
    libraries: dict[str, list[int]] = defaultdict(lambda: [0] * len(names))
    objects: dict[str, str] = {}
    library, inclusive = "?", False
    for line in text.splitlines():
        if line[:1].isdigit() or line[:1] in ("+", "-", "*"):
            if inclusive:
                inclusive = False
                continue
            own = libraries[library]
            for index, value in enumerate(line.split()[1:]):
                own[index] += int(value)
        elif line.startswith(("ob=", "cob=")):
            number, _, path = line.split("=", 1)[1].partition(" ")
            if path:
                objects[number] = Path(path).name
            if line.startswith("ob="):
                library = objects.get(number, number)
        elif line.startswith("calls="):
            inclusive = True
    return {name: dict(zip(names, events, strict=True)) for name, events in libraries.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "redis+postgres"])
    parser.add_argument("--calls", type=int, default=24, help="calls in the shorter run; the longer one plays twice as many")
    parser.add_argument("--cold", action="store_true",
                        help="simulate the caches, cold before each webhook, and count the lines fetched from memory")
    parser.add_argument("--child", choices=["ours", "ceiling"], help=argparse.SUPPRESS)
    parser.add_argument("--most", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--evict", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.backend, args.calls, args.most, args.evict)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install -y valgrind): it counts the instructions")

    # Byte-compiled before the count: a module compiled by one run and not by the other (edited
    # since) would count millions of instructions in one of them.
    for package in ("ivr", "bench"):
        compileall.compile_dir(ROOT / package, quiet=1)
    most = 2 * args.calls
    with tempfile.TemporaryDirectory() as work, ThreadPoolExecutor(2) as pool:
        jobs = {(target, calls): pool.submit(count, target, args.backend, calls, most, Path(work), args.cold)
                for target in ("ours", "ceiling") for calls in (args.calls, most)}
        ours, ceiling = (jobs[target, most].result().per_webhook(jobs[target, args.calls].result()) for target in ("ours", "ceiling"))
    print(f"instructions per webhook, in-process, {args.backend} ({most - args.calls} calls, {ours.webhooks} webhooks counted"
          + (", caches cold before each webhook):" if args.cold else "):"))
    if not args.cold:
        print(f"  ours     {ours.totals['Ir']:10,.0f}")
        print(f"  ceiling  {ceiling.totals['Ir']:10,.0f}  (the same requests to a fixed TwiML document)")
        print(f"  ratio ceiling/ours {ceiling.totals['Ir'] / ours.totals['Ir']:.2f} (user-space only: no kernel, no waits, no cache misses)")
        return
    print(f"  {'':9} {'instructions':>12}   lines fetched from memory: "
          + "".join(f"{kind:>14}" for kind in MISSED.values()) + f"{'all':>9}")
    for name, counted in (("ours", ours), ("ceiling", ceiling)):
        print(f"  {name:9} {counted.totals['Ir']:12,.0f}   {'':26}"
              + "".join(f"{counted.totals[event]:14,.0f}" for event in MISSED) + f"{lines(counted.totals):9,.0f}")
    print(f"  ratio ceiling/ours: {ceiling.totals['Ir'] / ours.totals['Ir']:.2f} of the instructions, "
          f"{lines(ceiling.totals) / lines(ours.totals):.2f} of the lines (user space only: the kernel's part is not simulated)")
    above = {name: lines(events) - lines(ceiling.libraries.get(name, {})) for name, events in ours.libraries.items()}
    print(f"  ours above the ceiling, {lines(ours.totals) - lines(ceiling.totals):,.0f} lines, by library "
          "(its own code and what it reads and writes):")
    for name, missed in sorted(above.items(), key=lambda item: -item[1]):
        if abs(missed) >= 10:
            print(f"    {missed:7,.0f}  {name}")


if __name__ == "__main__":
    main()
