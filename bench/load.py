"""Load benchmark: simulated callers play whole calls over HTTP against gunicorn with the
Procfile's production settings, and in the same run against bench/ceiling.py (a minimal Flask app
returning one fixed TwiML document) under the same settings.

Reports, for each backend (SQLite; Redis + PostgreSQL when they run on 127.0.0.1):
- saturation: callers with no pause — webhooks/s, the server's own CPU time per webhook (from the
  kernel's accounting of the gunicorn processes), and the ratio ceiling/ours of that figure (of the
  medians over the --repeat interleaved rounds; then the ratio of each round, whose spread shows
  how much the machine's noise moves one run's figure);
- paced: many concurrent calls, each making a webhook every --interval seconds, arrivals spread
  out — p50/p95/p99 latency, failed calls, and peak memory per worker.

    python bench/load.py                        # defaults: 3,000 paced calls for 60 s
    python bench/load.py --paced-calls 500 --paced-seconds 30 --backends sqlite
    python bench/load.py --pin                  # the load generator on a core of its own
    python bench/load.py --backends redis+postgres --db-delay 1 --paced-calls 100 --repeat 1
                                                # PostgreSQL answering in 1 s: no call may wait for it

By default the load generator shares every core with the servers, as the issue's targets assume.
Between two requests it then runs on the core a worker uses, and evicts that worker's code and data
from the CPU's caches; with --pin (two cores or more) it keeps to the first core and the servers to
the others, closer to production where no load generator shares a server's cores (Redis and
PostgreSQL run where the system puts them; their CPU is not counted in either case).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote_plus, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.backends import backend_settings  # noqa: E402
from bench.calls import SCRIPTS  # noqa: E402
from ivr.supervisor.simulator import Caller  # noqa: E402

TOKEN = "bench-token-0123456789"
ACCESS_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'  # gunicorn's default, + µs
CLOCK = os.sysconf("SC_CLK_TCK")


# ---- the server under test -------------------------------------------------------------------
class Server:
    """gunicorn with the Procfile's settings (2 workers × 4 threads), on a free local port."""

    def __init__(self, target: str, env: dict, workers: int, threads: int, cpus: set[int] | None = None):
        self.port = _free_port()
        # The access log as in production, plus each request's time in µs (%(D)s) for the
        # server-side latency; it goes to a file like the server's log: a pipe nobody reads would
        # fill up and block the workers.
        self.access = tempfile.NamedTemporaryFile(suffix=".log")
        command = [sys.executable, "-m", "gunicorn", target, "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
                   "--threads", str(threads), "--access-logfile", self.access.name,
                   "--access-logformat", ACCESS_FORMAT, "--log-level", "warning"]
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=self.log,
                                        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(self.log.read().decode()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                if len(self.workers()) == workers:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not start")

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in [self.process.pid, *self.workers()]:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK  # utime + stime
        return total

    def peak_memory_mb(self) -> list[float]:
        peaks = []
        for pid in self.workers():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return peaks

    def request_seconds(self, since: int = 0) -> tuple[list[float], int]:
        """Server-side times of the requests logged after byte `since` of the access log, and the
        log's size now (to ask again later for the next phase only)."""
        with open(self.access.name, "rb") as handle:
            handle.seek(since)
            data = handle.read()
        return [int(line.rsplit(b" ", 1)[1]) / 1e6 for line in data.splitlines() if line.strip()], since + len(data)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- the load generator's own work, kept small: it shares the two cores with the servers --------
@lru_cache(maxsize=8192)
def _encoded(name: str, value: str) -> str:
    return quote_plus(name) + "=" + quote_plus(value)


def form_body(params: dict) -> bytes:
    """What urlencode(params) gives, from pairs encoded once: most fields repeat from one webhook to
    the next, and urlencode's two quote_plus a field were the generator's largest cost (cProfile)."""
    return "&".join([_encoded(name, value) for name, value in params.items()]).encode()


# ---- a tiny async HTTP/1.1 client with a connection pool ---------------------------------------
class Pool:
    def __init__(self, port: int, size: int):
        self.port = port
        self.idle: asyncio.Queue = asyncio.Queue()
        self.size = size
        self.opened = 0

    async def post(self, url: str, params: dict, headers: dict, retry: bool = True) -> tuple[int, str]:
        reader, writer = await self._connection(fresh=not retry)
        body = form_body(params)
        parts = urlsplit(url)
        head = [f"POST {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1",
                "Host: localhost", "Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}",
                *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        try:
            writer.write("\r\n".join(head).encode() + body)
            await writer.drain()
            # The status line and headers at once (a kept-alive connection the server had closed
            # raises IncompleteReadError: sent again below on a new one).
            head_bytes = await reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
            status = int(status_line.split()[1])
            length, close = 0, False
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            payload = await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            writer.close()
            self.opened -= 1
            if retry:  # a connection the server had closed: once more on a new one
                return await self.post(url, params, headers, retry=False)
            raise
        if close:
            writer.close()
            self.opened -= 1
        else:
            self.idle.put_nowait((reader, writer))
        return status, payload.decode()

    async def _connection(self, fresh: bool = False):
        if fresh or (self.idle.empty() and self.opened < self.size):
            self.opened += 1
            return await asyncio.open_connection("127.0.0.1", self.port)
        return await self.idle.get()


async def play(pool: Pool, number: int, pause: float, latencies: list, ceiling: bool) -> bool:
    """One whole call; `pause` seconds between webhooks. True when every webhook answered 200."""
    script = SCRIPTS[number % len(SCRIPTS)]
    if ceiling:  # the fixed document always asks the same question: as many keys as our call has
        script = ["2"] * (len(script) + 1)
    caller = Caller(None, "http://localhost", TOKEN)
    conversation = caller.conversation(list(script))
    try:
        request = next(conversation)
        while True:
            url, params = request
            began = time.perf_counter()
            status, body = await pool.post(url, params, caller.headers(url, params))
            latencies.append(time.perf_counter() - began)
            if status != 200:
                return False
            try:
                request = conversation.send((status, body, latencies[-1]))
            except StopIteration:
                return True
            if pause:
                await asyncio.sleep(pause)
    except Exception:
        return False


async def drive(port: int, calls: int, seconds: float, interval: float, connections: int, ceiling: bool = False) -> tuple[int, int, list]:
    """`calls` concurrent calls during `seconds`, each replaced by a new one when it ends. With an
    `interval` (paced), each starts at a random moment in the first interval and makes a webhook
    every `interval` seconds; with none (saturation), as fast as the server answers. Returns the
    calls played, those that failed, and every webhook's latency."""
    pool = Pool(port, connections)
    latencies: list[float] = []
    done = failed = 0
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))

    async def slot():
        nonlocal done, failed
        await asyncio.sleep(random.uniform(0, interval))
        while time.monotonic() < deadline:
            ok = await play(pool, next(counter), interval, latencies, ceiling)
            done += 1
            failed += not ok

    await asyncio.gather(*(slot() for _ in range(calls)))
    return done, failed, latencies


