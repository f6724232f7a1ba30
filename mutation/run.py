"""Mutation testing of what guards users' data and money, with cosmic-ray.

    pip install ".[test,mutation]"
    python mutation/run.py            # every target; rewrites mutation/REPORT.md
    python mutation/run.py --smoke    # the smallest target only (CI runs this)
    python mutation/run.py --only labels

Each target names a module, the functions in it that guard something (only their mutants
run), and the tests that should catch a change there. cosmic-ray mutates the module on disk,
one mutant at a time, and runs those tests; the tests' own subprocesses see the mutant because
this checkout comes first on PYTHONPATH. A mutant the tests do not kill survives: REPORT.md
lists each, with its diff and, from explained.toml, why it may stay (or that it must be killed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGE = ROOT / "hydra_plugins" / "hydra_vertex_pipeline_launcher"
PYTEST = f"{sys.executable} -m pytest -x -q -p no:cacheprovider"


@dataclass(frozen=True)
class Target:
    name: str
    module: str
    functions: Tuple[str, ...]
    tests: str
    timeout: float = 300.0


TARGETS = [
    Target(
        "digest",
        "_shared/_payload.py",
        ("read_checked",),
        "tests/test_remote_step.py tests/test_staged_overrides.py",
        90,
    ),
    Target(
        "labels",
        "_backends/_vertex.py",
        ("vertex_labels", "_label_text", "_label_key"),
        "tests/test_vertex_guards.py -k labels",
    ),
    Target(
        "result seal",
        "_shared/_result.py",
        ("unseal", "peek_run_id", "plain_from_pickle"),
        "tests/test_result_trust.py -k 'sealed or plain_value or json_only or not_json'",
    ),
    Target(
        "attempts note",
        "_launch/_collect.py",
        ("failure",),
        "tests/test_retries.py -k 'only_attempt or says_it_was_the_last'",
    ),
    Target(
        "resume",
        "_launch/_resume.py",
        ("kept_returns",),
        "tests/test_resume.py -k only_the_job_that_failed",
    ),
    Target(
        "time limit",
        "_step/_handback.py",
        ("stop_at_time_limit", "stop_at_deadline"),
        "tests/test_job_faults.py -k time_limit_holds_on_vertex",
    ),
    Target("give up", "_launch/_watch.py", ("_read",), "tests/test_vertex_guards.py -k gives_up"),
    Target(
        "signals",
        "_launch/_signals.py",
        ("_interrupt", "interrupt", "unraisable", "raise_pending", "_signal_handlers"),
        "tests/test_signals.py tests/test_vertex_guards.py -k 'sighup or second_signal or signal'",
    ),
]


@dataclass(frozen=True)
class Survivor:
    target: str
    function: str
    operator: str
    line: int
    diff: str

    @property
    def key(self) -> str:
        """Stable across runs while the code stands: what explained.toml is keyed by."""
        return f"{self.target}:{self.function}:{self.operator}:{self.line}"


def _config(target: Target) -> str:
    return (
        "[cosmic-ray]\n"
        f'module-path = "{PACKAGE / target.module}"\n'
        f"timeout = {target.timeout}\n"
        "excluded-modules = []\n"
        f'test-command = "{PYTEST} {target.tests}"\n'
        '\n[cosmic-ray.distributor]\nname = "local"\n'
    )


def _run_target(target: Target, scratch: Path) -> Tuple[int, int, List[Survivor]]:
    """(mutants run, killed, survivors) of the target's functions."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    config, session = scratch / "cr.toml", scratch / "session.sqlite"
    config.write_text(_config(target))
    subprocess.run(["cosmic-ray", "init", str(config), str(session)], check=True)
    with use_db(str(session)) as db:
        for item in db.work_items:
            if not {m.definition_name for m in item.mutations} & set(target.functions):
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
    # This checkout first: the tests' app subprocesses import the mutant, not an installed copy.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    subprocess.run(["cosmic-ray", "exec", str(config), str(session)], check=True, cwd=ROOT, env=env)
    return _results(target, str(session))


def _results(target: Target, session: str) -> Tuple[int, int, List[Survivor]]:
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    ran, killed, survivors = 0, 0, []
    with use_db(session) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome is WorkerOutcome.SKIPPED:
                continue
            ran += 1
            if result.test_outcome is not TestOutcome.SURVIVED:
                killed += 1
                continue
            (mutation,) = item.mutations
            survivors.append(
                Survivor(
                    target.name,
                    str(mutation.definition_name),
                    mutation.operator_name,
                    mutation.start_pos[0],
                    result.diff or "",
                )
            )
    return ran, killed, survivors


def _report(rows: List[Tuple[Target, int, int]], survivors: List[Survivor]) -> str:
    explained: Dict[str, str] = tomllib.loads((HERE / "explained.toml").read_text())
    lines = [
        "# Mutation testing: what guards users' data and money",
        "",
        "Written by `python mutation/run.py` (cosmic-ray); do not edit by hand. Each target's",
        "functions are mutated one change at a time and its tests run against each mutant.",
        "",
        "| target | module | functions | mutants | killed | survived |",
        "|---|---|---|---|---|---|",
    ]
    for target, ran, killed in rows:
        functions = ", ".join(f"`{f}`" for f in target.functions)
        lines.append(
            f"| {target.name} | `{target.module}` | {functions} | {ran} | {killed} | "
            f"{ran - killed} |"
        )
    lines += ["", "## Survivors", ""]
    if not survivors:
        lines.append("None: every mutant of every target was killed by its tests.")
    for survivor in survivors:
        why = explained.get(
            survivor.key, "NOT EXPLAINED: kill it with a test, or say why it may stay"
        )
        lines += [f"### `{survivor.key}`", "", why, "", "```diff", survivor.diff.strip(), "```", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the digest target only; no report")
    parser.add_argument("--only", help="one target by name; no report")
    args = parser.parse_args()
    chosen = [t for t in TARGETS if args.only in (None, t.name)]
    chosen = chosen[:1] if args.smoke else chosen
    rows, survivors = [], []
    for target in chosen:
        with tempfile.TemporaryDirectory() as scratch:
            ran, killed, lost = _run_target(target, Path(scratch))
        print(f"{target.name}: {ran} mutants, {killed} killed, {len(lost)} survived")
        rows.append((target, ran, killed))
        survivors += lost
    unexplained = [s for s in survivors if s.key not in _explained_keys()]
    if not (args.smoke or args.only):
        (HERE / "REPORT.md").write_text(_report(rows, survivors))
    for survivor in unexplained:
        print(f"unexplained survivor: {survivor.key}\n{survivor.diff}")
    return 1 if unexplained or not rows[0][1] else 0


def _explained_keys() -> set:
    return set(tomllib.loads((HERE / "explained.toml").read_text()))


if __name__ == "__main__":
    sys.exit(main())
