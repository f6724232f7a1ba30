"""The step refuses what the launcher did not stage, and says why through its result."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, List

import pytest

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._collect import load_value
from hydra_plugins.hydra_vertex_pipeline_launcher._shared import _payload
from hydra_plugins.hydra_vertex_pipeline_launcher._shared._result import new_key, unseal
from hydra_plugins.hydra_vertex_pipeline_launcher._step import _entry

KEY = new_key()


def _step_args(run_root: Path, digests: Dict[str, str], python: str) -> List[str]:
    return [
        "--run-root",
        str(run_root),
        "--shared-digest",
        digests["shared"],
        "--job",
        "0",
        "--job-digest",
        digests["job"],
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


@pytest.mark.parametrize("staged_digest", ["0" * 64, "f" * 64])  # below and above any other
@pytest.mark.parametrize("tampered", ["shared", "job"])
def test_a_payload_whose_digest_differs_is_refused_before_unpickling(
    tmp_path: Path, tampered: str, staged_digest: str
) -> None:
    """Each payload is written as the launcher stages it (compressed), so a step that loaded it
    unchecked, or checked it after loading, would trip the wire."""
    marker = tmp_path / "unpickled"
    harmless = _payload.dumps({"nothing": None})
    tripwire = _payload.dumps({"trip": _Tripwire(str(marker))})
    staged = {"shared": harmless, "job": harmless}
    stored = {**staged, tampered: tripwire}
    (tmp_path / "shared.pkl").write_bytes(stored["shared"])
    (tmp_path / "jobs" / "0").mkdir(parents=True)
    (tmp_path / "jobs" / "0" / "payload.pkl").write_bytes(stored["job"])
    digests = {part: hashlib.sha256(data).hexdigest() for part, data in staged.items()}
    digests[tampered] = staged_digest

    exit_code = _entry.main(_step_args(tmp_path, digests, _remote_python()))

    assert exit_code == 1
    error = str(_result_error(tmp_path))
    assert "refusing it" in error
    assert ("payload.pkl" if tampered == "job" else "shared.pkl") in error
    assert not marker.exists()
    assert not (tmp_path / "jobs" / "0" / "output").exists(), "no job ran, so nothing to mirror"


def test_an_image_with_another_python_is_named(tmp_path: Path) -> None:
    exit_code = _entry.main(_step_args(tmp_path, {"shared": "0" * 64, "job": "0" * 64}, "2.7"))
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
