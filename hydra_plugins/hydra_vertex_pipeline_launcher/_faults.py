"""How a job ended when it did not return or raise on its own: raised in the step, unpickled by
the launcher (importable by name on both sides, unlike the step's `__main__`)."""

from __future__ import annotations


class JobExited(RuntimeError):
    """The task called sys.exit (or raised SystemExit) with a failing status."""


class JobTimedOut(TimeoutError):
    """The job ran past hydra.launcher.timeout; its step stopped it."""
