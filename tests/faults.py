"""Faults of the outside world, made on this machine: a TCP proxy that loses a reply."""

from __future__ import annotations

import socket
import threading


class Listener:
    """A local TCP server on a free port; each connection goes to `connected`, in the accepting thread."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def connected(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connected(client)


class LossyProxy(Listener):
    """A TCP proxy to `target` that, once armed with a word, lets the next request containing that
    word reach the server and then cuts the client's connection before its reply comes back (the
    server did the work; the client saw its connection break)."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.armed: bytes | None = None
        self.cuts = 0
        self._lock = threading.Lock()
        super().__init__()

    def arm(self, word: bytes) -> None:
        self.armed = word

    def connected(self, client: socket.socket) -> None:
        server = socket.create_connection(self.target)
        state = {"cut": False}
        threading.Thread(target=self._upstream, args=(client, server, state), daemon=True).start()
        threading.Thread(target=self._downstream, args=(server, client, state), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket, state: dict) -> None:
        while data := _recv(client):
            with self._lock:
                if self.armed is not None and self.armed in data:
                    self.armed = None
                    state["cut"] = True
            server.sendall(data)
        _close(client, server)

    def _downstream(self, server: socket.socket, client: socket.socket, state: dict) -> None:
        while data := _recv(server):
            if state["cut"]:
                self.cuts += 1
                break  # the reply is lost with the connection
            client.sendall(data)
        _close(client, server)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


class HangingProxy(Listener):
    """An HTTP proxy that accepts connections (a CONNECT for HTTPS) and never answers: an outside
    API that hangs. Clients reach it through HTTPS_PROXY."""

    def __init__(self):
        self.held: list[socket.socket] = []
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connected(self, client: socket.socket) -> None:
        self.held.append(client)  # read nothing, answer nothing

    def close(self) -> None:
        super().close()
        _close(*self.held)
