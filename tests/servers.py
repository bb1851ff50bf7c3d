"""Redis and PostgreSQL servers of a test's own, on free ports under a temporary directory, that the
test may kill by PID and start again (the machine's shared servers are never touched)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


class OwnServer:
    """A server process of the test's own: start, kill -9 by PID, start again on the same port."""

    def __init__(self):
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def command(self) -> tuple[list[str], dict]:
        raise NotImplementedError

    def start(self) -> None:
        args, options = self.command()
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **options)
        _wait_listening(self.port, self.process, args[0])

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


class RedisServer(OwnServer):
    available = shutil.which("redis-server") is not None

    def __init__(self):
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="ivr-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    def command(self):
        return [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.directory], {}


def _postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return os.path.dirname(found[-1]) if found else None


class PostgresServer(OwnServer):
    """initdb and postgres run as the `postgres` user (PostgreSQL refuses root), trust on 127.0.0.1."""

    bin = _postgres_bin()
    available = False  # set below, once _has_user is defined

    def __init__(self):
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="ivr-pg-")
        user = pwd.getpwnam("postgres")
        os.chown(self.directory, user.pw_uid, user.pw_gid)
        subprocess.run([os.path.join(self.bin, "initdb"), "-D", self.directory, "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user="postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def command(self):
        return [os.path.join(self.bin, "postgres"), "-D", self.directory, "-p", str(self.port), "-k", self.directory,
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"], {"user": "postgres"}

    def start(self) -> None:
        """Started, and accepting connections: after a kill -9 PostgreSQL listens during its crash
        recovery before it accepts anyone ("the database system is not yet accepting connections")."""
        import psycopg

        super().start()
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


PostgresServer.available = PostgresServer.bin is not None and os.geteuid() == 0 and _has_user("postgres")
