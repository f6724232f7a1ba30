"""Every way a job can fail names itself, keeps what the job wrote, and leaves the others be."""

from __future__ import annotations

import copy
import os
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Sequence

import pytest
from apputil import APPS, read_json, run_app
from fake_vertex import FakeVertex
from google.cloud import storage
from hydra import version
from hydra._internal.callbacks import Callbacks
from hydra._internal.hydra import Hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, RunMode
from hydra.version import VersionBase
from vertexutil import vertex_overrides

from hydra_plugins.hydra_vertex_pipeline_launcher._shared._faults import JobExited, JobTimedOut

LOCAL = "hydra/launcher=vertex_pipeline_local"
VERTEX = "hydra/launcher=vertex_pipeline"
TESTS_DIR = str(Path(__file__).parent)


def _launch(overrides: List[str], job_overrides: Sequence[Sequence[str]]) -> List[JobReturn]:
    """What a sweeper gets from our launcher for one batch of faults.py's jobs, in-process."""
    # Importing the app runs its @hydra.main(version_base=None), which sets the version base for
    # the whole process: here it holds for this launch only, so later tests (Hydra's own
    # launcher suites) keep the default.
    previous_version_base = copy.copy(VersionBase.instance())
    from apps.faults import task

    version.setbase(None)
    hydra_ = Hydra.create_main_hydra_file_or_module(
        calling_file=str(APPS / "faults.py"), calling_module=None, config_path=None, job_name="f"
    )
    try:
        config = hydra_.compose_config(None, overrides, run_mode=RunMode.MULTIRUN)
        HydraConfig.instance().set_config(config)
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=HydraContext(hydra_.config_loader, Callbacks(config)),
            task_function=task,
            config=config,
        )
        return list(launcher.launch(job_overrides, initial_job_idx=0))
    finally:
        GlobalHydra().clear()
        VersionBase.set_instance(previous_version_base)


def check_faults(sweep: Path, faults: List[str], returns: List[JobReturn]) -> Dict[str, str]:
    """Each fault's job kept what it wrote before its fault, logged to its own log (named after
    the launcher's job name: there the launcher looks), ended as it should and came back to the
    sweeper as it should; its error, by fault."""
    errors = {}
    for num, fault in enumerate(faults):
        job_dir = sweep / str(num)
        assert (job_dir / "before.txt").read_text() == f"fault={fault}\n"
        assert f"job with fault={fault} starts" in (job_dir / "f.log").read_text()
        status = read_json(job_dir / "vertex_status.json")
        errors[fault] = status["error"]
        assert status["state"] == ("SUCCEEDED" if fault == "none" else "FAILED"), fault
    assert "the job exited with status 3" in errors["exit"]
    assert "killed by signal SIGKILL" in errors["kill"]
    assert "the job timed out after 5 s" in errors["hang"]
    assert "the job's return value (a _thread.lock) could not be pickled" in errors["lock"]
    assert "the job timed out after 5 s" in (sweep / "2" / "f.log").read_text()
    # As Hydra's run_job, a failure's traceback stays out of the job's own log (#18); the time
    # limit, the launcher's own doing, is said there.
    assert "Traceback" not in (sweep / "0" / "f.log").read_text()

    exited, killed, hung, locked, healthy = returns
    assert isinstance(exited._return_value, JobExited)
    assert isinstance(hung._return_value, JobTimedOut)
    assert "killed by signal SIGKILL" in str(killed._return_value)
    assert "_thread.lock" in str(locked._return_value)
    assert all(r.status is JobStatus.FAILED for r in (exited, killed, hung, locked))
    assert healthy.status is JobStatus.COMPLETED and healthy.return_value == 40
    return errors


def test_each_fault_of_a_sweep_is_named_and_keeps_what_its_job_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "m"
    faults = ["exit", "kill", "hang", "lock", "none"]
    started = time.monotonic()
    returns = _launch(
        [
            LOCAL,
            f"hydra.sweep.dir={sweep}",
            "hydra.launcher.timeout=5",
            "hydra.launcher.local.max_parallel=5",
            f"+hydra.launcher.env.PYTHONPATH={TESTS_DIR}",
        ],
        [[f"+fault={fault}", f"+x={x}"] for x, fault in enumerate(faults)],
    )
    # The hang sleeps 120 s: the sweep must not wait for it.
    assert time.monotonic() - started < 90

    errors = check_faults(sweep, faults, returns)
    assert "time.sleep" in errors["hang"], "where the job was stopped"


