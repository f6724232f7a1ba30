"""A sweep's report: `report.html` (one self-contained page, see _report_page.py) and
`results.csv` beside it, one row per job.

Everything comes from what the sweep dir records: each run's run.json and compiled
pipeline.yaml (each step's resources), each job dir's vertex_status.json (state and times) and
vertex_value.json (its return value as plain JSON). Nothing is unpickled, and neither the app
nor kfp nor aiplatform is imported: the page can be made anywhere the sweep dir is.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

from .._backends._spec import read_spec
from .._shared._layout import JOB_STATUS_FILE, JOB_VALUE_FILE
from ._record import RunRecord, find_runs, read
from ._watch import WatchedJob

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
RESULTS_FILE = "results.csv"
# Seconds between rewrites of the page while a run goes (and the page's own reload).
LIVE_INTERVAL = 5.0
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
ERROR_WIDTH = 100
TRACEBACK_HEADER = "Traceback (most recent call last)"
# How Python joins the tracebacks of chained exceptions.
CHAINED_EXCEPTION = (
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
)
EXCEPTION_MODULE = re.compile(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*: )")
# The table's own columns; a swept key or a returned key of the same name is prefixed.
FIXED_BEFORE = ("#", "run", "state")
FIXED_AFTER = ("error", "start", "waiting_s", "duration_s", "attempts", "resources")


@dataclass
class JobRow:
    num: int
    run_id: str
    dir: str
    overrides: Dict[str, Any]  # key -> value (a number where it reads as one)
    state: str
    created: Optional[datetime]
    started: Optional[datetime]
    ended: Optional[datetime]
    error: str  # its first line
    attempts: Optional[int]
    resources: str
    values: Dict[str, Any]  # the return value, one entry per column

    @property
    def failed(self) -> bool:
        return self.state in ("FAILED", "CANCELLED")


@dataclass
class Sweep:
    directory: Path
    records: List[RunRecord]
    jobs: List[JobRow]
    swept: List[str]  # override keys that differ between jobs: one column each
    common: List[str]  # overrides every job has
    value_columns: List[str]
    objective: Optional[str]  # the value column the best job is picked by
    maximize: bool
    now: datetime
    best: Optional[int] = None  # its job number
    columns: List[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """A run has not ended: the page reloads itself."""
        return any(record.state not in TERMINAL for record in self.records)

    def cells(self, job: JobRow) -> Dict[str, Any]:
        """The job's row: numbers as numbers, times as ISO 8601, None where unknown."""
        row: Dict[str, Any] = {"#": job.num, "run": job.run_id, "state": job.state}
        row.update({self.swept_column(key): job.overrides.get(key) for key in self.swept})
        row.update({self.value_column(key): job.values.get(key) for key in self.value_columns})
        row.update(
            {
                "error": job.error,
                "start": job.started.isoformat(timespec="milliseconds") if job.started else None,
                "waiting_s": _seconds(job.created, job.started or job.ended or self.now),
                "duration_s": _seconds(job.started, job.ended or self.now),
                "attempts": job.attempts,
                "resources": job.resources,
            }
        )
        return {name: row[name] for name in self.columns}

    def swept_column(self, key: str) -> str:
        return key if key not in FIXED_BEFORE + FIXED_AFTER else f"override.{key}"

    def value_column(self, key: str) -> str:
        taken = FIXED_BEFORE + FIXED_AFTER + tuple(self.swept)
        return key if key not in taken else f"value.{key}"

    @property
    def objective_column(self) -> Optional[str]:
        return None if self.objective is None else self.value_column(self.objective)


def write_report(directory: Path) -> Path:
    """Writes report.html and results.csv into directory (a sweep dir or a single run's dir);
    the page's path."""
    from ._report_page import render

    sweep = gather(directory)
    _write_atomically(directory / RESULTS_FILE, results_csv(sweep))
    page = directory / REPORT_FILE
    _write_atomically(page, render(sweep))
    return page


def gather(directory: Path) -> Sweep:
    records = [read(path) for path in find_runs(directory)]
    by_dir: Dict[str, JobRow] = {}
    for record in records:  # oldest first: a job run again by resume shows as it stands
        resources = _resources(record.path.parent / "pipeline.yaml")
        for num, entry in sorted(record.jobs.items()):
            by_dir[entry.dir] = _job_row(record, num, resources)
    jobs = sorted(by_dir.values(), key=lambda job: job.num)
    swept, common = _swept_keys(jobs)
    value_columns = list(dict.fromkeys(key for job in jobs for key in job.values))
    objective, maximize = _objective(jobs, value_columns, directory)
    sweep = Sweep(
        directory=directory,
        records=records,
        jobs=jobs,
        swept=swept,
        common=common,
        value_columns=value_columns,
        objective=objective,
        maximize=maximize,
        now=datetime.now(timezone.utc),
    )
    sweep.columns = [
        *("#", *(("run",) if len(records) > 1 else ()), *map(sweep.swept_column, swept)),
        "state",
        *map(sweep.value_column, value_columns),
        *FIXED_AFTER,
    ]
    sweep.best = _best(sweep)
    return sweep


