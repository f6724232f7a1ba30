"""A run owns its jobs: the newest run recorded for a job dir decides it, resume does not race a
run still going, and the records hold wherever the sweep dir goes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import List

import yaml
from apputil import kept_result, read_json, run_app
from cliutil import run_cli, table_rows
from fake_vertex import FakeVertex
from vertexutil import only_job, vertex_overrides

LOCAL = "hydra/launcher=vertex_pipeline_local"
VERTEX = "hydra/launcher=vertex_pipeline"
RESUME = "hydra.launcher.resume=true"


def _vertex_sweep(fake: FakeVertex, bucket: str, sweep: Path, *overrides: str) -> List[str]:
    return ["-m", *overrides, VERTEX, f"hydra.sweep.dir={sweep}", *vertex_overrides(fake, bucket)]


def _record_path(sweep: Path, run_id: str) -> Path:
    return sweep / "vertex_pipeline" / run_id / "run.json"


def test_resume_does_not_start_jobs_a_recorded_run_may_still_be_running(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "m"
    args = _vertex_sweep(fake_vertex, gcs_bucket, sweep, "+x=1,3")
    fake_vertex.hold_tasks()
    detached = run_app("flaky.py", [*args, "hydra.launcher.wait=false"], tmp_path)
    assert detached.returncode == 0, detached.stderr
    run_id = only_job(fake_vertex)

    refused = run_app("flaky.py", [*args, RESUME], tmp_path)
    assert refused.returncode != 0
    assert f"#0 (PENDING in run {run_id})" in refused.stderr, refused.stderr
    assert f"hydra-vertex-pipeline attach {sweep}" in refused.stderr
    assert fake_vertex.requests["create"] == 1, "no second run was created"

    fake_vertex.release_tasks()
    assert run_cli("attach", str(sweep)).returncode == 0
    resumed = run_app("flaky.py", [*args, RESUME], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "All 2 jobs succeeded in an earlier run" in resumed.stdout
    assert fake_vertex.requests["create"] == 1


def test_attach_of_an_older_run_never_overwrites_a_newer_runs_outcome(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "m"
    args = _vertex_sweep(fake_vertex, gcs_bucket, sweep, "+x=1,3")
    assert run_app("flaky.py", args, tmp_path).returncode == 0
    older = only_job(fake_vertex)
    # As if its launcher had been killed before collecting job 1, which then runs again.
    record = read_json(_record_path(sweep, older))
    record["jobs"]["1"]["collected"] = False
    _record_path(sweep, older).write_text(json.dumps(record))
    (sweep / "1" / "vertex_status.json").unlink()
    resumed = run_app("flaky.py", [*args, RESUME], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    (newer,) = set(fake_vertex.jobs) - {older}
    newer_status = (sweep / "1" / "vertex_status.json").read_bytes()

    attached = run_cli("attach", str(sweep))
    assert attached.returncode == 0, attached.stdout
    assert f"{older}: every job was collected already" in attached.stdout
    assert (sweep / "1" / "vertex_status.json").read_bytes() == newer_status
    assert kept_result(sweep, sweep / "1").run_id == newer


def test_a_moved_sweep_dir_is_attached_where_it_now_is(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep, moved = tmp_path / "m", tmp_path / "elsewhere" / "m"
    args = _vertex_sweep(fake_vertex, gcs_bucket, sweep, "+x=1,3")
    fake_vertex.hold_tasks()
    assert run_app("flaky.py", [*args, "hydra.launcher.wait=false"], tmp_path).returncode == 0
    moved.parent.mkdir()
    shutil.move(str(sweep), str(moved))
    fake_vertex.release_tasks()

    attached = run_cli("attach", str(moved))
    assert attached.returncode == 0, attached.stdout
    for num, x in (("0", 1), ("1", 3)):
        assert (moved / num / "artifact.txt").read_text() == f"x={x}\n"
        assert read_json(moved / num / "vertex_status.json")["state"] == "SUCCEEDED"
    assert not sweep.exists(), "nothing was written where the sweep dir was"


def test_an_unreadable_record_does_not_hide_the_others(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    proc = run_app("flaky.py", ["-m", "+x=1,3", LOCAL, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name, text in (("garbled", "{not json"), ("listed", "[]"), ("jobless", '{"jobs": 3}')):
        (sweep / "vertex_pipeline" / name).mkdir()
        (sweep / "vertex_pipeline" / name / "run.json").write_text(text)

    shown = run_cli("status", str(sweep))
    assert shown.returncode == 0, shown.stdout
    assert [row[1] for row in table_rows(shown.stdout).values()] == ["SUCCEEDED"] * 2
    assert shown.stdout.count("Skipped: ") == 3
    assert "Traceback" not in shown.stdout


def test_resume_reuses_a_result_only_for_the_overrides_it_records(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    base = [LOCAL, f"hydra.sweep.dir={sweep}", "+fixed=none"]
    assert run_app("fixable.py", ["-m", "+x=1", *base], tmp_path).returncode == 0
    # Another sweep's job left its overrides in the dir: the result still says x=1.
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["+x=5", "+fixed=none"]))

    proc = run_app("fixable.py", ["-m", "+x=5", *base, RESUME], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "succeeded before" not in proc.stdout
    assert (sweep / "0" / "artifact.txt").read_text() == "x=5\n"
    assert kept_result(sweep, sweep / "0").overrides == ["+x=5", "+fixed=none"]
