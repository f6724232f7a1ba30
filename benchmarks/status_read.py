"""Targets 7 and 11: one status read of a run of many tasks, and turning it into job states.

A local HTTP server answers the Vertex `get` with a PipelineJob as Vertex returns it (its
pipeline spec echoed, every task's detail as Vertex writes it: its execution, its state
history, its output artifact, the CustomJob that ran it), cut to the fields the request's
X-Goog-FieldMask names as Google's front end cuts it (tests/fake_vertex.py's mask), as binary
protobuf when the request asks `$alt=proto` (tests/fake_vertex.py's encoding); each answer is made
once, outside the timing, as Vertex makes it on its side. The vertex backend reads it as in a
poll. Timed: the whole read (request, parsing, states); splitting the answer into its task
details alone; turning the answer into each job's state alone (`run_status`, which parses the
details it has not seen); and, for comparison, the same read
through aiplatform's REST client as JSON, with and without the field mask.
"""

from __future__ import annotations

import http.server
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple
from urllib.parse import parse_qs, urlsplit

import yaml

STATES = ("SUCCEEDED", "RUNNING", "FAILED", "PENDING", "NOT_TRIGGERED", "CANCELLED")
RUN_ID = "bench-20261126-100000-000000"
HERE = Path(__file__).resolve().parent
PROJECT_PATH = "projects/123456789/locations/europe-west4"


def _spec(tasks: int) -> Dict[str, Any]:
    dag = {
        f"task-{n}": {
            "taskInfo": {"name": f"#{n} lr={0.001 * n:g} seed={n}"},
            "componentRef": {"name": "comp-step"},
            "inputs": {"parameters": {"job": {"runtimeValue": {"constant": n}}}},
        }
        for n in range(tasks)
    }
    return {"pipelineInfo": {"name": "bench"}, "root": {"dag": {"tasks": dag}}}


def _job(spec: Dict[str, Any]) -> Dict[str, Any]:
    details: List[Dict[str, Any]] = [{"taskId": "1", "taskName": "bench", "state": "RUNNING"}]
    for n, task in enumerate(spec["root"]["dag"]["tasks"].values()):
        details.append(_task_detail(n, task["taskInfo"]["name"], STATES[n % len(STATES)]))
    return {
        "name": f"{PROJECT_PATH}/pipelineJobs/{RUN_ID}",
        "displayName": RUN_ID,
        "state": "PIPELINE_STATE_RUNNING",
        "createTime": "2026-11-26T10:00:00.123Z",
        "pipelineSpec": spec,
        "runtimeConfig": {"gcsOutputDirectory": f"gs://bucket/hydra/{RUN_ID}/pipeline_root"},
        "jobDetail": {"taskDetails": details},
    }


def _task_detail(n: int, name: str, state: str) -> Dict[str, Any]:
    """One task's detail with what Vertex reports of a container step."""
    root = f"gs://bucket/hydra/{RUN_ID}/pipeline_root/123456789/{RUN_ID}"
    detail: Dict[str, Any] = {
        "taskId": str(n + 2),
        "parentTaskId": "1",
        "taskName": name,
        "createTime": "2026-11-26T10:00:00.123456Z",
        "startTime": "2026-11-26T10:00:02.123456Z",
        "state": state,
        "execution": {
            "name": f"{PROJECT_PATH}/metadataStores/default/executions/{n}98732451",
            "displayName": name,
            "state": "RUNNING",
            "schemaTitle": "system.ContainerExecution",
            "schemaVersion": "0.0.1",
            "metadata": {"input:job_num": n, "input:job_digest": f"{n:064x}"},
            "createTime": "2026-11-26T10:00:00.123Z",
            "updateTime": "2026-11-26T10:00:02.5Z",
        },
        "pipelineTaskStatus": [
            {"updateTime": "2026-11-26T10:00:01Z", "state": "PENDING"},
            {"updateTime": "2026-11-26T10:00:02Z", "state": "RUNNING"},
        ],
        "executorDetail": {
            "containerDetail": {"mainJob": f"{PROJECT_PATH}/customJobs/{n}123456789"}
        },
        "outputs": {
            "hydra_run_dir": {
                "artifacts": [
                    {
                        "name": f"{PROJECT_PATH}/metadataStores/default/artifacts/{n}7654321",
                        "displayName": "hydra_run_dir",
                        "uri": f"{root}/task-{n}_{n + 2}/hydra_run_dir",
                        "state": "LIVE",
                        "schemaTitle": "system.Artifact",
                        "schemaVersion": "0.0.1",
                        "createTime": "2026-11-26T10:00:00.123Z",
                        "updateTime": "2026-11-26T10:00:00.123Z",
                        "metadata": {},
                    }
                ]
            }
        },
    }
    if state in ("SUCCEEDED", "FAILED", "CANCELLED"):
        detail["endTime"] = "2026-11-26T10:03:04.5Z"
    if state == "FAILED":
        detail["error"] = {"code": 9, "message": "The replica workerpool0-0 exited with 1."}
    return detail


