"""Hydra apps as pipeline components: the factory's compiled arguments, and hand-built
pipelines of unchanged Hydra apps run on the local backend and through the fake Vertex."""

# No `from __future__ import annotations` here: kfp reads the pipeline functions' annotations.
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest
import yaml
from apputil import APPS, read_json
from fake_vertex import FakeVertex
from kfp import compiler, dsl
from vertexutil import LOCATION, PROJECT

from hydra_plugins.hydra_vertex_pipeline_launcher.components import hydra_component, run_pipeline

IMAGE = "europe-docker.pkg.dev/test-proj/repo/apps:1"
make_rows = hydra_component(
    "make-rows",
    IMAGE,
    ["python", str(APPS / "make_rows.py")],
    parameters={
        "rows": int,
        "scale": float,
        "label": str,
        "shuffle": bool,
        "tags": List[str],
        "fail": bool,
    },
    outputs=["data"],
)
sum_rows = hydra_component(
    "sum-rows",
    IMAGE,
    ["python", str(APPS / "sum_rows.py")],
    parameters={"factor": float},
    inputs=["data"],
    outputs=["summary"],
    overrides=["hydra.job.chdir=true"],
)


@dsl.pipeline(name="rows")
def rows_pipeline(factor: float, fail: bool = False):
    made = make_rows(
        rows=3, scale=0.5, label="two words", shuffle=True, tags=["a", "b c"], fail=fail
    )
    made.set_display_name("make rows")
    sum_rows(factor=factor, data=made.outputs["data"]).set_display_name("sum rows")


def _meeting(name: str) -> Any:
    return hydra_component(
        name,
        IMAGE,
        ["python", str(APPS / "rendezvous.py")],
        parameters={"+board": str, "+x": int, "+wait_for": int},
    )


