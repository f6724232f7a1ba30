"""Where each object of a run lives below `<staging_root>/<run_id>/`, for launcher and step."""

from __future__ import annotations

# Below a sweep dir (or a single run's dir): each run's record, spec and (local) staging root.
RUNS_DIR = "vertex_pipeline"
SHARED_PAYLOAD = "shared.pkl"
# The app's own code (payload mode on Vertex), staged once per run.
APP_CODE = "code.zip"
# Written by the launcher into each local job dir; never part of a step's outputs.
JOB_STATUS_FILE = "vertex_status.json"
# The step's result as collected into the job dir (what resume needs of a finished job).
JOB_RESULT_FILE = "vertex_result.pkl"
# The return value as plain JSON, and the attempts its step took (written when collected).
JOB_VALUE_FILE = "vertex_value.json"
# Names in a job's dir that only the launcher writes: never uploaded from it, nor collected into
# it (a single run's dir is its record dir, holding the runs' records and result keys).
LAUNCHER_OWNED = frozenset({JOB_STATUS_FILE, JOB_RESULT_FILE, JOB_VALUE_FILE, RUNS_DIR})


def job_prefix(num: int) -> str:
    return f"jobs/{num}"


def job_payload(num: int) -> str:
    return f"{job_prefix(num)}/payload.pkl"


def job_command_overrides(num: int) -> str:
    """execution=command: the job's override arguments, as the launcher staged them."""
    return f"{job_prefix(num)}/command_overrides.json"


def job_output(num: int) -> str:
    return f"{job_prefix(num)}/output"


def job_result(num: int) -> str:
    return f"{job_prefix(num)}/result.pkl"


def job_live_log(num: int) -> str:
    return f"{job_prefix(num)}/live.log"


def job_console(num: int) -> str:
    """The step's stdout and stderr, as it last uploaded them."""
    return f"{job_prefix(num)}/console.log"


def job_attempts(num: int) -> str:
    """How many attempts of the job's step have started (Vertex retries a failed step)."""
    return f"{job_prefix(num)}/attempts"
