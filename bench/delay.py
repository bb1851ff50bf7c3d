"""A TCP proxy that holds every answer of a server for `delay` seconds: PostgreSQL slowed to a round
trip of `delay` seconds (a congested link, a database under a heavy query), for `bench/load.py
--db-delay`. What the client sends goes at once; what the server answers arrives `delay` later, in
order, each chunk on its own clock (answers do not queue behind one another)."""

from __future__ import annotations

import queue
import socket
import threading
import time


class DelayProxy:
    """Listens on a free local port; forwards to `target` with `delay` seconds on every answer."""

    def __init__(self, target: tuple[str, int], delay: float):
        self.target, self.delay = target, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> DelayProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.closed.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            held: queue.Queue = queue.Queue()
            threading.Thread(target=_pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=self._hold, args=(server, held), daemon=True).start()
            threading.Thread(target=_release, args=(held, client), daemon=True).start()

    def _hold(self, server: socket.socket, held: queue.Queue) -> None:
        while True:
            try:
                data = server.recv(65536)
            except OSError:
                data = b""
            held.put((time.monotonic() + self.delay, data))
            if not data:
                return


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _release(held: queue.Queue, client: socket.socket) -> None:
    while True:
        due, data = held.get()
        time.sleep(max(0.0, due - time.monotonic()))
        if not data:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        try:
            client.sendall(data)
        except OSError:
            return
