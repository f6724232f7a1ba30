"""How a job ended when it did not return or raise on its own: raised in the step, unpickled by
the launcher (importable by name on both sides, unlike the step's `__main__`); and how an
outcome is pickled for the launcher, wherever the job ran."""

from __future__ import annotations

import traceback
from typing import Any, Callable, Tuple

import cloudpickle
from hydra.core.utils import JobReturn, JobStatus

# A step's console: what follows this line is the step's full account of how its job failed
# (kept in the step's log and the job's status); the terminal shows the app's part of it instead.
FAILURE_MARK = "[hydra-vertex-pipeline] how the job failed, in full:"


class JobExited(RuntimeError):
    """The task called sys.exit (or raised SystemExit) with a failing status."""


class JobTimedOut(TimeoutError):
    """The job ran past hydra.launcher.timeout; its step stopped it."""


class JobRaisedBaseException(RuntimeError):
    """The task raised a BaseException that is not an Exception (asyncio.CancelledError, say),
    which Hydra's run_job would let end the step without a result."""

    @classmethod
    def naming(cls, error: BaseException) -> "JobRaisedBaseException":
        kind = type(error)
        module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
        name = f"{module}{kind.__qualname__}"
        return cls(f"the job raised {name}: {error}" if str(error) else f"the job raised {name}")


def pickle_outcome(
    status: JobStatus,
    value: Any,
    trace: str,
    dumps: Callable[[Any], bytes] = cloudpickle.dumps,
) -> Tuple[JobStatus, bytes, str]:
    """(status, pickled value, traceback): a value that cannot be pickled fails the job, saying
    so, instead of losing it; a failure always says something."""
    try:
        pickled = dumps(value)
    except Exception as e:  # noqa: BLE001 - an unpicklable value must not lose the job
        what = "exception" if status is JobStatus.FAILED else "return value"
        kind = type(value)
        message = (
            f"the job's {what} (a {kind.__module__}.{kind.__qualname__}) could not be pickled "
            f"back to the launcher: {e!r}"
        )
        status, trace = JobStatus.FAILED, "\n".join(part for part in (trace, message) if part)
        pickled = cloudpickle.dumps(RuntimeError(message))
    if status is not JobStatus.COMPLETED and not trace:
        # e.g. a Hydra callback that set FAILED without an exception: still say something.
        trace = f"the job ended {status.name} with {value!r}"
    return status, pickled, trace


def failure_trace(job_return: JobReturn) -> str:
    """The traceback of a job that raised, for the launcher; "" for one that did not. Not in the
    job's own log: Hydra's run_job leaves it out of that log too."""
    error = job_return._return_value
    if job_return.status is JobStatus.COMPLETED or not isinstance(error, BaseException):
        return ""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))
