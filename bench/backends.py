"""Where the benchmarks keep our app's data: the embedded SQLite, or the local Redis and
PostgreSQL (a fresh schema and key prefix for each server, so runs never share data, removed when
the run ends: a benchmark leaves nothing in the machine's Redis or PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

POSTGRES = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc"]
REDIS_URL = "redis://127.0.0.1:6379/0"


@contextmanager
def backend_settings(name: str) -> Iterator[dict]:
    """DATABASE_URL, REDIS_URL and IVR_REDIS_PREFIX for `name` ("sqlite": none of them); the
    schema and the Redis keys go once the block ends."""
    if name != "redis+postgres":
        yield {"DATABASE_URL": "", "REDIS_URL": ""}
        return
    schema = "bench_" + os.urandom(4).hex()
    subprocess.run([*POSTGRES, f"CREATE SCHEMA {schema}"], check=True)
    try:
        yield {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}",
               "REDIS_URL": REDIS_URL, "IVR_REDIS_PREFIX": f"{schema}:"}
    finally:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{schema}:*", count=1000))
        if keys:
            client.unlink(*keys)
        subprocess.run([*POSTGRES, f"SET client_min_messages = warning; DROP SCHEMA {schema} CASCADE"], check=True)
