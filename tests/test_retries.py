"""Retried steps: each attempt starts clean, the last one's outcome wins, and says it was last."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from apputil import read_json, run_app

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._collect import failure
from hydra_plugins.hydra_vertex_pipeline_launcher._shared._result import SealedResult

LOCAL = "hydra/launcher=vertex_pipeline_local"


def _retried(tmp_path: Path, then: str) -> Path:
    """retried.py, one job, one retry; its sweep dir."""
    sweep = tmp_path / "m"
    args = ["-m", "+x=1", f"+then={then}", f"+board={tmp_path / 'board'}", LOCAL]
    args += [f"hydra.sweep.dir={sweep}", "hydra.launcher.retries=1"]
    run_app("retried.py", args, tmp_path)
    assert sorted(p.name for p in (tmp_path / "board").iterdir()) == ["attempt-1", "attempt-2"]
    return sweep


def test_a_killed_last_attempt_is_not_reported_as_the_first_ones_exception(
    tmp_path: Path,
) -> None:
    sweep = _retried(tmp_path, "kill")
    status = read_json(sweep / "0" / "vertex_status.json")
    assert status["state"] == "FAILED"
    # Not attempt 1's exception (the step console quoted after it holds both attempts).
    first_line = status["error"].splitlines()[0]
    assert first_line.startswith("job #0") and "without a result after 2 attempts" in first_line
    (staged,) = sweep.glob("vertex_pipeline/*/jobs/0")
    assert not (staged / "result.pkl").exists()
    assert not (staged / "output" / "first.txt").exists(), "attempt 1's outputs were cleared"
    # The job dir is the user's: what attempt 1 wrote there stays, as in a rerun.
    assert (sweep / "0" / "first.txt").exists()


def test_a_last_attempt_that_succeeds_wins(tmp_path: Path) -> None:
    sweep = _retried(tmp_path, "succeed")
    status = read_json(sweep / "0" / "vertex_status.json")
    assert status["state"] == "SUCCEEDED" and status["error"] is None
    assert read_json(next(sweep.glob("vertex_pipeline/*/run.json")))["state"] == "SUCCEEDED"


def test_a_failed_last_attempt_says_it_was_the_last(tmp_path: Path) -> None:
    sweep = _retried(tmp_path, "raise")
    status = read_json(sweep / "0" / "vertex_status.json")
    assert status["state"] == "FAILED"
    assert "ValueError: attempt 2 fails too" in status["error"]
    assert "attempt 1 fails" not in status["error"]
    assert "(the last of 2 attempts of its step)" in status["error"]


def test_a_job_that_failed_at_its_only_attempt_has_no_attempts_note() -> None:
    once = SealedResult(
        run_id="r", job=0, status="FAILED", traceback="ValueError: x", attempt=1,
        ran_in_output_dir=False, upload_error=None, overrides=None, warnings=[],
        value={"pickle": True}, pickled=b"",
    )  # fmt: skip
    assert failure(once) == "ValueError: x"
    twice = dataclasses.replace(once, attempt=2)
    assert failure(twice) == "ValueError: x\n(the last of 2 attempts of its step)"
