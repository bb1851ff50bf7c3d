"""Benchmark: median and p99 webhook time over whole simulated calls.

In-process by default (Flask test client, embedded SQLite in a temporary directory): this measures our
own code per webhook. With --url it plays the same calls over HTTP against a running server (start it
with the same TWILIO_AUTH_TOKEN as --token).

    python bench/webhooks.py --calls 300
    python bench/webhooks.py --calls 300 --url http://127.0.0.1:8000 --token "$TWILIO_AUTH_TOKEN"
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import logging  # noqa: E402

from bench.calls import SCRIPTS  # noqa: E402
from bench.load import pct  # noqa: E402
from ivr.supervisor.simulator import Caller, FlaskTransport, HttpTransport  # noqa: E402


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="number of whole calls to play (default 200)")
    parser.add_argument("--url", help="base URL of a running server (default: in-process)")
    parser.add_argument("--token", default="bench-token", help="TWILIO_AUTH_TOKEN of the server (default: bench-token)")
    args = parser.parse_args()

    if args.url:
        play(args, HttpTransport(), args.url, f"HTTP {args.url}")
        return
    from ivr import create_app

    os.environ.pop("REDIS_URL", None)
    os.environ.pop("DATABASE_URL", None)
    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as data_dir:  # removed at the end of the run
        app = create_app({"TWILIO_AUTH_TOKEN": args.token, "IVR_DATA_DIR": data_dir, "TWILIO_WORKFLOW_SID": "WW" + "0" * 32,
                          "IVR_ALWAYS_OPEN": "1"})
        try:
            play(args, FlaskTransport(app.test_client()), "http://localhost", "in-process, SQLite in a temporary folder")
        finally:
            app.extensions["ivr"].stop()
            app.extensions["ivr"].db.forget_connection()


def play(args, transport, base: str, where: str) -> None:
    timings: list[float] = []
    began = time.perf_counter()
    for number in range(args.calls):
        caller = Caller(transport, base, args.token)
        result = caller.call(SCRIPTS[number % len(SCRIPTS)])
        timings.extend(result.timings)
    elapsed = time.perf_counter() - began

    print(f"where:            {where}")
    print(f"calls:            {args.calls} ({len(timings)} webhooks, status callbacks not counted)")
    print(f"webhook median:   {statistics.median(timings) * 1000:.2f} ms")
    print(f"webhook p99:      {pct(timings, 0.99):.2f} ms")
    print(f"webhook max:      {max(timings) * 1000:.2f} ms")
    print(f"throughput:       {len(timings) / elapsed:.0f} webhooks/s on one thread")


if __name__ == "__main__":
    main()
