"""Submit: the small interface every backend speaks (chosen in _choice.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Dict, Optional, Protocol, Tuple


def utc_now() -> str:
    # Milliseconds: a report's timeline shows local steps that take a fraction of a second.
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class State(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (State.SUCCEEDED, State.FAILED, State.CANCELLED)


class CancelOutcome(str, Enum):
    # The backend accepted the cancel.
    CONFIRMED = "CONFIRMED"
    # The run had ended before the cancel: nothing was cancelled.
    ALREADY_ENDED = "ALREADY_ENDED"
    # There is no run: the launcher stopped before creating it (looked up for a while, since a
    # create in flight when the launcher was interrupted may still land).
    NEVER_CREATED = "NEVER_CREATED"


class RunNotFound(RuntimeError):
    """The backend has no such run (it was never created, or was deleted)."""


@dataclass(frozen=True)
class TaskStatus:
    state: State
    started: Optional[str] = None  # ISO 8601, UTC
    ended: Optional[str] = None
    error: Optional[str] = None
    # Of an ended task, when the backend keeps them apart from this machine (Vertex): its output
    # artifacts as (name, URI), and where its console output is.
    artifacts: Tuple[Tuple[str, str], ...] = ()
    logs: Optional[str] = None


@dataclass(frozen=True)
class RunStatus:
    state: State
    # By the task's name in the compiled pipeline's DAG.
    tasks: Dict[str, TaskStatus] = field(default_factory=dict)
    error: Optional[str] = None


@dataclass(frozen=True)
class RunContext:
    """What a backend knows of the run it submits."""

    run_id: str  # also the Vertex pipeline job id
    pipeline_name: str  # the compiled pipeline's name: runs of one app group under it
    job_name: str  # Hydra's job name
    local_dir: Path  # this run's folder in the sweep dir
    staging_uri: str  # <staging_root>/<run_id>
    # Seals the steps' results (see _shared._result): in the spec and the record, never staged.
    result_key: str = ""

    @property
    def spec_path(self) -> Path:
        """The compiled pipeline, as submitted."""
        return self.local_dir / "pipeline.yaml"

    @property
    def record_path(self) -> Path:
        """The run's status and everything needed to find it again."""
        return self.local_dir / "run.json"

    @property
    def record_dir(self) -> Path:
        """The sweep dir (or a single run's own dir) the run is recorded in."""
        return self.local_dir.parent.parent


@dataclass(frozen=True)
class RunLocation:
    """Where the run is, known before it is created so that it can be recorded first."""

    resource_name: str  # what identifies the run to its backend
    console_url: Optional[str] = None


class PipelineBackend(Protocol):
    # True when steps write straight into the local job dirs (nothing to stream back).
    steps_share_filesystem: bool
    # True when the run goes on after this process ends (and so may be left running).
    outlives_launcher: bool

    location: RunLocation

    def submit(self, spec_path: Path) -> None: ...

    def read_status(self) -> RunStatus:
        """One read of the whole run, all tasks included."""
        ...

    def cancel(self) -> CancelOutcome:
        """Bounded; raises when the cancel cannot be confirmed (the run may still be going)."""
        ...

    def close(self) -> None: ...
