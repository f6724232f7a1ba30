"""A TCP proxy in front of a local server that can be switched to drop every connection.

Put between the launcher and the Cloud Storage emulator, it makes Cloud Storage fail for the
launcher only, while the steps reach the emulator directly. With a delay, it also holds each
request (the first bytes a client sends after the server's last answer) that long, as a distant
server would: the benchmarks measure transfers through it.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable, List, Tuple


class SwitchableProxy:
    def __init__(self, target: Tuple[str, int], delay: float = 0.0) -> None:
        self.target = target
        self.delay = delay
        self.refused = 0  # connections dropped while refusing
        self.requests = 0  # requests forwarded: a client's first bytes after each answer
        self._refusing = False
        self._lock = threading.Lock()
        self._open: List[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def refuse(self) -> None:
        """Drops the connections in use and every new one, until restore()."""
        with self._lock:
            self._refusing = True
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def restore(self) -> None:
        with self._lock:
            self._refusing = False

    def close(self) -> None:
        self.refuse()
        _close(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._refusing:
                    self.refused += 1
                    _close(client)
                    continue
                upstream = socket.create_connection(self.target)
                for sock in (client, upstream):  # forwarded as it comes, as a router does
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._open += [client, upstream]
            turn = _Turn(self)
            threading.Thread(
                target=_pipe, args=(client, upstream, turn.before_request), daemon=True
            ).start()
            threading.Thread(
                target=_pipe, args=(upstream, client, turn.after_answer), daemon=True
            ).start()


class _Turn:
    """Whose turn it is on one connection: a request after an answer is counted, and waits
    the proxy's delay."""

    def __init__(self, proxy: SwitchableProxy) -> None:
        self.proxy = proxy
        self.answered = True

    def before_request(self) -> None:
        if self.answered:
            with self.proxy._lock:
                self.proxy.requests += 1
            if self.proxy.delay:
                time.sleep(self.proxy.delay)
        self.answered = False

    def after_answer(self) -> None:
        self.answered = True


def _pipe(source: socket.socket, sink: socket.socket, on_data: Callable[[], None]) -> None:
    try:
        while data := source.recv(65536):
            on_data()
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
