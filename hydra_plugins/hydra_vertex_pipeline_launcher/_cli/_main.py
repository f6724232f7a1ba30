"""`hydra-vertex-pipeline status|attach|cancel DIR`: the runs recorded in a sweep dir.

DIR is a sweep dir (every run recorded in it: an Optuna sweep records one per batch), a single
run's dir, or one run's own record dir `<DIR>/vertex_pipeline/<run id>`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from .._launch._record import RecordError, RunRecord, attach_command, find_runs, read, read_all
from .._launch._report import first_line as _first_line
from .._launch._report import parse_time as _parse
from .._launch._report import write_report

if TYPE_CHECKING:
    from .._backends._base import RunStatus, TaskStatus

# Exit statuses: 0 done (status, attach: every job succeeded), 1 not (status: every job ended,
# some did not succeed), 2 nothing to act on, 3 (status) some job has not ended or not been
# collected yet; 130 interrupted (Ctrl-C), 141 the reader of its output went away.
OK, NOT_OK, NO_RUN, NOT_ENDED = 0, 1, 2, 3
INTERRUPTED, CLOSED_PIPE = 130, 141
EXIT_STATUSES = """\
exit status:
  status   0 every job succeeded and is collected; 1 every job ended, some failed or were
           cancelled; 3 some job is still pending or running, or ended but not collected yet
  attach   0 every job succeeded and is collected; 1 not
  cancel   0 the cancel was confirmed (or the run had ended); 1 not
  all      2 no readable run record in DIR; 130 interrupted (Ctrl-C)"""
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
# How long `cancel` waits for a local run's launcher to cancel it (its steps get 5 s).
LOCAL_CANCEL_SECONDS = 30.0
PACKAGE_LOGGER = "hydra_plugins.hydra_vertex_pipeline_launcher"


@dataclass(frozen=True)
class Row:
    num: int
    dir: str
    overrides: str
    state: str
    collected: bool
    started: Optional[str]
    ended: Optional[str]
    error: Optional[str]


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at the interpreter's exit
        return code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # `status DIR | head`: the reader has what it wanted; the rest goes nowhere, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_PIPE


def _main(argv: Optional[Sequence[str]]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="[%(asctime)s][%(levelname)s] - %(message)s")
    logging.getLogger(PACKAGE_LOGGER).setLevel(logging.INFO)
    try:
        if args.command == "report":
            return report(Path(args.dir).absolute())
        records = _readable(find_runs(Path(args.dir).absolute()))
    except RecordError as e:
        print(e, file=sys.stderr)
        return NO_RUN
    command = {"status": status, "attach": attach, "cancel": cancel}[args.command]
    return command(records)


def _readable(paths: List[Path]) -> List[RunRecord]:
    """The records that can be read, each unreadable one said; RecordError if none can."""
    records, problems = read_all(paths)
    for problem in problems:
        print(f"Skipped: {problem}", file=sys.stderr)
    if not records:
        raise RecordError(f"No readable run record among {len(paths)}.")
    return records


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hydra-vertex-pipeline",
        description="Show, watch and collect, or cancel the pipeline runs of a Hydra sweep.",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "status": "a row per job; reads Vertex once for a run that has not finished",
        "attach": "watch a run as its launcher does and collect every job not collected yet",
        "cancel": "cancel a run; its unfinished jobs become CANCELLED once Vertex confirms",
        "report": "write DIR/report.html (a page of every job, with a timeline and plots) "
        "and DIR/results.csv, from what DIR records; reads no backend",
    }
    for name, text in helps.items():
        sub = commands.add_parser(
            name,
            help=text,
            description=text,
            epilog=EXIT_STATUSES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("dir", help="a sweep dir, a single run's dir, or one run's record dir")
    return parser


def status(records: List[RunRecord]) -> int:
    rows: List[Row] = []
    for record in records:
        live = _live(record)
        if live is not None:
            record.state = live.state.value  # shown, never written: status only reads
        rows += _rows(record, None if live is None else live.tasks)
    rows = _latest(rows)
    _print_table(rows)
    _print_totals(records, rows)
    if any(row.state not in TERMINAL or not row.collected for row in rows):
        return NOT_ENDED
    return OK if all(row.state == "SUCCEEDED" for row in rows) else NOT_OK


def attach(records: List[RunRecord]) -> int:
    from .._backends._base import RunNotFound
    from . import _attach

    for record in records:
        if record.backend != "vertex":
            print(
                f"{record.run_id} ran on the {record.backend} backend: a local run cannot outlive "
                "its launcher, so there is nothing to attach to. What it left:"
            )
            if not record.finished:
                again = (
                    "run the pipeline again (run_pipeline runs every task)"
                    if record.hand_built
                    else "repeat the sweep with hydra.launcher.resume=true to run the jobs "
                    "that did not succeed"
                )
                print(f"Its launcher ended before the run did; {again}.")
        elif record.finished:
            print(f"{record.run_id}: every job was collected already.")
        else:
            try:
                _attach.attach(record)
            except RunNotFound as e:
                print(e, file=sys.stderr)
            except Exception as e:  # noqa: BLE001 - e.g. Vertex unreadable for minutes
                print(f"Could not watch {record.run_id}: {e!r}", file=sys.stderr)
                print(f"Its run goes on; try again: {attach_command(record.record_dir)}")
    return _summary(_readable([record.path for record in records]))


def _summary(records: List[RunRecord]) -> int:
    rows = _latest([row for record in records for row in _rows(record, None)])
    _print_table(rows)
    _print_totals(records, rows)
    succeeded = all(row.state == "SUCCEEDED" and row.collected for row in rows)
    return OK if succeeded else NOT_OK


def cancel(records: List[RunRecord]) -> int:
    from .._backends._base import CancelOutcome
    from . import _attach

    confirmed = True
    for record in records:
        if record.state in TERMINAL:
            print(f"{record.run_id} had already ended ({record.state}): nothing to cancel.")
        elif record.backend != "vertex":
            confirmed = _cancel_by_launcher(record) and confirmed
        else:
            outcome = _attach.cancel(record)
            confirmed = confirmed and outcome is not None
            if outcome is CancelOutcome.NEVER_CREATED:
                print(f"{record.run_id} was never created: nothing ran, nothing to cancel.")
    _summary(_readable([record.path for record in records]))
    return OK if confirmed else NOT_OK


def _cancel_by_launcher(record: RunRecord) -> bool:
    """A local run runs inside its launcher: SIGTERM to it (its own cancel, as a closed terminal
    would ask), then its record is waited for, within LOCAL_CANCEL_SECONDS. True once it ended."""
    import os
    import signal
    import time

    from .._shared._process_tree import process_identity

    if record.launcher is None:
        print(
            f"{record.run_id} runs on the {record.backend} backend, inside its launcher: "
            "press Ctrl-C there (or send it SIGTERM) to cancel it."
        )
        return False
    pid = int(record.launcher.split("@")[0])
    if process_identity(pid) != record.launcher:
        print(f"{record.run_id}: its launcher is gone, and its steps ended with it.")
        return True
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + LOCAL_CANCEL_SECONDS
    while process_identity(pid) == record.launcher and time.monotonic() < deadline:
        time.sleep(0.1)
    state = read(record.path).state
    if state in TERMINAL:
        print(f"{record.run_id} was cancelled by its launcher (process {pid}): {state}.")
        return True
    print(f"Asked {record.run_id}'s launcher (process {pid}) to cancel it; it has not ended yet.")
    return False


def report(directory: Path) -> int:
    print(write_report(directory))
    return OK


def _live(record: RunRecord) -> Optional[RunStatus]:
    """A vertex run that has not finished, as Vertex reports it now (one read); else None:
    the files say all there is."""
    if record.finished or record.backend != "vertex":
        return None
    from . import _attach

    try:
        return _attach.read_once(record)
    except Exception as e:  # noqa: BLE001 - the files still say what is known
        print(f"Could not read {record.run_id} ({e}); showing its last recorded state.")
        return None


def _rows(record: RunRecord, live: Optional[Dict[str, TaskStatus]]) -> List[Row]:
    from hydra.core.utils import filter_overrides

    rows = []
    for num, entry in sorted(record.jobs.items()):
        saved = _job_status(Path(entry.dir))
        state, started, ended, error = (
            saved.get("state", entry.state),
            saved.get("started"),
            saved.get("ended"),
            saved.get("error"),
        )
        task = None if live is None or entry.collected else live.get(entry.task_name)
        if task is not None:
            state, started = task.state.value, task.started or started
            ended, error = task.ended, task.error or error
        overrides = " ".join(filter_overrides(entry.overrides)) or "(no overrides)"
        if record.hand_built:
            overrides = entry.display_name  # a task of a hand-built pipeline, by its name
        rows.append(Row(num, entry.dir, overrides, state, entry.collected, started, ended, error))
    return rows


def _latest(rows: List[Row]) -> List[Row]:
    """One row per job dir, from the newest run that ran it (records come oldest first): a job
    run again by resume shows once, as it stands."""
    by_dir = {row.dir: row for row in rows}
    return sorted(by_dir.values(), key=lambda row: row.num)


def _job_status(job_dir: Path) -> Dict[str, Optional[str]]:
    from .._shared._layout import JOB_STATUS_FILE

    try:
        loaded: Dict[str, Optional[str]] = json.loads(
            (job_dir / JOB_STATUS_FILE).read_text(encoding="utf-8")
        )
        return loaded
    except (OSError, ValueError):
        return {}


def _print_table(rows: List[Row]) -> None:
    header = ("#", "overrides", "state", "start", "duration", "error")
    cells = [header] + [
        (
            str(row.num),
            row.overrides,
            row.state + ("*" if row.state in TERMINAL and not row.collected else ""),
            _local_time(row.started),
            _duration(row.started, row.ended),
            _first_line(row.error),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def _print_totals(records: List[RunRecord], rows: List[Row]) -> None:
    from .._launch._watch import progress

    print(f"{len(rows)} jobs: {progress([row.state for row in rows])}")
    if any(row.state in TERMINAL and not row.collected for row in rows):
        print(
            "* ended, but its outputs and result are not in its dir yet: "
            f"{attach_command(records[0].record_dir)}"
        )
    for record in records:
        where = record.console_url or f"{record.backend} backend, {record.path}"
        print(f"run {record.run_id} ({record.state}): {where}")


def _local_time(moment: Optional[str]) -> str:
    parsed = _parse(moment)
    return parsed.astimezone().strftime("%Y-%m-%d %H:%M:%S") if parsed else "-"


def _duration(started: Optional[str], ended: Optional[str]) -> str:
    start = _parse(started)
    if start is None:
        return "-"
    end = _parse(ended) or datetime.now(timezone.utc)
    return str(timedelta(seconds=max(0, round((end - start).total_seconds()))))
