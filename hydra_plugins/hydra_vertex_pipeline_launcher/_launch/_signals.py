"""The signals that stop a launch: Ctrl-C, SIGTERM and SIGHUP all take Ctrl-C's path (cancel the
run), and none of them stops the cancel request itself half-way."""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from typing import Any, Iterator, List, Sequence

# SIGHUP does not exist on Windows.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
# Signals taken while a run is submitted or watched: Python prints and drops an exception raised
# inside a weakref callback or __del__, so the interrupt a signal raised there is raised again
# by the watch loop (raise_pending).
_pending: List[int] = []


class StopSignal(KeyboardInterrupt):
    """SIGTERM or SIGHUP, taken as Ctrl-C while a run is submitted or watched."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else StopSignal(signum)


@contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal, a killed job) take Ctrl-C's path: cancel the run."""

    def interrupt(signum: int, frame: Any) -> None:
        _pending.append(signum)
        raise _interrupt(signum)

    previous_hook = sys.unraisablehook

    def unraisable(unraisable: Any) -> None:
        # Dropped by Python where it was raised; raise_pending raises it again. Silently.
        if not (issubclass(unraisable.exc_type, KeyboardInterrupt) and _pending):
            previous_hook(unraisable)

    _pending.clear()
    sys.unraisablehook = unraisable
    try:
        with _signal_handlers(STOP_SIGNALS, interrupt):
            yield
    finally:
        sys.unraisablehook = previous_hook
        _pending.clear()


def raise_pending() -> None:
    """The interrupt of a signal taken since the launch began, if it was swallowed."""
    if _pending:
        signum = _pending[0]
        _pending.clear()
        raise _interrupt(signum)


@contextmanager
def shielded_from_signals() -> Iterator[None]:
    """A second Ctrl-C must not stop the cancel request half-way and leave a paid run going.

    Safe to ignore them because every backend's cancel is bounded (by request_timeout, for
    Vertex): the process still ends within seconds.
    """
    with _signal_handlers(STOP_SIGNALS, signal.SIG_IGN):
        yield


@contextmanager
def _signal_handlers(signums: Sequence[int], handler: Any) -> Iterator[None]:
    try:
        previous = {signum: signal.signal(signum, handler) for signum in signums}
    except ValueError:  # not the main thread, where signals do not arrive anyway
        yield
        return
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
