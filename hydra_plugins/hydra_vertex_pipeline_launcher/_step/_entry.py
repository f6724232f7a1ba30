"""The step: what each pipeline task runs.

`python -m hydra_plugins.hydra_vertex_pipeline_launcher._step._entry` in the container, in one of
two modes (--execution): `payload` fetches and checks the job's pickled payload and runs its task
here; `command` runs the app's own command (after `--`) with the job's overrides, as staged (their
digest in --job-digest). Either way the step hands back the job's output dir and result
through the staging root, also when the task raised or exited, and when it ran past its time
limit (--timeout), and exits non-zero when the job failed.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import List, Optional, Tuple

from hydra.core.utils import JobStatus

from .._shared._process_tree import end_with_starter
from .._shared._storage import Storage, open_storage
from ._console import Console
from ._handback import HandBack, JobRunner, StepOutcome, start_attempt, stop_at_time_limit
from ._secrets import export_secrets

EXECUTION_MODES = ("payload", "command")


def main(argv: Optional[List[str]] = None) -> int:
    # A local step ends with its launcher, and takes what its job started with it.
    end_with_starter(subreaper=True)
    own_args, command = _split_command(sys.argv[1:] if argv is None else argv)
    args = _parse(own_args)
    console = Console().start()
    storage = open_storage(args.run_root, args.request_timeout)
    run_id = args.run_root.rstrip("/").rsplit("/", 1)[-1]
    attempt = start_attempt(storage, args.job)
    hand_back = HandBack(storage, args.job, attempt, args.result_key, run_id, console)
    job = _job_runner(storage, args, command, hand_back)
    if args.timeout:
        stop_at_time_limit(hand_back, args.timeout, job.halt, job.log_error)
    try:
        export_secrets(args.secret_env, args.secret_manager_endpoint, args.request_timeout)
        outcome = job.run()
    except SystemExit:
        raise  # a step ended by a signal, as the signal would have: nothing to hand back
    except BaseException as e:  # noqa: BLE001 - the launcher must learn why, not an exit code
        outcome = StepOutcome(JobStatus.FAILED, e, traceback.format_exc(), ran_in_output_dir=False)
    hand_back.finish(outcome)
    console.discard()
    return 0 if outcome.status is JobStatus.COMPLETED else 1


def _job_runner(
    storage: Storage, args: argparse.Namespace, command: List[str], hand_back: HandBack
) -> JobRunner:
    if args.execution == "command":
        from ._command_job import CommandJob

        return CommandJob(storage, args, command, hand_back)
    from ._payload_job import PayloadJob

    return PayloadJob(storage, args, hand_back)


def _split_command(argv: List[str]) -> Tuple[List[str], List[str]]:
    """The step's own arguments, and the app's command after `--` (which argparse would parse)."""
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1 :]


def _parse(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-root", required=True)
    parser.add_argument("--job", type=int, required=True)
    parser.add_argument("--execution", choices=EXECUTION_MODES, default="payload")
    parser.add_argument("--shared-digest", help="payload: the run's shared payload's SHA-256")
    parser.add_argument(
        "--job-digest", help="the SHA-256 of the job's payload (command: its staged overrides)"
    )
    parser.add_argument(
        "--watch-working-dir",
        action="store_true",
        help="command: name the files the job leaves outside its output dir (in a container)",
    )
    parser.add_argument("--log-upload-interval", type=float, default=15.0)
    parser.add_argument("--request-timeout", type=float, default=120.0)
    parser.add_argument("--python", help="the launcher's Python, major.minor")
    parser.add_argument("--timeout", type=float, help="seconds the job may run; none: no limit")
    parser.add_argument("--result-key", required=True, help="the run's key that seals results")
    parser.add_argument(
        "--secret-env",
        action="append",
        default=[],
        help="NAME=projects/P/secrets/S/versions/V: NAME set from Secret Manager (repeatable)",
    )
    parser.add_argument("--secret-manager-endpoint", default="https://secretmanager.googleapis.com")
    args = parser.parse_args(argv)
    if args.execution == "payload" and not (args.shared_digest and args.job_digest):
        parser.error("payload mode needs --shared-digest and --job-digest")
    if args.execution == "command" and not args.job_digest:
        parser.error("command mode needs --job-digest")
    return args


if __name__ == "__main__":
    sys.exit(main())