def test_the_compiled_spec_holds_hydra_style_arguments(tmp_path: Path) -> None:
    spec_path = tmp_path / "rows.yaml"
    compiler.Compiler().compile(rows_pipeline, str(spec_path))
    spec = yaml.safe_load(spec_path.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert executors["exec-make-rows"]["container"]["args"] == [
        "rows={{$.inputs.parameters['rows']}}",
        "scale={{$.inputs.parameters['scale']}}",
        "label={{$.inputs.parameters['label']}}",
        "shuffle={{$.inputs.parameters['shuffle']}}",
        "tags={{$.inputs.parameters['tags']}}",
        "fail={{$.inputs.parameters['fail']}}",
        "data={{$.outputs.artifacts['data'].path}}",
        "hydra.run.dir={{$.outputs.artifacts['hydra_run_dir'].path}}",
    ]
    assert executors["exec-sum-rows"]["container"]["args"] == [
        "hydra.job.chdir=true",
        "factor={{$.inputs.parameters['factor']}}",
        "data={{$.inputs.artifacts['data'].path}}",
        "summary={{$.outputs.artifacts['summary'].path}}",
        "hydra.run.dir={{$.outputs.artifacts['hydra_run_dir'].path}}",
    ]
    assert executors["exec-sum-rows"]["container"]["command"] == [
        "python",
        str(APPS / "sum_rows.py"),
    ]
    # An app whose config picks this launcher runs in its step, not as a pipeline of its own.
    for executor in executors.values():
        assert executor["container"]["env"] == [
            {"name": "HYDRA_VERTEX_PIPELINE_STEP", "value": "1"}
        ]
    wired = spec["root"]["dag"]["tasks"]["sum-rows"]["inputs"]["artifacts"]["data"]
    assert wired == {
        "taskOutputArtifact": {"outputArtifactKey": "data", "producerTask": "make-rows"}
    }


def test_keys_become_the_components_inputs_and_outputs(tmp_path: Path) -> None:
    component = hydra_component(
        "keys", IMAGE, ["python", "app.py"], {"optim.lr": float, "+seed": int}, (), ["out.dir"]
    )
    # The caller's own hydra.run.dir: no output dir artifact of the step's own.
    own_dir = hydra_component("own", IMAGE, ["python", "app.py"], overrides=["hydra.run.dir=x"])

    @dsl.pipeline(name="keys")
    def keys() -> None:
        task = component(optim_lr=0.1, seed=3)
        assert set(task.outputs) == {"out_dir", "hydra_run_dir"}
        assert not own_dir().outputs

    compiler.Compiler().compile(keys, str(tmp_path / "keys.yaml"))
    args = yaml.safe_load((tmp_path / "keys.yaml").read_text())["deploymentSpec"]["executors"]
    assert args["exec-keys"]["container"]["args"] == [
        "optim.lr={{$.inputs.parameters['optim_lr']}}",
        "+seed={{$.inputs.parameters['seed']}}",
        "out.dir={{$.outputs.artifacts['out_dir'].path}}",
        "hydra.run.dir={{$.outputs.artifacts['hydra_run_dir'].path}}",
    ]
    assert args["exec-own"]["container"]["args"] == ["hydra.run.dir=x"]


@pytest.mark.parametrize(
    "call, error",
    [
        (dict(parameters={"d": dict}), "pass it as an artifact"),
        (dict(parameters={"xs": list}), "'xs' is a bare list; give its items' type"),
        (dict(parameters={"xs": List}), "'xs' is a bare list; give its items' type"),
        (dict(command="python app.py"), "command is a list of strings"),
        (dict(parameters={"a-b": int}), "not a Hydra config key"),
        (dict(parameters={"a.b": int, "a_b": int}), "rename one"),
    ],
)
def test_what_hydra_cannot_read_back_is_refused(call: Dict[str, Any], error: str) -> None:
    arguments = {"command": ["python", "app.py"], **call}
    with pytest.raises((TypeError, ValueError), match=error):
        hydra_component("bad", IMAGE, **arguments)


def _assert_rows_ran(received: Dict[str, Any], summary: Dict[str, Any]) -> None:
    """Each value reached the app with its type, as Hydra parsed the rendered override."""
    assert received["rows"] == [3, "int"]
    assert received["scale"] == [0.5, "float"]
    assert received["label"] == ["two words", "str"]
    assert received["shuffle"] == [True, "bool"]
    assert received["tags"] == [["a", "b c"], "list"]
    assert summary == {"count": 3, "total": (0 + 0.5 + 1.0) * 4}


def test_the_local_backend_runs_two_apps_wired_by_an_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    from cliutil import run_cli, table_rows

    run = run_pipeline(rows_pipeline, {"factor": 4}, output_dir=str(tmp_path / "pipelines"))

    assert run.succeeded, run
    shown = run_cli("status", str(run.run_dir))
    assert shown.returncode == 0, shown.stdout
    assert sorted((cells[0], cells[1]) for cells in table_rows(shown.stdout).values()) == [
        ("make rows", "SUCCEEDED"),
        ("sum rows", "SUCCEEDED"),
    ], "a hand-built run's tasks show by their names"
    made, summed = run.tasks["make-rows"], run.tasks["sum-rows"]
    assert made.display_name == "make rows" and made.state == "SUCCEEDED"
    data = made.artifacts["data"]
    assert data == run.run_dir / "pipeline_root" / "make-rows" / "data"
    _assert_rows_ran(
        json.loads(data.read_text())["received"], read_json(summed.artifacts["summary"])
    )
    # Each step is its app's own Hydra run, in an output dir of its own, with the overrides
    # the step passed and only its own log lines.
    assert not (tmp_path / "outputs").exists()
    _assert_own_output_dirs(run.tasks)
    hydra_yaml = yaml.safe_load((summed.output_dir / ".hydra" / "hydra.yaml").read_text())
    assert "hydra.job.chdir=true" in hydra_yaml["hydra"]["overrides"]["hydra"]
    assert yaml.safe_load((summed.output_dir / ".hydra" / "overrides.yaml").read_text()) == [
        "factor=4",
        f"data={data}",
        f"summary={summed.artifacts['summary']}",
    ]
    assert "make_rows printed: 3 rows" in (run.run_dir / "steps" / "make-rows.log").read_text()
    assert (
        read_json(run.run_dir / "tasks" / "sum-rows" / "vertex_status.json")["state"] == "SUCCEEDED"
    )
    assert read_json(run.run_dir / "run.json")["state"] == "SUCCEEDED"


def _assert_own_output_dirs(tasks: Dict[str, Any]) -> None:
    """Each rows task's Hydra output dir is its own, in its artifacts, with its job's log."""
    made, summed = tasks["make-rows"], tasks["sum-rows"]
    assert made.output_dir == made.artifacts["hydra_run_dir"] != summed.output_dir
    made_log = (made.output_dir / "make_rows.log").read_text()
    assert "make_rows logged: 3 rows" in made_log and "sum_rows" not in made_log
    summed_log = (summed.output_dir / "sum_rows.log").read_text()
    assert "sum_rows logged: 6.0" in summed_log and "make_rows" not in summed_log
    made_overrides = yaml.safe_load((made.output_dir / ".hydra" / "overrides.yaml").read_text())
    assert "rows=3" in made_overrides and not any("factor" in o for o in made_overrides)


def test_a_failed_step_stops_the_steps_that_need_its_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = run_pipeline(rows_pipeline, {"factor": 1, "fail": True}, output_dir=str(tmp_path))

    assert run.state == "FAILED"
    made, summed = run.tasks["make-rows"], run.tasks["sum-rows"]
    assert made.state == "FAILED"
    assert "make_rows was told to fail" in str(made.error)
    assert summed.state == "FAILED" and "not started" in str(summed.error)
    assert not summed.artifacts["summary"].exists()
    assert not (run.run_dir / "steps" / "sum-rows.log").exists()


def test_independent_steps_run_in_parallel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    board = tmp_path / "board"
    first, second = _meeting("first"), _meeting("second")

    @dsl.pipeline(name="meet")
    def meet() -> None:
        # Each waits until both have started: only steps run at once get past it.
        first(board=str(board), x=1, wait_for=2)
        second(board=str(board), x=2, wait_for=2)

    run = run_pipeline(meet, output_dir=str(tmp_path), local={"max_parallel": 2})

    assert run.succeeded, run
    spans = [read_json(board / f"{x}.json") for x in (1, 2)]
    assert max(s["start"] for s in spans) < min(s["end"] for s in spans)


def test_what_the_local_backend_cannot_run_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    @dsl.pipeline(name="conditional")
    def conditional(fail: bool = False):
        with dsl.If(fail == True):  # noqa: E712 - kfp's condition syntax
            make_rows(rows=1, scale=1.0, label="a", shuffle=False, tags=[], fail=fail)

    with pytest.raises(ValueError, match="sub-pipeline .* container steps only"):
        run_pipeline(conditional, output_dir=str(tmp_path))
    assert not list(tmp_path.iterdir()), "no run dir, no spec, no record"


ECHO = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"


@dsl.container_component
def echo(board: str, count: int, tiny: float, huge: float, flag: bool, xs: List[float]):
    return dsl.ContainerSpec(
        image=IMAGE, command=["python", "-c"], args=[ECHO, board, count, tiny, huge, flag, xs]
    )


@pytest.mark.parametrize("backend", ["local", "vertex"])
def test_both_backends_render_parameters_as_vertex_does(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    board = tmp_path / "argv.json"

    @dsl.pipeline(name="echo")
    def echoed(count: int):
        echo(board=str(board), count=count, tiny=1e-05, huge=1e20, flag=False, xs=[1.0, 2.5])

    settings = _settings_for(backend, request)
    run = run_pipeline(echoed, {"count": 3}, output_dir=str(tmp_path), **settings)

    assert run.succeeded, run
    # Go's FormatFloat(x, 'f', -1, 64) for numbers (Struct numbers are doubles), JSON for lists.
    assert json.loads(board.read_text()) == [
        "3",
        "0.00001",
        "100000000000000000000",
        "false",
        "[1,2.5]",
    ]


def test_settings_that_shape_the_launchers_own_steps_are_refused(tmp_path: Path) -> None:
    from hydra_plugins.hydra_vertex_pipeline_launcher.config import LauncherConfigError

    with pytest.raises(LauncherConfigError, match=r"retries=2 .*task.set_retry"):
        run_pipeline(rows_pipeline, {"factor": 1}, output_dir=str(tmp_path), retries=2)
    assert not list(tmp_path.iterdir())


def test_a_dry_run_setting_is_refused_never_ignored(tmp_path: Path) -> None:
    from hydra_plugins.hydra_vertex_pipeline_launcher.config import (
        LauncherConfigError,
        settings_from,
    )

    # As an app's whole hydra.launcher would carry it.
    settings = settings_from({"backend": "local", "dry_run": True})
    with pytest.raises(LauncherConfigError, match="a hand-built pipeline has no dry run"):
        run_pipeline(rows_pipeline, {"factor": 1}, output_dir=str(tmp_path), settings=settings)
    assert not list(tmp_path.iterdir())


def test_the_same_pipeline_runs_on_vertex_with_the_launchers_settings(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    run = run_pipeline(
        rows_pipeline,
        {"factor": 4},
        backend="vertex",
        output_dir=str(tmp_path),
        project=PROJECT,
        location=LOCATION,
        api_endpoint=fake_vertex.endpoint,
        staging_root=f"gs://{gcs_bucket}/hydra",
        service_account="steps@test-proj.iam.gserviceaccount.com",
        labels={"team": "ml"},
        poll_interval=0.2,
        max_poll_interval=1,
        request_timeout=20,
    )

    assert run.succeeded, run
    assert run.console_url and run.run_id in run.console_url
    job = fake_vertex.jobs[run.run_id]
    body = job.body
    assert body["runtimeConfig"]["gcsOutputDirectory"] == (
        f"gs://{gcs_bucket}/hydra/{run.run_id}/pipeline_root"
    )
    assert body["serviceAccount"] == "steps@test-proj.iam.gserviceaccount.com"
    assert body["labels"]["team"] == "ml"
    status = read_json(run.run_dir / "tasks" / "sum-rows" / "vertex_status.json")
    assert status["state"] == "SUCCEEDED" and status["display_name"] == "sum rows"
    _assert_collected_from_vertex(run.run_dir, fake_vertex.jobs[run.run_id])


def _assert_collected_from_vertex(run_dir: Path, job: Any) -> None:
    """What the run's tasks left in its pipeline root on Cloud Storage, fetched into the run dir
    where the local backend leaves it, and where each task's console output is in Cloud
    Logging (the CustomJob that ran it)."""
    tasks = {}
    for key in ("make-rows", "sum-rows"):
        root = run_dir / "pipeline_root" / key
        outputs = {name: root / name for name in job.tasks[key].outputs}
        tasks[key] = SimpleNamespace(artifacts=outputs, output_dir=outputs["hydra_run_dir"])
        custom_job = job.tasks[key].custom_jobs[-1].split("/")[-1]
        logs = (run_dir / "tasks" / key / "logs.txt").read_text()
        assert f'resource.labels.job_id="{custom_job}"' in logs, logs
        # gcsfuse's folder markers among the stored output dirs are no files, and no refusal.
        assert read_json(run_dir / "tasks" / key / "vertex_status.json")["error"] is None
    made, summed = tasks["make-rows"], tasks["sum-rows"]
    received = json.loads(made.artifacts["data"].read_text())["received"]
    _assert_rows_ran(received, read_json(summed.artifacts["summary"]))
    _assert_own_output_dirs(tasks)


def test_the_two_step_example_runs_as_a_user_runs_it(tmp_path: Path) -> None:
    import shutil
    import subprocess

    example = Path(__file__).parents[1] / "example_app"
    shutil.copytree(example, tmp_path / "example_app")
    proc = subprocess.run(
        [sys.executable, "example_app/two_step_pipeline.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    model_path = _said_path(proc.stdout, "model_path:")
    model = read_json(model_path)
    assert model_path.is_relative_to(tmp_path)
    assert abs(model["w"] - 3.0) < 0.5 and model["val_loss"] < 0.1
    points = read_json(_said_path(proc.stdout, "out:"))
    assert len(points["train"]) == 200
    # train.py's config picks this launcher; in its step it ran there, launching nothing.
    assert not list(tmp_path.glob("outputs/**/vertex_pipeline"))


def _said_path(stdout: str, label: str) -> Path:
    (line,) = [line for line in stdout.splitlines() if line.strip().startswith(label)]
    return Path(line.split(label, 1)[1].strip())


SLEEPY_SCRIPT = """
import logging, sys
from kfp import dsl
from hydra_plugins.hydra_vertex_pipeline_launcher.components import hydra_component, run_pipeline

app, board, output_dir = sys.argv[1:]
sleeper = hydra_component(
    "sleeper", "img", ["python", app], parameters={"+board": str, "+x": int, "+sleep": float}
)

@dsl.pipeline(name="sleepy")
def sleepy():
    sleeper(board=board, x=1, sleep=60.0)

logging.basicConfig(level=logging.INFO)
run_pipeline(sleepy, output_dir=output_dir)
"""


def test_ctrl_c_cancels_the_pipeline_and_stops_its_steps(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess

    from apputil import wait_until

    board, script = tmp_path / "board", tmp_path / "sleepy.py"
    script.write_text(SLEEPY_SCRIPT)
    args = [sys.executable, str(script), str(APPS / "rendezvous.py"), str(board), str(tmp_path)]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_until(lambda: (board / "1.json").exists())
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)

    assert proc.returncode != 0
    assert b"Cancelled local:sleepy-" in output
    (run_json,) = tmp_path.glob("vertex_pipeline/*/run.json")
    assert read_json(run_json)["state"] == "CANCELLED"
    status = read_json(run_json.parent / "tasks" / "sleeper" / "vertex_status.json")
    assert status["state"] == "CANCELLED"
    with pytest.raises(ProcessLookupError):
        os.kill(read_json(board / "1.json")["pid"], 0)


def _on_fake_vertex(fake: FakeVertex, bucket: str) -> Dict[str, Any]:
    return dict(
        backend="vertex",
        project=PROJECT,
        location=LOCATION,
        api_endpoint=fake.endpoint,
        staging_root=f"gs://{bucket}/hydra",
        poll_interval=0.2,
        max_poll_interval=1,
        request_timeout=20,
    )


def _settings_for(backend: str, request: pytest.FixtureRequest) -> Dict[str, Any]:
    """run_pipeline's settings for the local backend, or for the fake Vertex (started here)."""
    if backend == "local":
        return {"backend": "local"}
    fake = request.getfixturevalue("fake_vertex")
    return _on_fake_vertex(fake, request.getfixturevalue("gcs_bucket"))


@pytest.mark.parametrize("command", ["attach", "cancel"])
def test_a_finished_hand_built_vertex_run_keeps_its_tasks_states_through_the_command_line(
    command: str, fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    from cliutil import run_cli, table_rows

    settings = _on_fake_vertex(fake_vertex, gcs_bucket)
    run = run_pipeline(
        rows_pipeline, {"factor": 4}, output_dir=str(tmp_path), wait=False, **settings
    )
    assert {task.state for task in run.tasks.values()} == {"PENDING"}
    fake_vertex.wait_for_state(run.run_id, ["PIPELINE_STATE_SUCCEEDED"], timeout=120)

    done = run_cli(command, str(run.run_dir))

    assert done.returncode == 0, done.stdout
    assert "without a result" not in done.stdout
    for task in ("make-rows", "sum-rows"):
        status = read_json(run.run_dir / "tasks" / task / "vertex_status.json")
        assert status["state"] == "SUCCEEDED", status
    assert read_json(run.run_dir / "run.json")["state"] == "SUCCEEDED"
    _assert_collected_from_vertex(run.run_dir, fake_vertex.jobs[run.run_id])
    shown = run_cli("status", str(run.run_dir))
    rows = table_rows(shown.stdout)
    assert sorted((cells[0], cells[1]) for cells in rows.values()) == [
        ("make rows", "SUCCEEDED"),
        ("sum rows", "SUCCEEDED"),
    ], shown.stdout


def test_artifact_uris_outside_the_runs_pipeline_root_are_refused(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    from cliutil import run_cli
    from google.cloud import storage

    client = storage.Client()
    client.create_bucket("elsewhere").blob("secret").upload_from_string(b"foreign bucket")
    staged = client.bucket(gcs_bucket)
    staged.blob("hydra/secret").upload_from_string(b"beside the run")
    run = run_pipeline(
        rows_pipeline,
        {"factor": 4},
        output_dir=str(tmp_path),
        wait=False,
        **_on_fake_vertex(fake_vertex, gcs_bucket),
    )
    root = f"gs://{gcs_bucket}/hydra/{run.run_id}/pipeline_root"
    staged.blob(f"hydra/{run.run_id}-x/pipeline_root/s").upload_from_string(b"another run")
    refused = {
        ("make-rows", "data"): "gs://elsewhere/secret",
        ("sum-rows", "summary"): f"{root}/../../secret",
        ("sum-rows", "hydra_run_dir"): f"{root.replace(run.run_id, run.run_id + '-x')}/s",
    }
    for (task, name), uri in refused.items():
        fake_vertex.misreport_artifact(run.run_id, task, name, uri)
    fake_vertex.wait_for_state(run.run_id, ["PIPELINE_STATE_SUCCEEDED"], timeout=120)

    done = run_cli("attach", str(run.run_dir))

    # The tasks keep the state Vertex reports; each refusal is said, and nothing of it fetched.
    assert done.returncode == 0, done.stdout
    for uri in refused.values():
        assert f"refused {uri!r}: it is not in the run's pipeline root" in done.stdout
    fetched = [p for p in (run.run_dir / "pipeline_root").rglob("*") if p.is_file()]
    contents = b"".join(p.read_bytes() for p in fetched)
    assert fetched and b"foreign" not in contents and b"beside" not in contents
    assert b"another run" not in contents
    assert not (run.run_dir / "pipeline_root" / "make-rows" / "data").exists()
    assert (
        run.run_dir / "pipeline_root" / "make-rows" / "hydra_run_dir" / "make_rows.log"
    ).exists()
    status = read_json(run.run_dir / "tasks" / "sum-rows" / "vertex_status.json")
    assert status["state"] == "SUCCEEDED" and "'summary' was not fetched" in status["error"]


@pytest.mark.parametrize("backend", ["local", "vertex"])
@pytest.mark.parametrize(
    "arguments, error",
    [
        ({"factr": 4}, "factr does not match any known pipeline input"),
        ({}, "'factor' has no value"),
    ],
)
def test_bad_arguments_leave_nothing_behind(
    backend: str,
    arguments: Dict[str, Any],
    error: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=error):
        run_pipeline(
            rows_pipeline, arguments, output_dir=str(out), **_settings_for(backend, request)
        )
    assert not out.exists()
    if backend == "vertex":
        assert request.getfixturevalue("fake_vertex").requests["create"] == 0


lazy = hydra_component(
    "lazy",
    IMAGE,
    ["python", str(APPS / "faults.py")],
    parameters={"+fault": str, "+x": int},
    outputs=["+model"],
)


@dsl.pipeline(name="lazy")
def lazy_pipeline():
    # faults.py with fault=none returns, writing no model.
    model = lazy(fault="none", x=1).outputs["model"]
    sum_rows(factor=1.0, data=model)


@pytest.mark.parametrize("backend", ["local", "vertex"])
def test_a_step_that_does_not_write_its_output_artifact_fails_naming_it(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = run_pipeline(lazy_pipeline, output_dir=str(tmp_path), **_settings_for(backend, request))

    assert run.state == "FAILED"
    lazy_task, summed = run.tasks["lazy"], run.tasks["sum-rows"]
    assert lazy_task.state == "FAILED" and "output artifact 'model'" in str(lazy_task.error)
    assert summed.state != "SUCCEEDED"