def slowed(url: str, delay: float, stack: contextlib.ExitStack) -> str:
    """`url` through a proxy that holds PostgreSQL's answers `delay` seconds, its schema made first
    at full speed (a migration is dozens of round trips; the server's own start then finds it done)."""
    from bench.delay import DelayProxy
    from ivr.storage.db import connect

    database = connect(url, Path(tempfile.gettempdir()))
    database.one("SELECT 1 AS ok")  # its first use migrates
    database.close()
    parts = urlsplit(url)
    proxy = stack.enter_context(DelayProxy((parts.hostname, parts.port or 5432), delay))
    print(f"PostgreSQL's answers held {delay:g} s (proxy on port {proxy.port})")
    return url.replace(f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{proxy.port}", 1)


def pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * (len(ordered) - 1)))] * 1000 if ordered else float("nan")


def round_ratios(ceiling: list[float], ours: list[float]) -> list[float]:
    """The ratio ceiling/ours of each interleaved round. The two runs of a round are seconds apart:
    a busy or quiet spell of the machine that spans the round moves both alike; one shorter than a
    run moves one of them, and shows as a round far from the others."""
    return [c / o for c, o in zip(ceiling, ours, strict=True)]


def measure(server: Server, coroutine) -> tuple:
    cpu = server.cpu_seconds()
    began = time.monotonic()
    result = asyncio.run(coroutine)
    return (*result, time.monotonic() - began, server.cpu_seconds() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,redis+postgres", help="comma-separated: sqlite, redis+postgres")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (Procfile default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (Procfile: 4)")
    parser.add_argument("--callers", type=int, default=8, help="saturation: callers with no pause")
    parser.add_argument("--seconds", type=float, default=10, help="saturation: duration of each run")
    parser.add_argument("--repeat", type=int, default=5,
                        help="saturation runs per server, interleaved; medians are reported (5: on a shared machine one "
                             "run in five to seven falls on a slow spell; a median of five stands two of them)")
    parser.add_argument("--paced-calls", type=int, default=3000, help="paced: concurrent calls")
    parser.add_argument("--paced-seconds", type=float, default=60, help="paced: how long new calls keep arriving")
    parser.add_argument("--interval", type=float, default=10, help="paced: seconds between two webhooks of a call")
    parser.add_argument("--connections", type=int, default=64, help="paced: HTTP connections shared by the calls")
    parser.add_argument("--db-delay", type=float, default=0,
                        help="PostgreSQL's answers held this many seconds by a proxy (a slow database); the schema is made first, directly")
    parser.add_argument("--pin", action="store_true",
                        help="the load generator on the first core, the servers on the others (by default all share every core)")
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    server_cpus = None
    if args.pin:
        if len(cores) < 2:
            parser.error("--pin needs at least two cores")
        server_cpus = set(cores[1:])  # each server's process sets them before it starts
        os.sched_setaffinity(0, {cores[0]})
        where = f"the load generator on core {cores[0]}, the servers on core(s) {', '.join(map(str, cores[1:]))}"
    else:
        where = "the load generator runs on the same cores"
    print(f"machine: {os.cpu_count()} cores; gunicorn {args.workers} workers x {args.threads} threads; {where}")
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    with tempfile.TemporaryDirectory() as data_dir, contextlib.ExitStack() as backends:
        servers = {"ceiling": Server("bench.ceiling:create_app()", {}, args.workers, args.threads, server_cpus)}
        try:
            for name in names:
                env = {"TWILIO_AUTH_TOKEN": TOKEN, "IVR_DATA_DIR": tempfile.mkdtemp(dir=data_dir), "TWILIO_WORKFLOW_SID": "WW" + "0" * 32,
                       "HANDOFF_WEBHOOK_URL": "", "IVR_ALWAYS_OPEN": "1",
                       **backends.enter_context(backend_settings(name))}  # its data removed after the servers stop
                if args.db_delay and env["DATABASE_URL"]:
                    env["DATABASE_URL"] = slowed(env["DATABASE_URL"], args.db_delay, backends)
                servers[name] = Server("ivr:create_app()", env, args.workers, args.threads, server_cpus)
            runs: dict[str, list] = {name: [] for name in servers}
            # Interleaved runs: the machine's noise (the load generator shares the cores) hits all alike.
            for _ in range(args.repeat):
                for name, server in servers.items():
                    _, failures, latencies, elapsed, cpu = measure(
                        server, drive(server.port, args.callers, args.seconds, 0, args.callers, name == "ceiling"))
                    runs[name].append((len(latencies) / elapsed, cpu / len(latencies), pct(latencies, .5), failures))
            ceiling_cpu = statistics.median(run[1] for run in runs["ceiling"])
            print(f"\nsaturation ({args.callers} callers with no pause, {args.repeat} x {args.seconds:.0f} s each, medians):")
            for name, results in runs.items():
                rate = statistics.median(r[0] for r in results)
                cpu = statistics.median(r[1] for r in results)
                spread = ", ".join(f"{r[1] * 1000:.2f}" for r in results)
                failed = sum(r[3] for r in results)
                ratio = "" if name == "ceiling" else f"; CPU ratio ceiling/ours {ceiling_cpu / cpu:.2f} (target >= 0.45)"
                label = "ceiling (fixed TwiML)" if name == "ceiling" else name
                print(f"  {label:22} {rate:6.0f} webhooks/s, server CPU {cpu * 1000:.3f} ms/webhook (runs: {spread}), "
                      f"p50 {statistics.median(r[2] for r in results):.1f} ms, failed calls {failed}{ratio}")
                if name != "ceiling" and len(results) > 1:
                    rounds = round_ratios([r[1] for r in runs["ceiling"]], [r[1] for r in results])
                    print(f"  {'':22} the ratio round by round: {', '.join(f'{x:.2f}' for x in rounds)} "
                          f"(median {statistics.median(rounds):.2f}): how far one run's figure can be trusted")
            for name in names:
                server = servers[name]
                _, logged = server.request_seconds()
                done, failed, latencies, elapsed, cpu = measure(
                    server, drive(server.port, args.paced_calls, args.paced_seconds, args.interval, args.connections))
                inside, _ = server.request_seconds(logged)
                print(f"\npaced, {name}: {args.paced_calls} concurrent calls, a webhook every {args.interval:g} s, new calls for "
                      f"{args.paced_seconds:g} s (each then runs to its end; {elapsed:.0f} s in all)")
                print(f"  {len(latencies)} webhooks, {done} calls, failed calls {failed}; latency p50 {pct(latencies, .5):.1f} ms, "
                      f"p95 {pct(latencies, .95):.1f} ms, p99 {pct(latencies, .99):.1f} ms (target p99 < 50 ms)")
                print(f"  inside the server (gunicorn's access log; the rest is the network and the load generator): "
                      f"p50 {pct(inside, .5):.1f} ms, p95 {pct(inside, .95):.1f} ms, p99 {pct(inside, .99):.1f} ms")
                print(f"  server CPU {cpu / max(len(latencies), 1) * 1000:.3f} ms/webhook; peak memory per worker: "
                      f"{', '.join(f'{m:.0f} MB' for m in server.peak_memory_mb())}")
        finally:
            for server in servers.values():
                server.stop()


if __name__ == "__main__":
    main()
