"""The step's console (its stdout and stderr, its children's included) kept in a file as it is
written, and still written where it went (the container's log on Vertex): the launcher shows
it in the terminal."""

from __future__ import annotations

import array
import fcntl
import os
import select
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Dict, List

# How long hand-back waits for what was written before it to reach the file.
DRAIN_SECONDS = 2.0
# A line longer than this goes into the file in parts.
PARTIAL_LINE_LIMIT = 65536


class Console:
    """Each of fds 1 and 2 becomes a pipe pumped by a thread to where it went before, and into
    one file, in the order read.

    A pump reads only under the lock, once poll says the pipe has data: so a drain that holds
    the lock and finds both pipes empty knows everything written before it is in the file, with
    no fixed wait (a step's hand-back costs nothing when its job printed nothing more)."""

    def __init__(self) -> None:
        handle, name = tempfile.mkstemp(prefix="hydra-vertex-console-", suffix=".log")
        os.close(handle)
        self.path = Path(name)
        self._file = self.path.open("ab")
        self._lock = threading.Lock()
        self._read_ends: List[int] = []
        self._pumps: List[threading.Thread] = []
        # By the fd it goes to: the start of a line not ended yet.
        self._partial: Dict[int, bytes] = {}
        self._file_ends_line = True

    def start(self) -> "Console":
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
            # Lines as they come, as a terminal shows them (a pipe would be block-buffered).
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(line_buffering=True)
        for fd in (1, 2):
            read_end, write_end = os.pipe()
            original = os.dup(fd)
            os.dup2(write_end, fd)
            os.close(write_end)
            self._read_ends.append(read_end)
            pump = threading.Thread(target=self._pump, args=(read_end, original), daemon=True)
            pump.start()
            self._pumps.append(pump)
        return self

    def drain(self) -> None:
        """What was written so far is in the file (within DRAIN_SECONDS)."""
        sys.stdout.flush()
        sys.stderr.flush()
        deadline = time.monotonic() + DRAIN_SECONDS
        while not self._pipes_empty() and time.monotonic() < deadline:
            time.sleep(0.002)
        with self._lock:  # a last line without its newline, too
            for original, data in self._partial.items():
                self._emit(original, data)
            self._partial.clear()

    @property
    def ends_line(self) -> bool:
        """Whether what is in the file so far ends with a line's end (or is nothing)."""
        with self._lock:
            return self._file_ends_line

    def discard(self) -> None:
        """The file, once uploaded for the last time (what follows still reaches the step's log)."""
        self.path.unlink(missing_ok=True)

    def _pipes_empty(self) -> bool:
        with self._lock:
            return all(_unread_bytes(read_end) == 0 for read_end in self._read_ends)

    def _pump(self, read_end: int, original: int) -> None:
        """Whole lines, to where the stream went and into the file: stdout's and stderr's lines
        never cut into each other (a line ends at a newline, or a carriage return)."""
        readable = select.poll()
        readable.register(read_end, select.POLLIN)
        while True:
            readable.poll()
            with self._lock:
                try:
                    chunk = os.read(read_end, 65536)  # poll said it will not block
                except OSError:
                    chunk = b""
                data = self._partial.pop(original, b"") + chunk
                whole = not chunk or len(data) > PARTIAL_LINE_LIMIT
                cut = len(data) if whole else max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
                self._emit(original, data[:cut])
                if data[cut:]:
                    self._partial[original] = data[cut:]
            if not chunk:
                return

    def _emit(self, original: int, data: bytes) -> None:
        """Holds the lock."""
        if data:
            _write_all(original, data)
            self._file.write(data)
            self._file.flush()
            self._file_ends_line = data.endswith((b"\n", b"\r"))


def _unread_bytes(read_end: int) -> int:
    count = array.array("i", [0])
    try:
        fcntl.ioctl(read_end, termios.FIONREAD, count)
    except OSError:
        return 0  # closed: nothing more will come
    return count[0]


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass  # where it went is gone: the file still keeps it
