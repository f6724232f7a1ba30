"""The step refuses what the launcher did not stage, and says why through its result."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import List

import cloudpickle

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._collect import load_value
from hydra_plugins.hydra_vertex_pipeline_launcher._shared._result import new_key, unseal
from hydra_plugins.hydra_vertex_pipeline_launcher._step import _entry

KEY = new_key()


def _step_args(run_root: Path, shared_digest: str, python: str) -> List[str]:
    return [
        "--run-root",
        str(run_root),
        "--shared-digest",
        shared_digest,
        "--job",
        "0",
        "--job-digest",
        "0" * 64,
        "--python",
        python,
        "--result-key",
        KEY,
    ]


def _result_error(run_root: Path) -> BaseException:
    result = unseal((run_root / "jobs" / "0" / "result.pkl").read_bytes(), KEY)
    error: BaseException = load_value(result)
    assert result.traceback
    return error


def test_a_payload_whose_digest_differs_is_refused_before_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    # Unpickling this would create the marker file: the step must not get that far.
    payload = cloudpickle.dumps(_Tripwire(str(marker)))
    (tmp_path / "shared.pkl").write_bytes(payload)
    staged_digest = hashlib.sha256(b"what the launcher staged").hexdigest()

    exit_code = _entry.main(_step_args(tmp_path, staged_digest, _remote_python()))

    assert exit_code == 1
    assert "refusing it" in str(_result_error(tmp_path))
    assert not marker.exists()
    assert not (tmp_path / "jobs" / "0" / "output").exists(), "no job ran, so nothing to mirror"


def test_an_image_with_another_python_is_named(tmp_path: Path) -> None:
    exit_code = _entry.main(_step_args(tmp_path, "0" * 64, "2.7"))
    assert exit_code == 1
    assert "build the image from python:2.7" in str(_result_error(tmp_path))


def _remote_python() -> str:
    import sys

    return f"{sys.version_info.major}.{sys.version_info.minor}"


class _Tripwire:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path(self.path).touch, ())