def results_csv(sweep: Sweep) -> str:
    """Plain CSV with a header row: pandas.read_csv reads it without options."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(sweep.columns)
    for job in sweep.jobs:
        writer.writerow(["" if v is None else v for v in sweep.cells(job).values()])
    return out.getvalue()


class LiveReport:
    """The page rewritten while a run goes (at most every LIVE_INTERVAL seconds) and once at its
    end; after `then`, the watcher's other per-poll work. A report that cannot be written is
    said once and never fails the run."""

    def __init__(self, directory: Path, then: Optional[Callable[[List[Any]], None]] = None) -> None:
        self.directory = directory
        self.then = then
        self._last = 0.0
        self._warned = False

    def __call__(self, running: List[WatchedJob]) -> None:
        if self.then is not None:
            self.then(running)
        if time.monotonic() - self._last >= LIVE_INTERVAL:
            self.write()

    def write(self) -> None:
        self._last = time.monotonic()
        try:
            write_report(self.directory)
        except Exception as e:  # noqa: BLE001 - the report is a view; the run matters more
            if not self._warned:
                log.warning(f"Could not write the report in {self.directory}: {e!r}")
                self._warned = True


def live_report(
    enabled: bool,
    record_dir: Path,
    watched: List[WatchedJob],
    then: Optional[Callable[[List[WatchedJob]], None]],
) -> Optional[LiveReport]:
    """For a sweep with hydra.launcher.report=true; not for a single run, whose dir is its
    job's own output dir, which a page would clutter."""
    if not enabled or any(job.local_dir == record_dir for job in watched):
        return None
    return LiveReport(record_dir, then)


def _job_row(record: RunRecord, num: int, resources: Dict[str, str]) -> JobRow:
    entry = record.jobs[num]
    status = _read_json(Path(entry.dir) / JOB_STATUS_FILE)
    kept = _read_json(Path(entry.dir) / JOB_VALUE_FILE)
    return JobRow(
        num=num,
        run_id=record.run_id,
        dir=entry.dir,
        overrides=dict(_override(text) for text in entry.overrides if not _is_hydras(text)),
        state=str(status.get("state") or entry.state),
        created=parse_time(status.get("created") or record.created),
        started=parse_time(status.get("started")),
        ended=parse_time(status.get("ended")),
        error=first_line(status.get("error")),
        attempts=kept.get("attempts"),
        resources=resources.get(entry.task_name, ""),
        values=_value_columns(kept.get("value")),
    )


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _is_hydras(override: str) -> bool:
    return override.lstrip("+~").startswith("hydra.")


