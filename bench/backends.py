"""Where the benchmarks keep our app's data: the embedded SQLite, or the local Redis and
PostgreSQL (a fresh schema and key prefix for each server, so runs never share data)."""

from __future__ import annotations

import os
import subprocess


def backend_settings(name: str) -> dict:
    """DATABASE_URL, REDIS_URL and IVR_REDIS_PREFIX for `name` ("sqlite": none of them)."""
    if name != "redis+postgres":
        return {"DATABASE_URL": "", "REDIS_URL": ""}
    schema = "bench_" + os.urandom(4).hex()
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc", f"CREATE SCHEMA {schema}"], check=True)
    return {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}",
            "REDIS_URL": "redis://127.0.0.1:6379/0", "IVR_REDIS_PREFIX": f"{schema}:"}