def _serve(job: Dict[str, Any]) -> http.server.ThreadingHTTPServer:
    """Answers every GET with job, cut to the request's field mask (each cut made once; the
    server's `answers` keeps them, by mask and whether binary)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from fake_vertex import as_protobuf, masked, parse_field_mask

    answers: Dict[Any, Tuple[str, bytes]] = {}

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            mask = self.headers.get("X-Goog-FieldMask")
            binary = parse_qs(urlsplit(self.path).query).get("$alt") == ["proto"]
            if (mask, binary) not in answers:
                cut = job if mask is None else masked(job, parse_field_mask(mask))
                answers[mask, binary] = (
                    ("application/x-protobuf", as_protobuf(cut))
                    if binary
                    else ("application/json", json.dumps(cut).encode())
                )
            content_type, body = answers[mask, binary]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    server.answers = answers  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _median_seconds(action: Callable[[], Any], runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def measure(tasks: int = 1000, runs: int = 7) -> dict:
    from google.cloud import aiplatform_v1

    from hydra_plugins.hydra_vertex_pipeline_launcher._backends._base import RunContext
    from hydra_plugins.hydra_vertex_pipeline_launcher._backends._vertex import (
        STATUS_FIELDS,
        VertexBackend,
        _status_view,
        run_status,
    )
    from hydra_plugins.hydra_vertex_pipeline_launcher.config import settings_from

    spec = _spec(tasks)
    server = _serve(_job(spec))
    host, port = server.server_address[:2]
    settings = settings_from(
        {
            "backend": "vertex",
            "project": "p",
            "location": "europe-west4",
            "api_endpoint": f"http://{host}:{port}",
            "image": "europe-docker.pkg.dev/p/repo/train:1",
            "staging_root": "gs://bucket/hydra",
        }
    )
    with tempfile.TemporaryDirectory() as scratch:
        run = RunContext(RUN_ID, "bench", "bench", Path(scratch), f"gs://bucket/hydra/{RUN_ID}")
        run.spec_path.write_text(yaml.safe_dump(spec))
        backend = VertexBackend(settings, run)
        backend.reattach(run.spec_path)
        try:
            _check(backend.read_status(), tasks)
            assert backend._binary_reads, "the status read fell back to JSON"
            # A poll: tasks whose details did not change since the last read are not converted.
            read = _median_seconds(backend.read_status, runs)
            first_read = _median_seconds(lambda: _first_read(backend), runs)
            answer = server.answers[STATUS_FIELDS, True][1]  # what the reads got
            # The answer split into its task details, which a poll parses only if new.
            parse = _median_seconds(lambda: _status_view().FromString(answer), runs)
            convert = _median_seconds(lambda: run_status(answer, backend._task_keys), runs)
            convert_again = _median_seconds(
                lambda: run_status(answer, backend._task_keys, backend._seen_tasks), runs
            )
            mask = [("x-goog-fieldmask", STATUS_FIELDS)]
            json_read = _median_seconds(
                lambda: run_status(
                    aiplatform_v1.PipelineJob.serialize(
                        backend._client.get_pipeline_job(name=backend.resource_name, metadata=mask)
                    ),
                    backend._task_keys,
                ),
                runs,
            )
            whole = _median_seconds(
                lambda: run_status(
                    aiplatform_v1.PipelineJob.serialize(
                        backend._client.get_pipeline_job(name=backend.resource_name)
                    ),
                    backend._task_keys,
                ),
                runs,
            )
        finally:
            backend.close()
            server.shutdown()
    return {
        "tasks": tasks,
        "read_seconds": read,
        "first_read_seconds": first_read,
        "parse_seconds": parse,
        "answer_bytes": len(answer),
        "states_seconds": convert,
        "states_again_seconds": convert_again,
        "json_read_seconds": json_read,
        "unmasked_read_seconds": whole,
        "runs": runs,
    }


def _first_read(backend: Any) -> Any:
    from hydra_plugins.hydra_vertex_pipeline_launcher._backends._vertex import SeenTasks

    """A read by a launcher that has not read this run before (attach, or its first poll)."""
    backend._seen_tasks = SeenTasks()
    return backend.read_status()


def _check(status: Any, tasks: int) -> None:
    """What the read must still give with the field mask: each task, an ended one's artifact
    and console output."""
    assert len(status.tasks) == tasks, len(status.tasks)
    ended = [task for task in status.tasks.values() if task.state.terminal]
    assert ended and all(task.artifacts and task.logs for task in ended), ended[:1]


if __name__ == "__main__":
    print(measure())
