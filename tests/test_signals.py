"""The signal handling of a launch, in this process: which interrupt each signal raises, an
interrupt Python swallowed raised again, and the handlers put back as they were."""

from __future__ import annotations

import signal
import sys
import threading
from types import SimpleNamespace
from typing import Any, List

import pytest

from hydra_plugins.hydra_vertex_pipeline_launcher._launch import _signals
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._signals import (
    StopSignal,
    raise_pending,
    shielded_from_signals,
    signals_as_interrupt,
)


def test_ctrl_c_raises_keyboardinterrupt_and_the_others_their_stop_signal() -> None:
    with signals_as_interrupt():
        with pytest.raises(KeyboardInterrupt) as ctrl_c:
            signal.getsignal(signal.SIGINT)(int(signal.SIGINT), None)  # as the OS passes it
        assert not isinstance(ctrl_c.value, StopSignal)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            with pytest.raises(StopSignal) as stop:
                signal.getsignal(signum)(int(signum), None)
            assert stop.value.signum == signum


def test_an_interrupt_python_swallowed_is_raised_again_and_hidden() -> None:
    said: List[Any] = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = said.append
    try:
        with signals_as_interrupt():
            raise_pending()  # nothing pending: nothing raised
            with pytest.raises(StopSignal):
                signal.getsignal(signal.SIGTERM)(int(signal.SIGTERM), None)
            swallowed = SimpleNamespace(exc_type=StopSignal)
            sys.unraisablehook(swallowed)  # what Python does with it in a weakref callback
            other = SimpleNamespace(exc_type=ValueError)
            sys.unraisablehook(other)
            with pytest.raises(StopSignal):
                raise_pending()
            raise_pending()  # raised once
            sys.unraisablehook(SimpleNamespace(exc_type=KeyboardInterrupt))  # none pending now
        assert said == [other, said[1]] and said[1].exc_type is KeyboardInterrupt
    finally:
        sys.unraisablehook = previous_hook
    assert not _signals._pending


def test_the_handlers_are_put_back_and_other_threads_are_left_alone() -> None:
    before = {signum: signal.getsignal(signum) for signum in _signals.STOP_SIGNALS}
    with signals_as_interrupt():
        with shielded_from_signals():
            assert all(signal.getsignal(s) is signal.SIG_IGN for s in _signals.STOP_SIGNALS)
    assert {signum: signal.getsignal(signum) for signum in _signals.STOP_SIGNALS} == before
    errors: List[BaseException] = []

    def elsewhere() -> None:
        try:
            with signals_as_interrupt(), shielded_from_signals():
                pass
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert errors == []
