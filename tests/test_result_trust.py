"""One job's result cannot touch another's: a result that cannot be loaded fails its own job
only, and a result the run's own step did not seal is refused before anything in it is loaded,
in the launcher and in `attach`."""

from __future__ import annotations

import os
import pickle
import traceback
from pathlib import Path
from typing import Any, Dict, List

import pytest
from apputil import APPS, read_json, run_app
from cliutil import run_cli
from fake_vertex import FakeVertex
from hydra.core.utils import JobStatus
from test_command_mode import COMMAND
from test_job_faults import LOCAL, TESTS_DIR, VERTEX, _launch
from vertexutil import only_job, vertex_overrides

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._collect import (
    RemoteJobError,
    load_value,
)
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._record import find_runs, read
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._resume import verified
from hydra_plugins.hydra_vertex_pipeline_launcher._shared._result import (
    MAGIC,
    ResultRefused,
    _mac,
    new_key,
    peek_run_id,
    plain_from_pickle,
    seal,
    unseal,
)

IMAGE_ONLY = str(APPS / "image_only")
# Each job's fault (faults.py), by job number.
UNLOADABLE = ["http", "cancelled", "imageonly", "none"]


def _step_path() -> str:
    """The steps' PYTHONPATH: the tests (for apps.faults) and a module the launcher lacks."""
    return f"'{os.pathsep.join([TESTS_DIR, IMAGE_ONLY])}'"


def _kept_value(sweep: Path, num: int) -> Any:
    """A job's value as kept in its dir, its seal checked with its run's key."""
    return load_value(verified((sweep / str(num) / "vertex_result.pkl").read_bytes(), sweep))


def _check_unloadable(sweep: Path, log_name: str) -> Dict[str, str]:
    """Each job kept its outputs and log and ended as it should; its error, by fault."""
    errors = {}
    for num, fault in enumerate(UNLOADABLE):
        job_dir = sweep / str(num)
        assert (job_dir / "before.txt").read_text() == f"fault={fault}\n"
        assert f"job with fault={fault} starts" in (job_dir / log_name).read_text()
        status = read_json(job_dir / "vertex_status.json")
        assert status["state"] == ("SUCCEEDED" if fault == "none" else "FAILED"), status
        errors[fault] = status["error"]
    assert errors["http"].startswith("urllib.error.HTTPError: HTTP Error 503: Service Unavailable")
    assert "its exception could not be loaded here" in errors["http"]
    assert 'raise urllib.error.HTTPError(url, 503, "Service Unavailable"' in errors["http"]
    raised = "the job raised asyncio.exceptions.CancelledError: stopped while waiting for data"
    assert raised in errors["cancelled"]
    # As Hydra's basic launcher leaves it (#18): the job's own log holds no traceback.
    assert "Traceback" not in (sweep / "1" / log_name).read_text()
    assert "but its return value could not be loaded here" in errors["imageonly"]
    assert "No module named 'imageonly'" in errors["imageonly"]
    assert _kept_value(sweep, 3) == 30
    return errors


def test_results_that_cannot_be_loaded_fail_only_their_own_jobs_locally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "m"
    settings = [
        LOCAL,
        f"hydra.sweep.dir={sweep}",
        "hydra.launcher.local.max_parallel=4",
        f"+hydra.launcher.env.PYTHONPATH={_step_path()}",
    ]
    jobs = [[f"+fault={fault}", f"+x={x}"] for x, fault in enumerate(UNLOADABLE)]

    http, cancelled, imageonly, healthy = _launch(settings, jobs)

    _check_unloadable(sweep, "f.log")
    assert healthy.status is JobStatus.COMPLETED and healthy.return_value == 30
    assert all(r.status is JobStatus.FAILED for r in (http, cancelled, imageonly))
    assert isinstance(http._return_value, RemoteJobError)
    assert "HTTPError: HTTP Error 503: Service Unavailable" in str(http._return_value)
    # It carries the step's frames, as Hydra prints them (#18): where the app raised.
    frames = traceback.extract_tb(http._return_value.__traceback__)
    assert any(f.filename.endswith("faults.py") and f.name == "task" for f in frames), frames

    again = _launch([*settings, "hydra.launcher.resume=true"], jobs)
    assert again[3].status is JobStatus.COMPLETED and again[3].return_value == 30
    assert [r.status for r in again[:3]] == [JobStatus.FAILED] * 3
    _check_unloadable(sweep, "f.log")


