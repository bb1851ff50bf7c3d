"""In-process CPU per webhook of our WSGI app against bench/ceiling.py, without HTTP or gunicorn.

The load benchmark (bench/load.py) measures the whole stack on a shared, noisy machine. This one
calls each WSGI app directly with the environ gunicorn would build and counts only the CPU time of
the thread inside the app (time.thread_time), so changes to our own code show up clearly:

    python bench/wsgi_cost.py --calls 300
    python bench/wsgi_cost.py --calls 300 --profile 25      # also the 25 costliest functions of ours
    python bench/wsgi_cost.py --backend redis+postgres     # sessions in Redis, records in PostgreSQL
    python bench/wsgi_cost.py --cold                       # each webhook starts with the CPU's caches cold

The same calls (bench/calls.py) are played against both apps; the ceiling gets as many webhooks.

Why --cold: played back to back in one process, each webhook finds the code and data of the one
before it in the CPU's caches. Under gunicorn it does not: the other worker, the load generator and
the kernel ran in between. Warm, our app costs about 0.3 ms above the ceiling; under gunicorn
(bench/load.py) about 0.6 ms. With --cold, which writes over three times the CPU's largest cache
before each webhook (outside the time counted), the in-process gap is that of gunicorn too (about
0.55 ms on this machine, whose 32 MiB L3 cache other tenants share): the code and data a webhook
runs through come from memory, and what is cheap when warm (a large C library such as SQLite, many
small Python functions, each with its own code object) costs its cache misses there. Writing over
16 MiB only (the 1 MiB L2 and half the L3) gave a gap of 0.35 ms. The eviction takes about 2 ms a
webhook: a --cold run lasts a few times longer.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.backends import backend_settings  # noqa: E402
from bench.calls import SCRIPTS  # noqa: E402
from bench.ceiling import create_app as ceiling_app  # noqa: E402
from ivr.simulator import Caller  # noqa: E402

TOKEN = "bench-token-0123456789"


def wsgi_environ(url: str, body: bytes, headers: dict) -> dict:
    """The environ gunicorn builds for a POST of `body` to `url`."""
    parts = urlsplit(url)
    return {
        "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": parts.path, "QUERY_STRING": parts.query,
        "RAW_URI": parts.path + ("?" + parts.query if parts.query else ""), "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "localhost", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0),
        **{"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()},
    }


class CacheEvictor:
    """Writes one byte in every cache line of a buffer three times the size of the CPU's largest
    cache (at least 64 MiB), in C: what a webhook's code and data had in the caches is gone after it."""

    LINE = 64  # bytes in a cache line

    def __init__(self, size: int = 0):
        size = size or eviction_size()
        self.buffer = bytearray(size)
        self.fills = [bytes([value]) * (size // self.LINE) for value in (1, 2)]
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        self.buffer[::self.LINE] = self.fills[self.count & 1]  # a new value: every line is written


def eviction_size() -> int:
    """Bytes to write over so that nothing of a webhook stays cached: three times the largest cache."""
    return max(64 << 20, 3 * largest_cache())


def largest_cache() -> int:
    """The size in bytes of the largest CPU cache Linux reports (0 if it reports none)."""
    sizes = [0]
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip().upper()
        unit = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KM")) * unit)
    return max(sizes)


class WsgiTransport:
    """Calls a WSGI app as gunicorn would, and adds up the thread CPU time spent inside it (after
    `before`, when given: not counted)."""

    def __init__(self, app, profiler: cProfile.Profile | None = None, before=None):
        self.app = app
        self.profiler = profiler
        self.before = before
        self.cpu: list[float] = []

    def post(self, url: str, params: dict, headers: dict) -> tuple[int, str]:
        environ = wsgi_environ(url, urlencode(params).encode(), headers)
        if self.before is not None:
            self.before()
        began = time.thread_time()
        if self.profiler:
            self.profiler.enable()
        status, payload = call_wsgi(self.app, environ)
        if self.profiler:
            self.profiler.disable()
        self.cpu.append(time.thread_time() - began)
        return status, payload.decode()


def call_wsgi(app, environ: dict) -> tuple[int, bytes]:
    """The status code and body `app` answers to `environ`, read as gunicorn reads them."""
    status: list[str] = []
    result = app(environ, lambda s, h, exc_info=None: status.append(s))
    payload = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return int(status[0].split()[0]), payload


def app_config(backend: str) -> dict:
    """Our app's settings for the benchmark: a fresh SQLite file, or a fresh PostgreSQL schema and
    Redis prefix on the local servers."""
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("DATABASE_URL", None)
    return {"TWILIO_AUTH_TOKEN": TOKEN, "IVR_DATA_DIR": tempfile.mkdtemp(prefix="ivr-bench-"),
            "TWILIO_WORKFLOW_SID": "WW" + "0" * 32, "IVR_ALWAYS_OPEN": "1", **backend_settings(backend)}


def play(ours: WsgiTransport, ceiling: WsgiTransport, calls: int) -> None:
    """The calls, one against each app in turn: the machine's drift hits both alike."""
    for number in range(calls):
        script = SCRIPTS[number % len(SCRIPTS)]
        Caller(ours, "http://localhost", TOKEN).call(list(script))
        Caller(ceiling, "http://localhost", TOKEN).call(["2"] * (len(script) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="whole calls played against each app (default 300)")
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "redis+postgres"])
    parser.add_argument("--sort", default="tottime", help="profile order: tottime or cumulative")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions of our app")
    parser.add_argument("--cold", action="store_true",
                        help="evict the CPU's caches before each webhook (not counted), as under gunicorn")
    args = parser.parse_args()

    from ivr import create_app

    evict = CacheEvictor() if args.cold else None
    ours = WsgiTransport(create_app(app_config(args.backend)), before=evict)
    ceiling = WsgiTransport(ceiling_app(), before=evict)
    play(ours, ceiling, 20)  # warm up both (imports, caches, first connections)
    ours.cpu.clear()
    ceiling.cpu.clear()
    profiler = cProfile.Profile() if args.profile else None
    ours.profiler = profiler
    play(ours, ceiling, args.calls)

    def line(label: str, cpu: list[float]) -> str:
        return (f"{label:10} {len(cpu):6} webhooks, CPU mean {statistics.fmean(cpu) * 1e3:.3f} ms, "
                f"median {statistics.median(cpu) * 1e3:.3f} ms")

    print(f"in-process, {args.backend}, {args.calls} calls" + (", caches cold before each webhook" if args.cold else "")
          + (" (profiled: ours is slower)" if profiler else ""))
    print(line("ours", ours.cpu))
    print(line("ceiling", ceiling.cpu))
    print(f"app cost above the ceiling: {(statistics.fmean(ours.cpu) - statistics.fmean(ceiling.cpu)) * 1e3:.3f} ms/webhook; "
          f"ratio ceiling/ours {statistics.fmean(ceiling.cpu) / statistics.fmean(ours.cpu):.2f} (without HTTP and gunicorn)")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.profile)
        print(out.getvalue())


if __name__ == "__main__":
    main()
