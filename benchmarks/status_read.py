"""Target 7: one status read of a 1000-task run, and turning it into job states.

A local HTTP server answers the Vertex `get` with a PipelineJob as Vertex returns it (its
pipeline spec echoed, every task's detail); the vertex backend reads it with aiplatform's
REST client, as in a poll. Timed: the whole read (request, parsing, states), and turning the
read PipelineJob into each job's state alone (`run_status`).
"""

from __future__ import annotations

import http.server
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import yaml

STATES = ("SUCCEEDED", "RUNNING", "FAILED", "PENDING", "NOT_TRIGGERED", "CANCELLED")
RUN_ID = "bench-20261126-100000-000000"


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


def _job_json(spec: Dict[str, Any]) -> bytes:
    details: List[Dict[str, Any]] = [{"taskId": "1", "taskName": "bench", "state": "RUNNING"}]
    for n, task in enumerate(spec["root"]["dag"]["tasks"].values()):
        detail = {
            "taskId": str(n + 2),
            "taskName": task["taskInfo"]["name"],
            "state": STATES[n % len(STATES)],
            "createTime": "2026-11-26T10:00:00Z",
            "startTime": "2026-11-26T10:00:02.123456Z",
        }
        if detail["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            detail["endTime"] = "2026-11-26T10:03:04.5Z"
        if detail["state"] == "FAILED":
            detail["error"] = {"code": 9, "message": "The replica workerpool0-0 exited with 1."}
        details.append(detail)
    job = {
        "name": f"projects/p/locations/europe-west4/pipelineJobs/{RUN_ID}",
        "state": "PIPELINE_STATE_RUNNING",
        "pipelineSpec": spec,
        "jobDetail": {"taskDetails": details},
    }
    return json.dumps(job).encode()


def _serve(body: bytes) -> http.server.ThreadingHTTPServer:
    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
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
    from hydra_plugins.hydra_vertex_pipeline_launcher._backends._base import RunContext
    from hydra_plugins.hydra_vertex_pipeline_launcher._backends._vertex import (
        VertexBackend,
        run_status,
    )
    from hydra_plugins.hydra_vertex_pipeline_launcher.config import settings_from

    spec = _spec(tasks)
    server = _serve(_job_json(spec))
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
            status = backend.read_status()
            assert len(status.tasks) == tasks, len(status.tasks)
            read = _median_seconds(backend.read_status, runs)
            job = backend._client.get_pipeline_job(name=backend.resource_name)
            convert = _median_seconds(lambda: run_status(job, backend._task_keys), runs)
        finally:
            backend.close()
            server.shutdown()
    return {"tasks": tasks, "read_seconds": read, "states_seconds": convert, "runs": runs}


if __name__ == "__main__":
    print(measure())
