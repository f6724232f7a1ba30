"""The Hydra callback a command-mode step adds to the app's command (`hydra.callbacks`), so the
app itself stays unchanged: it tells the step where the job's outputs are as the job starts,
and, as it ends, hands the step its result. Runs inside the app's process: kept light."""

from __future__ import annotations

import faulthandler
import json
import os
import pickle
import signal
from pathlib import Path
from typing import Any, Dict

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .._shared._app_main import dumps_by_reference
from .._shared._faults import failure_trace, pickle_outcome
from .._shared._overrides import task_overrides
from .._shared._process_tree import end_with_starter

# The dir, set by the step in the command's environment, where the callback leaves its files.
HANDBACK_DIR_ENV = "HYDRA_VERTEX_PIPELINE_HANDBACK_DIR"
STARTED_FILE = "started.json"
RESULT_FILE = "result.pkl"
# The step sends it at the job's time limit: the job's threads' stacks go to its stderr.
STACK_DUMP_SIGNAL = getattr(signal, "SIGUSR1", None)


class HandBackToStep(Callback):
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        handback_dir = os.environ.get(HANDBACK_DIR_ENV)
        if not handback_dir:
            return  # the app run on its own, with this callback left in its config
        if STACK_DUMP_SIGNAL is not None:
            faulthandler.register(STACK_DUMP_SIGNAL, all_threads=True)
        # This process runs in a session of its own: nothing else stops it when its step is
        # killed (a cancel, or the step's launcher dead).
        end_with_starter(subreaper=False)  # the app's own children stay as they were
        output_dir = str(config.hydra.runtime.output_dir)
        started = {
            "output_dir": output_dir,
            "job_name": str(config.hydra.job.name),
            "ran_in_output_dir": os.path.abspath(os.getcwd()) == output_dir,
            "overrides": task_overrides(config),
        }
        _write(Path(handback_dir) / STARTED_FILE, json.dumps(started).encode())

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        handback_dir = os.environ.get(HANDBACK_DIR_ENV)
        if not handback_dir:
            return
        trace = failure_trace(job_return)
        status, value, trace = pickle_outcome(
            job_return.status, job_return._return_value, trace, _dumps
        )
        result: Dict[str, Any] = {"status": status, "value": value, "traceback": trace}
        _write(Path(handback_dir) / RESULT_FILE, pickle.dumps(result))


def _dumps(value: Any) -> bytes:
    """The app's own classes as references to the launcher's `__main__`, as a payload step's."""
    return dumps_by_reference(value)[0]


def _write(path: Path, data: bytes) -> None:
    # Whole or not at all: the step may look at any moment.
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
