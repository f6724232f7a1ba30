"""Runs a Hydra app as `python APP ...` does, timing its launcher from the inside.

Usage: python benchmarks/_timed_launch.py RECORD.json APP [app arguments ...]

Writes to RECORD.json the seconds from Hydra handing the launcher its jobs (launch() is called)
until, for Hydra's basic launcher, launch() returns (it composes and runs every job in this
process), and, for the vertex_pipeline launchers, the backend's submit() returns: the run is
then stopped as by Ctrl-C, since what the steps do after that is not the launcher's own cost.
"""

from __future__ import annotations

import functools
import json
import runpy
import sys
import time
from pathlib import Path
from typing import Any, Callable

from hydra.core.plugins import Plugins

from hydra_plugins.hydra_vertex_pipeline_launcher._launch import _flow


class Submitted(KeyboardInterrupt):
    """Ends the launch right after the submit, through the launcher's own Ctrl-C handling."""


def main() -> None:
    record_path = Path(sys.argv[1])
    app = sys.argv[2]
    marks: dict = {}

    def timed_launch(launch: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(launch)
        def launch_timed(*args: Any, **kwargs: Any) -> Any:
            marks["launch"] = time.perf_counter()
            returns = launch(*args, **kwargs)
            _write(record_path, {"launch_seconds": time.perf_counter() - marks["launch"]})
            return returns

        return launch_timed

    def backend_timed(make_backend: Callable[..., Any]) -> Callable[..., Any]:
        def make_timed(*args: Any, **kwargs: Any) -> Any:
            backend = make_backend(*args, **kwargs)
            submit = backend.submit

            def submit_timed(spec_path: Path) -> None:
                submit(spec_path)
                _write(record_path, {"submitted_seconds": time.perf_counter() - marks["launch"]})
                raise Submitted()

            backend.submit = submit_timed
            return backend

        return make_timed

    def launcher_timed(instantiate_launcher: Callable[..., Any]) -> Callable[..., Any]:
        # On the instance: Hydra's plugin scan executes launcher modules anew, classes and all.
        def instantiate_timed(*args: Any, **kwargs: Any) -> Any:
            launcher = instantiate_launcher(*args, **kwargs)
            launcher.launch = timed_launch(launcher.launch)
            return launcher

        return instantiate_timed

    Plugins.instantiate_launcher = launcher_timed(Plugins.instantiate_launcher)
    _flow.make_backend = backend_timed(_flow.make_backend)
    sys.argv = [app, *sys.argv[3:]]
    sys.path.insert(0, str(Path(app).parent))
    try:
        runpy.run_path(app, run_name="__main__")
    except Submitted:
        pass
    except SystemExit as exited:
        # The launcher ends an interrupted launch as after Ctrl-C: cancelled, exit status 130.
        if exited.code != 130 or "submitted_seconds" not in json.loads(record_path.read_text()):
            raise


def _write(path: Path, figures: dict) -> None:
    path.write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
