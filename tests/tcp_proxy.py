"""A TCP proxy in front of a local server that can be switched to drop every connection.

Put between the launcher and the Cloud Storage emulator, it makes Cloud Storage fail for the
launcher only, while the steps reach the emulator directly.
"""

from __future__ import annotations

import socket
import threading
from typing import List, Tuple


class SwitchableProxy:
    def __init__(self, target: Tuple[str, int]) -> None:
        self.target = target
        self.refused = 0  # connections dropped while refusing
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
                self._open += [client, upstream]
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
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
