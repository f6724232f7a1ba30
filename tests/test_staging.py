"""What a job moves through the staging root: small enough for sweeps of thousands."""

from __future__ import annotations

from pathlib import Path

from apputil import run_app

LOCAL = "hydra/launcher=vertex_pipeline_local"
# Issue #11: payload, readable configs and result of a trivial job.
TRIVIAL_JOB_BYTES = 12 * 1024


def _moved_bytes(job_dir: Path) -> int:
    """What the launcher staged and the step handed back; its outputs and attempt count aside."""
    kept = ("payload.pkl", "config.yaml", "overrides.yaml", "hydra.yaml", "result.pkl")
    return sum((job_dir / name).stat().st_size for name in kept)


def test_a_trivial_job_moves_at_most_12_kib_through_the_staging_root(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    proc = run_app("flaky.py", ["-m", "+x=1,3", LOCAL, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr

    (run_dir,) = (sweep / "vertex_pipeline").iterdir()
    for num in (0, 1):
        assert _moved_bytes(run_dir / "jobs" / str(num)) <= TRIVIAL_JOB_BYTES
