"""The hydra/launcher options: typed from the settings dataclass, extendable by an app's own
option, and cheap for every Hydra app that has the plugin installed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import yaml
from apputil import run_app

PLUGIN = "hydra_plugins.hydra_vertex_pipeline_launcher"


def test_an_apps_own_option_extends_vertex_pipeline_local(tmp_path: Path) -> None:
    proc = run_app(
        "own_launcher.py", ["-m", "x=1,2", f"hydra.sweep.dir={tmp_path / 's'}"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    [spec] = (tmp_path / "s" / "vertex_pipeline").glob("mine-*/pipeline.yaml")
    tasks = yaml.safe_load(spec.read_text())["root"]["dag"]["tasks"].values()
    assert [task["retryPolicy"]["maxRetryCount"] for task in tasks] == [2, 2]
    assert "(local backend)" in proc.stdout


def test_a_setting_of_the_wrong_type_is_refused_naming_it(tmp_path: Path) -> None:
    for option, setting in [
        ("hydra/launcher=vertex_pipeline_local", "hydra.launcher.retries=many"),
        ("hydra/launcher=vertex_pipeline", "hydra.launcher.resources.accelerator_count=x"),
        ("hydra/launcher=mine", "hydra.launcher.spot=maybe"),
    ]:
        sweep = tmp_path / "s"
        args = ["-m", "x=1,2", option, setting, f"hydra.sweep.dir={sweep}"]
        proc = run_app("own_launcher.py", args, tmp_path)
        assert proc.returncode != 0
        name, value = setting.split("=")
        assert f"'{value}'" in proc.stderr and f"full_key: {name}" in proc.stderr, proc.stderr
        assert not sweep.exists(), "refused before anything is written"


def test_the_options_are_listed_where_hydra_lists_a_group(tmp_path: Path) -> None:
    proc = run_app("own_launcher.py", ["hydra/launcher=nope"], tmp_path)
    listed = proc.stderr.split("Available options in 'hydra/launcher':")[1].split("Config")[0]
    # Other installed launchers (joblib, with the bench extra) are listed too.
    assert {"basic", "mine", "vertex_pipeline", "vertex_pipeline_local"} <= set(listed.split())


def test_a_plain_app_runs_only_the_modules_hydra_scans(tmp_path: Path) -> None:
    """Hydra's scan loads every module not named `_*` (`__main__` too) in every app: those alone
    run, and they build no config until an app picks an option."""
    app = tmp_path / "plain.py"
    app.write_text(
        "import sys\nimport hydra\nfrom hydra.core.config_store import ConfigStore\n"
        "@hydra.main(version_base=None, config_path=None)\n"
        "def main(cfg):\n"
        "    print('modules', sorted(m for m in sys.modules if 'vertex_pipeline' in m))\n"
        "    print('stored', sorted(ConfigStore.instance().repo['hydra']['launcher']))\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, str(app), "-m", "+x=1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    said = dict(
        line.split(" ", 1)
        for line in proc.stdout.splitlines()
        if line.startswith(("modules ", "stored "))
    )
    # pkgutil.walk_packages imports each subpackage to look inside: their __init__s are
    # docstrings only (tests/test_layout.py), and Hydra skips their `_`-named modules.
    subpackages = [
        f"{PLUGIN}.{sub}" for sub in ("_backends", "_cli", "_launch", "_shared", "_step")
    ]
    scanned = sorted(
        [
            PLUGIN,
            f"{PLUGIN}.__main__",
            *subpackages,
            # config's error class, kept out of the module Hydra's scan executes again
            f"{PLUGIN}._shared._errors",
            f"{PLUGIN}.components",
            f"{PLUGIN}.config",
            f"{PLUGIN}.vertex_pipeline_launcher",
        ]
    )
    assert said["modules"] == str(scanned)
    stored = ast.literal_eval(said["stored"])
    assert "basic.yaml" in stored, "what Hydra itself stores"
    assert not [name for name in stored if "vertex" in name]
