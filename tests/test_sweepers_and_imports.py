"""Third-party sweepers get real values back; apps that do not use the launcher stay light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

EXAMPLE = Path(__file__).parents[1] / "example_app" / "train.py"
HEAVY = ("kfp", "google.cloud.aiplatform", "google.cloud.storage", "google.cloud.aiplatform_v1")


def _optuna_best(launcher: str, sweep: Path) -> dict:
    subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--config-name",
            "optuna",
            "-m",
            f"hydra/launcher={launcher}",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=sweep.parent,
        check=True,
        capture_output=True,
        timeout=300,
    )
    results: dict = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    return results


def test_optuna_finds_the_same_best_value_as_through_the_basic_launcher(tmp_path: Path) -> None:
    basic = _optuna_best("basic", tmp_path / "basic")
    ours = _optuna_best("vertex_pipeline_local", tmp_path / "ours")
    assert ours["best_value"] == basic["best_value"]
    assert ours["best_params"] == basic["best_params"]
    assert len(list((tmp_path / "ours").glob("*/model.json"))) == 12


def test_an_app_that_does_not_use_the_launcher_imports_no_cloud_library(tmp_path: Path) -> None:
    app = tmp_path / "plain.py"
    app.write_text(
        "import sys\nimport hydra\n"
        "@hydra.main(version_base=None, config_path=None)\n"
        "def main(cfg):\n    print(sorted(m for m in sys.modules if 'vertex_pipeline' in m))\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(app), "-m", "+x=1,2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # Hydra's scan loads plugin modules with exec_module, which -X importtime does not list.
    assert "hydra_plugins.hydra_vertex_pipeline_launcher.config" in proc.stdout, "not scanned"
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "hydra.core.plugins" in imported
    assert not [m for m in imported if m.startswith(HEAVY)]
