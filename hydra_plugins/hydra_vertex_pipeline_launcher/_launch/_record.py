"""The run record (`run.json`): what a pipeline run is, where it is, and how far its jobs got.

Written before the run is created and on every change (through `_watch.StatusFiles`), it holds
enough to rebuild the run's backend and storage in another process: the command line reads it
to show, watch, collect or cancel a run it did not launch.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .._shared._layout import RUNS_DIR
from .._shared._result import RunKey
from ..config import VertexPipelineLauncherConf

RECORD_FILE = "run.json"
# The settings a process needs to reach a recorded run again (the rest only shape a create).
REACH_SETTINGS = (
    "backend",
    "project",
    "location",
    "api_endpoint",
    "staging_root",
    "request_timeout",
    "poll_interval",
    "max_poll_interval",
    "log_upload_interval",
)


class RecordError(ValueError):
    """A directory that holds no readable run record."""


@dataclass
class JobEntry:
    overrides: List[str]
    task_name: str
    display_name: str
    dir: str
    log_name: str  # the job's log file in its dir, `<Hydra job name>.log`
    state: str = "PENDING"
    # True once its outputs and result are in its dir (or it ended with none to fetch); a job
    # whose collect failed (storage unreachable) stays False until `attach` fetches them.
    collected: bool = False
    # A newer run recorded for the same dir (resume ran it again): that run owns the dir, and
    # this one never writes to it again. Set whenever the records are read (read_all).
    superseded_by: Optional[str] = None


@dataclass
class RunRecord:
    path: Path  # this run.json; not stored
    run_id: str
    backend: str
    resource_name: str
    console_url: Optional[str]
    staging_root: str  # the run's own folder: <hydra.launcher.staging_root>/<run_id>
    pipeline_spec: str
    pipeline_name: str
    job_name: str
    settings: Dict[str, Any]  # REACH_SETTINGS, as the launch had them
    created: str
    jobs: Dict[int, JobEntry] = field(default_factory=dict)
    state: str = "PENDING"
    error: Optional[str] = None
    status_reads: int = 0
    updated: Optional[str] = None
    # A pipeline built by hand (components.run_pipeline): its tasks hand back no result; what
    # they leave is their artifacts and logs.
    hand_built: bool = False
    # A local run: its launcher process (_process_tree.process_identity), which `cancel` asks
    # to cancel it; None where it cannot be told apart from a later process with its pid.
    launcher: Optional[str] = None
    # Steps of the run that may run at once (the local backend's lanes); None: no cap.
    max_parallel: Optional[int] = None
    # The key the run's steps seal their results with: a result is trusted only when it matches.
    result_key: str = ""
    # True when the backend refused the run or the launcher stopped before creating it: nothing
    # ran, so the run owns no job dir.
    never_created: bool = False

    @property
    def record_dir(self) -> Path:
        """The sweep dir, or a single run's own dir."""
        return self.path.parent.parent.parent

    @property
    def run_key(self) -> RunKey:
        return RunKey(self.run_id, self.result_key)

    @property
    def finished(self) -> bool:
        """The run ended and every job was collected: nothing more to read or fetch."""
        return self.state in ("SUCCEEDED", "FAILED", "CANCELLED") and all(
            job.collected or job.superseded_by for job in self.jobs.values()
        )


def reach_settings(settings: VertexPipelineLauncherConf) -> Dict[str, Any]:
    return {name: getattr(settings, name) for name in REACH_SETTINGS}


def write(record: RunRecord) -> None:
    """Paths inside the record's dir are stored relative to it: a moved or copied sweep dir
    still leads to its own job dirs."""
    data = asdict(record)
    del data["path"]
    base = record.path.parent
    data["pipeline_spec"] = _relative(data["pipeline_spec"], base)
    data["staging_root"] = _relative(data["staging_root"], base)
    data["jobs"] = {
        str(num): {**job, "dir": _relative(job["dir"], base)} for num, job in data["jobs"].items()
    }
    write_json(record.path, data)


def read(path: Path) -> RunRecord:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        base = path.parent
        jobs = {
            int(num): JobEntry(**{**job, "dir": _absolute(job["dir"], base)})
            for num, job in data.pop("jobs").items()
        }
        data["pipeline_spec"] = _absolute(data["pipeline_spec"], base)
        data["staging_root"] = _absolute(data["staging_root"], base)
        return RunRecord(path=path, jobs=jobs, **data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise RecordError(
            f"{path} is not a run record this version can read ({e!r}); was it written by an "
            "older version of hydra-vertex-pipeline-launcher?"
        ) from e


def _relative(location: str, base: Path) -> str:
    """A local path inside the record's dir's parent (the sweep dir's vertex_pipeline/... or
    the sweep dir's jobs), relative to the record's dir; anything else (gs://...) as it is."""
    if "://" in location or not os.path.isabs(location):
        return location
    record_dir = base.parent.parent
    inside = Path(location) == record_dir or record_dir in Path(location).parents
    return os.path.relpath(location, base) if inside else location


def _absolute(location: str, base: Path) -> str:
    if not isinstance(location, str):
        raise TypeError(f"{location!r} is not a path")
    if "://" in location:
        return location
    return os.path.normpath(location if os.path.isabs(location) else base / location)


def read_all(paths: List[Path]) -> Tuple[List[RunRecord], List[str]]:
    """The records that can be read, and why each other one cannot: one bad record does not
    hide the others. Each job dir belongs to the newest record that names it (records come
    oldest first): older ones are marked superseded for it."""
    records: List[RunRecord] = []
    problems: List[str] = []
    for path in paths:
        try:
            records.append(read(path))
        except RecordError as e:
            problems.append(str(e))
    owner: Dict[str, str] = {}
    for record in reversed(records):
        if record.never_created:
            continue
        for entry in record.jobs.values():
            newer = owner.setdefault(entry.dir, record.run_id)
            entry.superseded_by = newer if newer != record.run_id else None
    return records, problems


def find_runs(directory: Path) -> List[Path]:
    """The run records a dir stands for, oldest first: a run's own record dir means that run; a
    sweep dir (or a single run's dir) means every run recorded in it, e.g. one per batch of an
    Optuna sweep."""
    if (directory / RECORD_FILE).is_file():
        return [directory / RECORD_FILE]
    found = sorted((directory / RUNS_DIR).glob(f"*/{RECORD_FILE}"))
    if not found:
        raise RecordError(
            f"No pipeline run is recorded in {directory}: give a sweep dir (hydra.sweep.dir), a "
            f"single run's dir (hydra.run.dir), or one of their {RUNS_DIR}/<run id> dirs."
        )
    return sorted(found, key=_created)


def _created(path: Path) -> str:
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("created", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def write_json(path: Path, data: Dict[str, Any]) -> None:
    """Whole or not at all: a reader in another process never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def attach_command(record_dir: Path) -> str:
    """The command that watches and collects the runs recorded in record_dir."""
    return f"hydra-vertex-pipeline attach {shlex.quote(str(record_dir))}"
