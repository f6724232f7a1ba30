"""hydra.launcher.secret_env: each step reads its secrets from Secret Manager itself; their
values reach neither the spec nor the staging root nor the records."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List

import google_crc32c
import pytest
from apputil import kept_result, read_json, run_app

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._collect import load_value

LOCAL = "hydra/launcher=vertex_pipeline_local"
SECRET = "s3cret-7d1e9a40"
VERSION = "projects/test-proj/secrets/api-token/versions/3"


class FakeSecretManager(ThreadingHTTPServer):
    """Secret Manager's `GET /v1/{version}:access`, for the one version it holds; every request
    is kept, to be checked."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: List[Dict[str, Any]] = []
        self.corrupt = 0  # XORed into the checksum it answers

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeSecretManager

    def do_GET(self) -> None:
        self.server.requests.append({"path": self.path, "headers": dict(self.headers)})
        if self.path != f"/v1/{VERSION}:access":
            self._answer(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
            return
        data = base64.b64encode(SECRET.encode()).decode()
        crc = str(google_crc32c.value(SECRET.encode()) ^ self.server.corrupt)
        self._answer(200, {"name": VERSION, "payload": {"data": data, "dataCrc32c": crc}})

    def _answer(self, status: int, body: Dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def secret_manager() -> Iterator[FakeSecretManager]:
    server = FakeSecretManager()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _args(sweep: Path, endpoint: str, version: str) -> List[str]:
    return [
        "-m",
        "+x=1,2",
        LOCAL,
        f"hydra.sweep.dir={sweep}",
        f"+hydra.launcher.secret_env.API_TOKEN={version}",
        f"hydra.launcher.secret_manager_endpoint={endpoint}",
    ]


def test_steps_read_their_secrets_themselves(
    secret_manager: FakeSecretManager, tmp_path: Path
) -> None:
    sweep = tmp_path / "m"
    proc = run_app("uses_secret.py", _args(sweep, secret_manager.endpoint, VERSION), tmp_path)
    assert proc.returncode == 0, proc.stderr
    for num in ("0", "1"):
        digest = hashlib.sha256(SECRET.encode()).hexdigest()
        assert (sweep / num / "token.sha256").read_text() == digest
        assert load_value(kept_result(sweep, sweep / num)) == len(SECRET)
    paths = [request["path"] for request in secret_manager.requests]
    assert paths == [f"/v1/{VERSION}:access"] * 2, "one read per step"
    assert all("Authorization" not in r["headers"] for r in secret_manager.requests)
    # Neither the spec, the records, the staging root nor any log holds the value.
    files = [p for p in sweep.rglob("*") if p.is_file()]
    assert any(p.name == "pipeline.yaml" for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in proc.stdout + proc.stderr


def test_a_secret_that_cannot_be_read_fails_the_job_naming_it(
    secret_manager: FakeSecretManager, tmp_path: Path
) -> None:
    sweep = tmp_path / "m"
    missing = "projects/test-proj/secrets/nope/versions/latest"
    proc = run_app("uses_secret.py", _args(sweep, secret_manager.endpoint, missing), tmp_path)
    assert proc.returncode != 0
    error = read_json(sweep / "0" / "vertex_status.json")["error"]
    assert f"the secret {missing} (hydra.launcher.secret_env) could not be read" in error
    assert "HTTP 404" in error


def test_a_secret_corrupted_on_the_way_is_refused(
    secret_manager: FakeSecretManager, tmp_path: Path
) -> None:
    secret_manager.corrupt = 1
    sweep = tmp_path / "m"
    proc = run_app("uses_secret.py", _args(sweep, secret_manager.endpoint, VERSION), tmp_path)
    assert proc.returncode != 0
    error = read_json(sweep / "0" / "vertex_status.json")["error"]
    assert "its checksum does not match" in error


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("+hydra.launcher.secret_env.API_TOKEN=my-token", "give a secret version"),
        (
            "+hydra.launcher.secret_env={A-B: " + VERSION + "}",
            "is not an environment variable name",
        ),
    ],
)
def test_a_secret_env_that_is_not_a_secret_version_is_refused(
    tmp_path: Path, setting: str, said: str
) -> None:
    proc = run_app("uses_secret.py", ["-m", "+x=1", LOCAL, setting], tmp_path)
    assert proc.returncode != 0 and said in proc.stderr, proc.stderr
