"""What a job moves through the staging root: small enough for sweeps of thousands."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import List

from apputil import run_app
from omegaconf import OmegaConf

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._compose import ComposedJob
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._stage import _readable_configs

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


class Color(Enum):
    RED = 1


@dataclass
class Model:
    color: Color = Color.RED
    layers: List[int] = field(default_factory=lambda: [1, 2])


def test_readable_configs_read_as_omegaconf_writes_them() -> None:
    odd_values = {
        "flag_text": "true",
        "number_text": "1e3",
        "int_text": "10",
        "empty": "",
        "nothing": None,
        "accented": "déjà vu ✓",
        "long": "word " * 40,
        "lines": "first\nsecond\n",
        "nested": {"list": [1, "2", {"deep": [True, 1.5]}], "empty_list": [], "empty_dict": {}},
    }
    task = OmegaConf.merge({"model": OmegaConf.structured(Model), "color": Color.RED}, odd_values)
    hydra_node = {"job": {"name": "app", "num": 3}, "mode": "MULTIRUN", **odd_values}
    sweep_config = OmegaConf.merge(task, {"hydra": hydra_node})
    overrides = ["x=1", "+name='quoted value'", "lr=1e-3"]
    job = ComposedJob(3, overrides, sweep_config, Path("/tmp/job"), "#3 x=1")

    staged = _readable_configs(job, job.sweep_config)

    assert staged["jobs/3/config.yaml"].decode() == OmegaConf.to_yaml(task)
    assert staged["jobs/3/hydra.yaml"].decode() == OmegaConf.to_yaml(sweep_config.hydra)
    assert staged["jobs/3/overrides.yaml"].decode() == OmegaConf.to_yaml(overrides)
