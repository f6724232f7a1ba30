"""Smaller ways one job's trouble could spread, each closed: long and clashing output names,
names only the launcher writes, placeholder text in paths, names too long for Vertex, a failed
relaunch, and a time limit that leaves the job's child processes running."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import List

import pytest
from apputil import read_json, run_app
from fake_vertex import FakeVertex
from google.cloud import storage as gcs_client
from test_job_faults import LOCAL, TESTS_DIR, VERTEX
from vertexutil import vertex_overrides

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._build import custom_job_display_name
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._flow import new_run_id, pipeline_slug
from hydra_plugins.hydra_vertex_pipeline_launcher._shared._layout import LAUNCHER_OWNED
from hydra_plugins.hydra_vertex_pipeline_launcher._shared._storage import (
    UnsafeObjectName,
    open_storage,
)

LONGEST = "n" * 251 + ".txt"  # 255 bytes, the most a file name may have


def test_output_names_up_to_255_bytes_come_back(root_uri: str, tmp_path: Path) -> None:
    store = open_storage(root_uri, timeout=10)
    store.write_many({f"out/{LONGEST}": b"long", f"out/d/{'é' * 127}": b"wide"})
    job_dir = tmp_path / "job"
    store.download_dir("out", job_dir)
    assert (job_dir / LONGEST).read_bytes() == b"long"
    assert (job_dir / "d" / ("é" * 127)).read_bytes() == b"wide"


def test_a_file_where_a_folder_is_is_refused_and_the_rest_comes_back(
    root_uri: str, tmp_path: Path
) -> None:
    store = open_storage(root_uri, timeout=10)
    store.write_many({"out/a": b"file a", "out/ok.txt": b"fine", "out/f/x": b"below a file"})
    job_dir = tmp_path / "job"
    (job_dir / "a").mkdir(parents=True)  # already a folder here
    (job_dir / "f").write_text("a file here")
    with pytest.raises(UnsafeObjectName) as refused:
        store.download_dir("out", job_dir)
    assert "'a': a folder of that name is here" in str(refused.value)
    assert "'f/x': it lands inside 'f', which is a file here" in str(refused.value)
    assert (job_dir / "ok.txt").read_bytes() == b"fine"


def test_a_name_stored_as_file_and_folder_is_refused(gcs_bucket: str, tmp_path: Path) -> None:
    bucket = gcs_client.Client().bucket(gcs_bucket)
    for name, data in (("a", b"file"), ("a/b", b"below"), ("c", b"fine")):
        bucket.blob(f"run/out/{name}").upload_from_string(data)
    store = open_storage(f"gs://{gcs_bucket}/run", timeout=10)
    with pytest.raises(UnsafeObjectName, match="'a/b': it lands inside 'a', which is stored"):
        store.download_dir("out", tmp_path / "job")
    assert (tmp_path / "job" / "a").read_bytes() == b"file"
    assert (tmp_path / "job" / "c").read_bytes() == b"fine"


def test_names_only_the_launcher_writes_are_never_collected(root_uri: str, tmp_path: Path) -> None:
    store = open_storage(root_uri, timeout=10)
    planted = ["vertex_pipeline/r/run.json", "vertex_status.json", "vertex_result.pkl"]
    store.write_many({**{f"out/{name}": b"planted" for name in planted}, "out/ok": b"ok"})
    job_dir = tmp_path / "job"
    with pytest.raises(UnsafeObjectName, match="that name is the launcher's own"):
        store.download_dir("out", job_dir, LAUNCHER_OWNED)
    assert sorted(p.name for p in job_dir.rglob("*")) == ["ok"]


def test_planted_launcher_files_do_not_reach_a_single_runs_dir(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "out"
    args = [
        "+fault=plant",
        "+x=1",
        VERTEX,
        f"hydra.run.dir={run_dir}",
        *vertex_overrides(fake_vertex, gcs_bucket),
        f"+hydra.launcher.env.PYTHONPATH={TESTS_DIR}",
    ]
    proc = run_app("faults.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_id,) = fake_vertex.jobs
    assert sorted(p.name for p in (run_dir / "vertex_pipeline").iterdir()) == [run_id]
    status = read_json(run_dir / "vertex_status.json")
    assert status["state"] == "SUCCEEDED"
    assert "'vertex_pipeline/planted/run.json': that name is the launcher's own" in status["error"]


def test_placeholder_text_in_a_path_is_refused_before_anything_is_staged(tmp_path: Path) -> None:
    sweep = tmp_path / "a{{$.inputs.parameters.job_num}}b"
    proc = run_app("flaky.py", ["-m", "+x=1", LOCAL, f"hydra.sweep.dir='{sweep}'"], tmp_path)
    assert proc.returncode != 0
    assert "holds the text '{{$', which Vertex (and the local backend) read as" in proc.stderr
    assert "Traceback" not in proc.stderr and "Staging to" not in proc.stdout + proc.stderr
    assert not (sweep / "vertex_pipeline").exists()


def test_names_sent_to_vertex_stay_within_its_limits() -> None:
    run_id = new_run_id(pipeline_slug("My Pipeline " * 30))
    assert len(run_id) < 128 and re.fullmatch(r"[a-z][-a-z0-9]*", run_id)
    name = custom_job_display_name(run_id, 123456)
    assert len(name) <= 128 and name.endswith("-123456")


def test_a_relaunch_refused_before_staging_keeps_the_earlier_outcomes(tmp_path: Path) -> None:
    sweep, fixed = tmp_path / "m", tmp_path / "fixed"
    args = ["-m", "+x=1,2", "+fail_x=2", f"+fixed={fixed}", LOCAL, f"hydra.sweep.dir={sweep}"]
    assert run_app("fixable.py", args, tmp_path).returncode != 0
    earlier = read_json(sweep / "1" / "vertex_status.json")
    assert earlier["state"] == "FAILED"

    bad = "hydra.launcher.resources.memory_limit=lots"
    refused = run_app("fixable.py", [*args, "hydra.launcher.resume=true", bad], tmp_path)
    assert refused.returncode != 0 and "memory_limit='lots'" in refused.stderr
    assert read_json(sweep / "1" / "vertex_status.json") == earlier


def test_a_relaunch_vertex_refuses_keeps_the_earlier_outcomes_and_blocks_no_resume(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "m"
    args = ["-m", "+x=1,2", VERTEX, f"hydra.sweep.dir={sweep}"]
    args += vertex_overrides(fake_vertex, gcs_bucket)
    assert run_app("flaky.py", args, tmp_path).returncode != 0
    earlier = _outcome_files(sweep / "1")

    fake_vertex.fail_next("create", 1, 403)
    refused = run_app("flaky.py", [*args, "hydra.launcher.resume=true"], tmp_path)
    assert refused.returncode != 0 and "Vertex denied creating a pipeline run" in refused.stderr
    assert _outcome_files(sweep / "1") == earlier
    assert not list(sweep.rglob("*.earlier"))
    records = [read_json(p) for p in (sweep / "vertex_pipeline").glob("*/run.json")]
    assert sorted((r["state"], r["never_created"]) for r in records) == [
        ("FAILED", False),
        ("FAILED", True),  # owns no job dir: status and attach still see the first run's
    ]

    again = run_app("flaky.py", [*args, "hydra.launcher.resume=true"], tmp_path)
    assert "1 of 2 jobs succeeded in an earlier run" in again.stdout, again.stderr
    assert len(fake_vertex.jobs) == 2


def _outcome_files(job_dir: Path) -> List[bytes]:
    return [(job_dir / name).read_bytes() for name in ("vertex_status.json", "vertex_result.pkl")]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_payload_jobs_time_limit_ends_the_processes_it_started(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    args = ["-m", "+fault=spawn", "+x=1", LOCAL, f"hydra.sweep.dir={sweep}"]
    path = f"+hydra.launcher.env.PYTHONPATH={TESTS_DIR}"
    proc = run_app("faults.py", [*args, path, "hydra.launcher.timeout=5"], tmp_path)
    assert proc.returncode != 0
    assert "the job timed out after 5 s" in read_json(sweep / "0" / "vertex_status.json")["error"]
    child = int((sweep / "0" / "child.pid").read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), "the job's child process outlived its time limit"