def _override(text: str) -> Tuple[str, Any]:
    key, _, value = text.partition("=")
    return key.lstrip("+~"), _number(value)


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _value_columns(value: Any) -> Dict[str, Any]:
    """A dict: a column per key; a list (e.g. Optuna's objectives): a column per item."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(key): _cell(item) for key, item in value.items()}
    if isinstance(value, list):
        return {f"value[{i}]": _cell(item) for i, item in enumerate(value)}
    return {"value": _cell(value)}


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, str)):
        return value
    return json.dumps(value)


def _swept_keys(jobs: List[JobRow]) -> Tuple[List[str], List[str]]:
    """Keys whose value differs between jobs (or that some job lacks); the rest are common. A
    sweep of one job shows its keys as columns."""
    keys = list(dict.fromkeys(key for job in jobs for key in job.overrides))
    swept = [
        key for key in keys if len({json.dumps(job.overrides.get(key, "\0")) for job in jobs}) > 1
    ]
    if not swept or len(jobs) == 1:
        return keys, []
    common = [f"{key}={jobs[0].overrides[key]}" for key in keys if key not in swept]
    return swept, common


def _objective(
    jobs: List[JobRow], value_columns: List[str], directory: Path
) -> Tuple[Optional[str], bool]:
    """The value column the best job is picked by (the value itself, Optuna's first objective,
    else a dict's first number), and whether higher is better (the sweeper's direction)."""
    numeric = [key for key in value_columns if any(is_number(job.values.get(key)) for job in jobs)]
    preferred = [key for key in ("value", "value[0]") if key in numeric]
    objective = (preferred or numeric or [None])[0]
    return objective, _direction(directory, jobs) == "maximize"


def _direction(directory: Path, jobs: List[JobRow]) -> str:
    """hydra.sweeper.direction as the sweep recorded it (Optuna's; a list: the first), in
    multirun.yaml or, where the sweeper wrote none (Optuna), a job's .hydra/hydra.yaml."""
    written = [
        directory / "multirun.yaml",
        *(Path(job.dir) / ".hydra" / "hydra.yaml" for job in jobs[:1]),
    ]
    for path in written:
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
            direction = config["hydra"]["sweeper"].get("direction", "minimize")
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
            continue
        if isinstance(direction, list):
            direction = direction[0] if direction else "minimize"
        return "maximize" if "max" in str(direction).lower() else "minimize"
    return "minimize"


def _best(sweep: Sweep) -> Optional[int]:
    if sweep.objective is None:
        return None
    scored = [
        (job.values[sweep.objective], job.num)
        for job in sweep.jobs
        if job.state == "SUCCEEDED" and is_number(job.values.get(sweep.objective))
    ]
    if not scored:
        return None
    pick = max if sweep.maximize else min
    return pick(scored, key=lambda pair: pair[0])[1]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _resources(spec_path: Path) -> Dict[str, str]:
    """Each task's resources or machine as its compiled step asks for them."""
    try:
        return _spec_resources(spec_path, spec_path.stat().st_mtime_ns)
    except OSError:
        return {}


@functools.lru_cache(maxsize=16)
def _spec_resources(spec_path: Path, mtime_ns: int) -> Dict[str, str]:
    """Parsed once per spec, not on each of a live report's rewrites."""
    try:
        spec = read_spec(spec_path)
        tasks = spec["root"]["dag"]["tasks"]
        components = spec.get("components", {})
        executors = spec.get("deploymentSpec", {}).get("executors", {})
        # Described once per component: the jobs of a step shape share theirs.
        described = {
            name: _describe(executors.get(component.get("executorLabel"), {}))
            for name, component in components.items()
        }
        return {
            name: described.get(task.get("componentRef", {}).get("name"), "")
            for name, task in tasks.items()
        }
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return {}


MACHINE_TYPE = re.compile(r"machine_?type\W+([a-z0-9][a-z0-9-]*)", re.IGNORECASE)


def _describe(executor: Dict[str, Any]) -> str:
    """`n1-standard-4`, or `cpu 2, memory 4G, NVIDIA_TESLA_T4 x1`; "" when it asks for none."""
    machine = MACHINE_TYPE.search(json.dumps(executor))
    if machine:
        return machine.group(1)
    resources = executor.get("container", {}).get("resources", {})
    parts = []
    cpu = resources.get("resourceCpuLimit") or resources.get("cpuLimit")
    memory = resources.get("resourceMemoryLimit") or resources.get("memoryLimit")
    if cpu:
        parts.append(f"cpu {cpu}")
    if memory:
        parts.append(f"memory {memory}")
    accelerator = resources.get("accelerator", {})
    kind = accelerator.get("resourceType") or accelerator.get("type")
    if kind:
        count = accelerator.get("resourceCount") or accelerator.get("count") or 1
        parts.append(f"{kind} x{count}")
    return ", ".join(parts)


def first_line(error: Optional[str]) -> str:
    """What went wrong, in one line of at most ERROR_WIDTH characters (see headline)."""
    line = headline(error)
    return line if len(line) <= ERROR_WIDTH else line[: ERROR_WIDTH - 3] + "..."


def headline(error: Optional[str]) -> str:
    """What went wrong, in one line: for a Python traceback, its exception's line, whatever
    follows it (notes, warnings, the attempts it took)."""
    if not error or not error.strip():
        return ""
    lines = error.strip().splitlines()
    line = exception_line(lines) if lines[0].startswith(TRACEBACK_HEADER) else lines[0]
    return EXCEPTION_MODULE.sub("", line.strip())  # mypkg.errors.BadInput: ... -> BadInput: ...


def exception_line(lines: List[str]) -> str:
    """The line that names the exception of a traceback (of its last exception, if chained)."""
    found = lines[-1]
    in_frames = False
    for number, line in enumerate(lines):
        if line.startswith(TRACEBACK_HEADER):
            in_frames = True
        elif in_frames and line.strip() and not line[:1].isspace():
            found, in_frames = line, False
            following = [later for later in lines[number + 1 :] if later.strip()]
            if not following or following[0] not in CHAINED_EXCEPTION:
                break
    return found


def parse_time(moment: Optional[str]) -> Optional[datetime]:
    if not moment:
        return None
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _seconds(start: Optional[datetime], end: Optional[datetime]) -> Optional[float]:
    if start is None or end is None:
        return None
    return max(0.0, round((end - start).total_seconds(), 3))


def _write_atomically(path: Path, text: str) -> None:
    """A browser reloading the page never reads half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