def test_the_time_limit_holds_on_vertex(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "multirun"
    args = [
        "-m",
        "+fault=hang,none",
        "+x=2",
        VERTEX,
        f"hydra.sweep.dir={sweep}",
        *vertex_overrides(fake_vertex, gcs_bucket),
        "hydra.launcher.timeout=5",
    ]
    started = time.monotonic()
    proc = run_app("faults.py", args, tmp_path)
    assert time.monotonic() - started < 90
    assert proc.returncode != 0
    hung, healthy = sweep / "0", sweep / "1"
    status = read_json(hung / "vertex_status.json")
    assert status["state"] == "FAILED"
    assert "the job timed out after 5 s" in status["error"]
    # Its outputs so far and its log were uploaded by the step, then collected.
    assert (hung / "before.txt").read_text() == "fault=hang\n"
    assert "the job timed out after 5 s" in (hung / "faults.log").read_text()
    assert read_json(healthy / "vertex_status.json")["state"] == "SUCCEEDED"
    assert (healthy / "before.txt").read_text() == "fault=none\n"
    # Stopped at its limit, not later: from the job's first log line to the time limit's.
    started_at, stopped_at = _log_times(hung / "faults.log", "starts", "timed out")
    assert 4.5 <= stopped_at - started_at < 7.5
    (job,) = fake_vertex.jobs.values()
    (hung_task,) = [task for task in job.tasks.values() if "fault=hang" in task.name]
    assert "non-zero status of 124" in hung_task.error["message"], "as coreutils' timeout exits"


def _log_times(log: Path, *markers: str) -> List[float]:
    """When the first line holding each marker was logged (Hydra's `[%(asctime)s]`)."""
    lines = log.read_text().splitlines()
    stamps = [next(line for line in lines if marker in line)[1:24] for marker in markers]
    return [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").timestamp() for s in stamps]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_cloud_storage_stops_the_launch_before_vertex_is_asked(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "multirun"
    settings = [s for s in vertex_overrides(fake_vertex, gcs_bucket) if "request_timeout" not in s]
    args = ["-m", "+x=1,2", VERTEX, f"hydra.sweep.dir={sweep}", *settings]
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = {**os.environ, "STORAGE_EMULATOR_HOST": endpoint}
    started = time.monotonic()
    proc = run_app("flaky.py", [*args, "hydra.launcher.request_timeout=3"], tmp_path, env)
    assert time.monotonic() - started < 60
    assert proc.returncode != 0
    assert f"hydra.launcher.staging_root=gs://{gcs_bucket}/hydra" in proc.stderr
    assert f"Cloud Storage at {endpoint} could not be reached" in proc.stderr
    assert "hydra.launcher.request_timeout=3 s" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert fake_vertex.requests["create"] == 0
    assert not list(storage.Client().bucket(gcs_bucket).list_blobs())


def test_an_environment_lookup_never_reaches_the_bucket(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    secret = "s3cret-9f1c2ab7"
    sweep = tmp_path / "multirun"
    args = [
        "-m",
        "+x=1,3",
        "+token=${oc.env:API_TOKEN,unset}",
        "+nested={key: '${oc.env:API_TOKEN,unset}'}",
        VERTEX,
        f"hydra.sweep.dir={sweep}",
        *vertex_overrides(fake_vertex, gcs_bucket),
    ]
    assert "API_TOKEN" not in os.environ  # the steps (run by the fake) do not have it
    proc = run_app("flaky.py", args, tmp_path, {**os.environ, "API_TOKEN": secret})
    assert proc.returncode == 0, proc.stderr
    blobs = list(storage.Client().bucket(gcs_bucket).list_blobs())
    assert any(b.name.endswith("/result.pkl") for b in blobs)
    for blob in blobs:
        assert secret.encode() not in blob.download_as_bytes(), blob.name