def test_results_that_cannot_be_loaded_fail_only_their_own_jobs_on_vertex(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "m"
    args = [
        "-m",
        "+fault=" + ",".join(UNLOADABLE),
        "+x=3",
        VERTEX,
        f"hydra.sweep.dir={sweep}",
        *vertex_overrides(fake_vertex, gcs_bucket),
        f"+hydra.launcher.env.PYTHONPATH={_step_path()}",
    ]
    proc = run_app("faults.py", args, tmp_path)
    assert proc.returncode != 0
    # Hydra's basic sweeper raises the first failed job's error: the launcher did not die.
    assert "RemoteJobError: job #0: urllib.error.HTTPError: HTTP Error 503" in proc.stderr
    _check_unloadable(sweep, "faults.log")

    proc = run_app("faults.py", [*args, "hydra.launcher.resume=true"], tmp_path)
    # Hydra's basic sweeper raises the first failed job's error: the launcher did not die.
    assert "RemoteJobError: job #0: urllib.error.HTTPError: HTTP Error 503" in proc.stderr
    assert "1 of 4 jobs succeeded in an earlier run" in proc.stdout, proc.stdout
    _check_unloadable(sweep, "faults.log")
    assert len(fake_vertex.jobs) == 2


def test_a_base_exception_in_command_mode_is_named_and_keeps_the_jobs_files(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "m"
    args = ["-m", "+fault=cancelled", "+x=1", LOCAL, COMMAND, f"hydra.sweep.dir={sweep}"]
    proc = run_app("faults.py", args, tmp_path)
    assert proc.returncode != 0
    status = read_json(sweep / "0" / "vertex_status.json")
    assert status["state"] == "FAILED"
    assert "CancelledError: stopped while waiting for data" in status["error"]
    assert (sweep / "0" / "before.txt").read_text() == "fault=cancelled\n"
    assert "job with fault=cancelled starts" in (sweep / "0" / "faults.log").read_text()


def _forging_args(fake: FakeVertex, bucket: str, sweep: Path, marker: Path) -> List[str]:
    return [
        "-m",
        "+fault=forge,none",
        "+x=1",
        f"+marker={marker}",
        VERTEX,
        f"hydra.sweep.dir={sweep}",
        *vertex_overrides(fake, bucket),
        f"+hydra.launcher.env.PYTHONPATH={_step_path()}",
    ]


def _check_refused(sweep: Path, marker: Path) -> None:
    assert not marker.exists(), "the forged result ran its command on this machine"
    forged = read_json(sweep / "0" / "vertex_status.json")
    assert forged["state"] == "FAILED"
    assert "its result was refused and not loaded" in forged["error"]
    assert "its seal does not match the run's key" in forged["error"]
    assert not (sweep / "0" / "vertex_result.pkl").exists()
    assert read_json(sweep / "1" / "vertex_status.json")["state"] == "SUCCEEDED"
    assert _kept_value(sweep, 1) == 10


def test_a_forged_result_runs_nothing_in_the_launcher(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep, marker = tmp_path / "m", tmp_path / "forged-result-ran"
    proc = run_app("faults.py", _forging_args(fake_vertex, gcs_bucket, sweep, marker), tmp_path)
    assert proc.returncode != 0
    _check_refused(sweep, marker)


def test_a_forged_result_runs_nothing_in_attach(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep, marker = tmp_path / "m", tmp_path / "forged-result-ran"
    args = [*_forging_args(fake_vertex, gcs_bucket, sweep, marker), "hydra.launcher.wait=false"]
    proc = run_app("faults.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    fake_vertex.wait_for_state(only_job(fake_vertex), ["SUCCEEDED", "FAILED"], timeout=120)

    attached = run_cli("attach", str(sweep))
    assert attached.returncode == 1, attached.stdout
    _check_refused(sweep, marker)
    assert "its result was refused" in attached.stdout


def test_only_a_result_sealed_with_the_run_key_is_read() -> None:
    key = new_key()
    header = {
        "run_id": "r",
        "job": 0,
        "status": "COMPLETED",
        "traceback": "",
        "attempt": 1,
        "ran_in_output_dir": False,
        "upload_error": None,
        "overrides": ["+x=1"],
        "warnings": [],
        "value": {"json": [1, "a", None]},
    }
    sealed = seal(header, b"", key)
    assert load_value(unseal(sealed, key)) == [1, "a", None]
    for refused in (
        sealed[:-3],  # cut short
        sealed.replace(b"+x=1", b"+x=2"),  # changed
        seal(header, b"", new_key()),  # another run's key
        seal({**header, "status": None}, b"", key),  # sealed, but not whole
        seal({k: v for k, v in header.items() if k != "attempt"}, b"", key),
    ):
        with pytest.raises(ResultRefused):
            unseal(refused, key)


def test_the_steps_seal_reaches_them_through_the_spec_not_the_bucket(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    from google.cloud import storage

    sweep = tmp_path / "m"
    args = ["-m", "+fault=none", "+x=1,2", VERTEX, f"hydra.sweep.dir={sweep}"]
    proc = run_app("faults.py", [*args, *vertex_overrides(fake_vertex, gcs_bucket)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (record,) = [read(path) for path in find_runs(sweep)]
    key = record.result_key.encode()
    assert key in (record.path.parent / "pipeline.yaml").read_bytes()
    for blob in storage.Client().bucket(gcs_bucket).list_blobs():
        assert key not in blob.download_as_bytes(), blob.name


def test_a_plain_value_travels_without_pickle() -> None:
    assert plain_from_pickle(pickle.dumps({"a": [1, 2.5, None, True]})) == {
        "json": {"a": [1, 2.5, None, True]}
    }
    for other in ((1, 2), {1: "a"}, JobStatus.COMPLETED, _RunsCommand()):
        assert plain_from_pickle(pickle.dumps(other)) == {"pickle": True}


class _RunsCommand:
    def __reduce__(self) -> Any:
        return os.system, ("exit 1",)


def test_the_run_a_result_names_is_read_from_json_only() -> None:
    header = {
        "run_id": "run-7",
        "job": 0,
        "status": "FAILED",
        "traceback": "",
        "attempt": 1,
        "ran_in_output_dir": False,
        "upload_error": None,
        "overrides": None,
        "warnings": [],
        "value": {"pickle": True},
    }
    # The pickle after the header is never read to find the run.
    assert peek_run_id(seal(header, pickle.dumps(ValueError("x")), new_key())) == "run-7"
    for unreadable in (
        b"",
        MAGIC,
        MAGIC + b"mac\nnot json\n",
        MAGIC + b"mac\n[1, 2]\n",
        MAGIC + b'mac\n{"run_id": 3}\n',
    ):
        assert peek_run_id(unreadable) == ""


def test_a_sealed_header_that_is_not_json_is_refused() -> None:
    key = new_key()
    body = b"not json\n"
    with pytest.raises(ResultRefused, match="not JSON"):
        unseal(MAGIC + _mac(key, body) + b"\n" + body, key)
