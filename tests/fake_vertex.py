"""A fake Vertex AI PipelineService speaking the real v1 REST API, for tests.

It serves ``create``/``get``/``cancel`` of ``pipelineJobs`` on 127.0.0.1 so that the
real ``google.cloud.aiplatform_v1.PipelineServiceClient(transport="rest")`` can talk to
it, and runs each container task of the submitted KFP v2 IR as a local subprocess (the
image is ignored; ``python``/``python3`` becomes ``sys.executable``, or the interpreter given as
``python``, which stands for the image's: the step then runs without the launching
environment's PYTHONPATH and virtualenv variables).

It deliberately depends only on the standard library so it can judge the product code
without sharing any of its assumptions.

Usage::

    fake = FakeVertex(scratch_root=tmp_path / "vertex", env={...}, max_parallel=4).start()
    client = aiplatform_v1.PipelineServiceClient(
        credentials=AnonymousCredentials(), transport="rest",
        client_options=ClientOptions(api_endpoint=fake.endpoint))
    ...
    fake.stop()

A task whose container is google-cloud-pipeline-components' CustomJob launcher is run as that
launcher has Vertex run it: its CustomJob payload is resolved (two placeholder passes), checked
and recorded in ``fake.custom_jobs``, and worker pool 0's container runs instead of the launcher.

Each task runs in ``scratch_root/<job id>/<task key>/`` (fresh per attempt: a copy of
``image_dir``, the image's working dir, when given) and logs to
``scratch_root/<job id>/<task key>.log``; its output artifacts are at
``scratch_root/<job id>/pipeline_root/<task key>/<name>`` (Vertex's pipeline root, as mounted
in a step), which is what ``{{$.inputs.artifacts[...].path}}`` of a consumer renders to. After
each attempt, what it wrote there is stored in the pipeline root on Cloud Storage (the emulator
at STORAGE_EMULATOR_HOST, when the root is a gs:// one), as gcsfuse stores it (a folder marker
``<name>/`` per folder), at the URI taskDetails[].outputs reports:
``<gcsOutputDirectory>/<project>/<job id>/<task key>_<task id>/<name>``.
Tasks are started in natural DAG-key order.

A request's ``X-Goog-FieldMask`` header (Google's response field mask) is honoured as Google's
front end honours it: only the named fields are answered (``fake.field_masks`` records each
request's), so a field the product reads but does not ask for is missing here as on Vertex.
A read asking for ``$alt=proto`` (a system parameter of Google's REST APIs) is answered as binary
protobuf (``application/x-protobuf``), its errors as binary ``google.rpc.Status``; with
``fake.binary_answers = False``, as a front end that ignores it (JSON). ``fake.alts`` records each
request's ``$alt``.
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional
from urllib.parse import parse_qs, unquote, urlsplit
from urllib.request import Request, urlopen

# A task whose container is this module is a CustomJob step made by google-cloud-pipeline-
# components: the fake creates (records) the CustomJob and runs its worker pool 0's container.
GCPC_LAUNCHER = "google_cloud_pipeline_components.container.v1.custom_job.launcher"
# google.cloud.aiplatform.v1.Scheduling.Strategy
_STRATEGIES = frozenset(
    {"STRATEGY_UNSPECIFIED", "ON_DEMAND", "LOW_COST", "STANDARD", "SPOT", "FLEX_START"}
)
# A job's artifacts: scratch_root/<job id>/pipeline_root/<task key>/<artifact name>.
ARTIFACTS_DIR = "pipeline_root"
# "less than 128 characters, and valid characters are /[a-z][0-9]-/" (PipelineService docs).
JOB_ID_RE = re.compile(r"^[a-z][-a-z0-9]{0,126}$")
# Labels: at most 64; keys and values at most 63 characters of lowercase letters, digits, _ and -
# (international characters allowed); a key starts with a letter.
LABEL_LIMIT, LABEL_COUNT_LIMIT = 63, 64
_LABEL_VALUE_RE = re.compile(r"^[\w-]{0,63}$")
_LABEL_KEY_RE = re.compile(r"^[^\W\d_][\w-]{0,62}$")
DISPLAY_NAME_LIMIT = 128
FAIL_FAST = ("PIPELINE_FAILURE_POLICY_FAIL_FAST", 2)
_PLACEHOLDER_RE = re.compile(r"""\{\{\$\.inputs\.parameters\[['"]([^'"\]]+)['"]\]\}\}""")
# {{$.inputs.artifacts['x'].path}} and {{$.outputs.artifacts['y'].path}}
_ARTIFACT_PATH_RE = re.compile(
    r"""\{\{\$\.(inputs|outputs)\.artifacts\[['"]([^'"\]]+)['"]\]\.path\}\}"""
)
_COLLECTION_RE = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/pipelineJobs$")
_JOB_RE = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/pipelineJobs/([^/:]+)(:cancel)?$")

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# Numbers from google.cloud.aiplatform.v1 PipelineState / PipelineTaskDetail.State; the REST
# client asks for `$alt=json;enum-encoding=int`, and the real server then answers with these.
_JOB_STATE_NUMBERS = {
    "PIPELINE_STATE_UNSPECIFIED": 0,
    "PIPELINE_STATE_QUEUED": 1,
    "PIPELINE_STATE_PENDING": 2,
    "PIPELINE_STATE_RUNNING": 3,
    "PIPELINE_STATE_SUCCEEDED": 4,
    "PIPELINE_STATE_FAILED": 5,
    "PIPELINE_STATE_CANCELLING": 6,
    "PIPELINE_STATE_CANCELLED": 7,
    "PIPELINE_STATE_PAUSED": 8,
}
_TASK_STATE_NUMBERS = {
    "STATE_UNSPECIFIED": 0,
    "PENDING": 1,
    "RUNNING": 2,
    "SUCCEEDED": 3,
    "CANCEL_PENDING": 4,
    "CANCELLING": 5,
    "CANCELLED": 6,
    "FAILED": 7,
    "SKIPPED": 8,
    "NOT_TRIGGERED": 9,
}
TERMINAL_JOB_STATES = frozenset(
    {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}
)
TERMINAL_TASK_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "NOT_TRIGGERED"})
# PipelineTaskSpec.TriggerPolicy.TriggerStrategy; unset means ALL_UPSTREAM_TASKS_SUCCEEDED.
_TRIGGER_STRATEGIES = frozenset({"ALL_UPSTREAM_TASKS_SUCCEEDED", "ALL_UPSTREAM_TASKS_COMPLETED"})
_ROOT_TASK_STATES = {
    "PIPELINE_STATE_PENDING": "PENDING",
    "PIPELINE_STATE_RUNNING": "RUNNING",
    "PIPELINE_STATE_CANCELLING": "CANCELLING",
    "PIPELINE_STATE_SUCCEEDED": "SUCCEEDED",
    "PIPELINE_STATE_FAILED": "FAILED",
    "PIPELINE_STATE_CANCELLED": "CANCELLED",
}
_FAILED_PRECONDITION = 9  # google.rpc.Code used by Vertex for task/job failures
_ECHOED_FIELDS = (
    "displayName",
    "pipelineSpec",
    "labels",
    "runtimeConfig",
    "serviceAccount",
    "network",
    "encryptionSpec",
    "reservedIpRanges",
    "templateUri",
)
_KINDS = ("create", "get", "cancel")
# Google's response field mask (system parameter `fields` / header X-Goog-FieldMask): paths
# separated by commas, sub-fields after "." or "/" or inside parentheses, "*" for all.
_MASK_TOKEN_RE = re.compile(r"\s*([(),./]|[^(),./\s]+)")


def now_rfc3339() -> str:
    """UTC timestamp with millisecond precision, as Vertex prints them."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ApiError(Exception):
    """An error answered as a google.rpc-style JSON body."""

    def __init__(self, status: int, message: str, status_name: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.status_name = status_name or _STATUS_NAMES.get(status, "UNKNOWN")

    def payload(self) -> dict[str, Any]:
        return {"error": {"code": self.status, "message": self.message, "status": self.status_name}}


@dataclass
class TaskRun:
    """One container task of a job, with its run-time state."""

    key: str
    name: str
    task_id: int
    argv: list[str]
    env: dict[str, str]
    max_retries: int
    workdir: Path
    log_path: Path
    create_time: str
    state: str = "PENDING"
    start_time: Optional[str] = None
    end_time: Optional[str] = None
    error: Optional[dict[str, Any]] = None
    attempts: int = 0
    killed: bool = False
    proc: Optional[subprocess.Popen[bytes]] = None
    custom_jobs: list[str] = field(default_factory=list)
    # dependentTasks (DAG keys): the task starts once they have all ended; unless
    # all_upstream_completed (triggerPolicy ALL_UPSTREAM_TASKS_COMPLETED), only if they all
    # succeeded, else it ends NOT_TRIGGERED.
    upstream: list[str] = field(default_factory=list)
    all_upstream_completed: bool = False
    # For a CustomJob step: the CustomJob it creates, or why it cannot be created.
    custom_job: Optional[dict[str, Any]] = None
    custom_job_error: Optional[str] = None
    # Its output artifacts' paths by name: Vertex's launcher fails a task that leaves one out.
    outputs: dict[str, str] = field(default_factory=dict)
    # Where each is stored in the pipeline root (gs://...), and what taskDetails says instead
    # (misreport_artifact).
    artifact_uris: dict[str, str] = field(default_factory=dict)
    reported_uris: dict[str, str] = field(default_factory=dict)

    def matches(self, substring: str) -> bool:
        return substring in self.key or substring in self.name


@dataclass
class JobRecord:
    """A pipeline job as stored by the fake; ``body`` is the create request JSON."""

    job_id: str
    name: str
    body: dict[str, Any]
    root_name: str
    root_task_id: int
    tasks: dict[str, TaskRun]
    create_time: str
    state: str = "PIPELINE_STATE_PENDING"
    update_time: str = ""
    start_time: Optional[str] = None
    end_time: Optional[str] = None
    error: Optional[dict[str, Any]] = None
    cancel_requested: bool = False


# --------------------------------------------------------------------------- IR -> argv


def stringify_parameter(value: Any) -> str:
    """Render a parameter the way the KFP driver does (Go FormatFloat 'f', -1; JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        # Struct numbers are doubles, so an int parameter arrives as 3.0 but renders as "3".
        # 'f' never uses an exponent: 1e-05 renders as "0.00001".
        return str(int(value)) if float(value).is_integer() else format(Decimal(repr(value)), "f")
    return json.dumps(_integral(value), separators=(",", ":"))


def _integral(value: Any) -> Any:
    """Whole doubles as ints, as Vertex's JSON prints Struct numbers (200.0 -> 200)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def _parameter_values(
    task: Mapping[str, Any], pipeline: Optional[Mapping[str, Any]] = None
) -> dict[str, str]:
    """A task's constants, and the pipeline parameters it takes (their defaultValue in the
    spec's root, given no runtimeConfig.parameterValues)."""
    params = task.get("inputs", {}).get("parameters", {})
    root = (pipeline or {}).get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    values = {}
    for name, spec in params.items():
        runtime = spec.get("runtimeValue", {})
        if "constant" in runtime:
            values[name] = stringify_parameter(runtime["constant"])
        elif "defaultValue" in root.get(spec.get("componentInputParameter"), {}):
            default = root[spec["componentInputParameter"]]["defaultValue"]
            values[name] = stringify_parameter(default)
    return values


def _artifact_paths(
    spec: Mapping[str, Any], key: str, task: Mapping[str, Any], root: Path
) -> dict[tuple[str, str], str]:
    """Where a task's artifacts are, as Vertex mounts its pipeline root (gcsfuse) in a step:
    ``root/<producer task>/<artifact>``, their folders made as Vertex's launcher makes them."""
    paths = {}
    for name, source in task.get("inputs", {}).get("artifacts", {}).items():
        upstream = source.get("taskOutputArtifact", {})
        if upstream:
            producer = root / str(upstream["producerTask"])
            paths[("inputs", name)] = str(producer / str(upstream["outputArtifactKey"]))
    component = spec["components"][task["componentRef"]["name"]]
    for name in component.get("outputDefinitions", {}).get("artifacts", {}):
        (root / key).mkdir(parents=True, exist_ok=True)
        paths[("outputs", name)] = str(root / key / name)
    return paths


def _render(
    text: str, params: Mapping[str, str], artifacts: Optional[Mapping[tuple[str, str], str]] = None
) -> str:
    text = _PLACEHOLDER_RE.sub(lambda m: params.get(m.group(1), m.group(0)), text)
    paths = artifacts or {}
    return _ARTIFACT_PATH_RE.sub(lambda m: paths.get((m.group(1), m.group(2)), m.group(0)), text)


def _container_of(spec: Mapping[str, Any], key: str, task: Mapping[str, Any]) -> dict[str, Any]:
    try:
        component = spec["components"][task["componentRef"]["name"]]
        return spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    except (KeyError, TypeError) as exc:
        raise ApiError(400, f"Task {key!r} has no resolvable container executor: {exc}") from None


def _argv_and_env(
    container: Mapping[str, Any],
    params: Mapping[str, str],
    artifacts: Optional[Mapping[tuple[str, str], str]] = None,
    python: str = sys.executable,
) -> tuple[list[str], dict[str, str]]:
    argv = [
        _render(str(a), params, artifacts)
        for a in container.get("command", []) + container.get("args", [])
    ]
    if argv and argv[0] in ("python", "python3"):
        argv[0] = python  # the image's interpreter: the test's own, unless given
    env = {e["name"]: _render(str(e.get("value", "")), params) for e in container.get("env", [])}
    return argv, env


def _trigger(key: str, task: Mapping[str, Any], keys: Iterable[str]) -> tuple[list[str], bool]:
    """The task's upstream DAG keys, and whether it starts whatever their outcome."""
    upstream = [str(k) for k in task.get("dependentTasks", [])]
    unknown = sorted(set(upstream) - set(keys))
    if unknown:
        raise ApiError(400, f"Task {key!r} depends on unknown tasks {unknown}.")
    strategy = task.get("triggerPolicy", {}).get("strategy", "ALL_UPSTREAM_TASKS_SUCCEEDED")
    if strategy not in _TRIGGER_STRATEGIES:
        raise ApiError(400, f"Task {key!r} has an unknown triggerPolicy.strategy {strategy!r}.")
    return upstream, strategy == "ALL_UPSTREAM_TASKS_COMPLETED"


def _custom_job_of(
    spec: Mapping[str, Any], task: Mapping[str, Any], container: Mapping[str, Any]
) -> dict[str, Any]:
    """The CustomJob GCPC's launcher asks Vertex to create for this task (its --payload), with
    every placeholder resolved; ValueError when Vertex would refuse it."""
    component = spec["components"][task["componentRef"]["name"]]
    inputs = component.get("inputDefinitions", {}).get("parameters", {})
    values = {
        name: stringify_parameter(d["defaultValue"]) if "defaultValue" in d else "null"
        for name, d in inputs.items()
    }
    values.update(_parameter_values(task))
    args = list(container.get("args", []))
    template = str(args[args.index("--payload") + 1])
    # Two passes: worker_pool_specs brings the task's own input placeholders in with it.
    text = _render(_render(template, values), values)
    text = text.replace("{{$.pipeline_persistent_resource_id}}", "")
    if "{{$.inputs." in text:
        raise ValueError(f"the CustomJob payload has an unresolved input: {text[:300]}")
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the CustomJob payload is not JSON ({exc}): {text[:300]}") from None
    _check_custom_job(payload)
    return payload


def _check_custom_job(payload: Mapping[str, Any]) -> None:
    pools = payload.get("job_spec", {}).get("worker_pool_specs")
    if not payload.get("display_name") or not isinstance(pools, list) or not pools:
        raise ValueError("CustomJob.display_name and job_spec.worker_pool_specs are required.")
    for pool in pools:
        if not pool.get("machine_spec", {}).get("machine_type"):
            raise ValueError("worker_pool_specs[].machine_spec.machine_type is required.")
        if not pool.get("container_spec", {}).get("image_uri"):
            raise ValueError("worker_pool_specs[].container_spec.image_uri is required.")
    strategy = payload["job_spec"].get("scheduling", {}).get("strategy", "STANDARD")
    if strategy not in _STRATEGIES:
        raise ValueError(f"Invalid value for scheduling.strategy: {strategy!r}.")


def _check_pipeline_job(body: Mapping[str, Any]) -> None:
    """What Vertex refuses with 400 INVALID_ARGUMENT: a body that is not a PipelineJob (parsed
    as strictly as the API parses it: unknown fields, wrong types), bad labels, a display name
    too long, no pipeline root."""
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format

    try:
        json_format.ParseDict(body, aiplatform_v1.PipelineJob.pb(aiplatform_v1.PipelineJob()))
    except json_format.ParseError as exc:
        raise ApiError(400, f"Invalid JSON payload received. {exc}") from None
    labels = body.get("labels", {})
    if len(labels) > LABEL_COUNT_LIMIT:
        raise ApiError(400, f"At most {LABEL_COUNT_LIMIT} labels are allowed.")
    for key, value in labels.items():
        if not _LABEL_KEY_RE.match(key) or not _LABEL_VALUE_RE.match(value):
            raise ApiError(400, f"Invalid label {key!r}: {value!r}.")
        if key != key.lower() or value != value.lower():
            raise ApiError(400, f"Label {key!r}: {value!r} must be lowercase.")
    if len(str(body.get("displayName", ""))) > DISPLAY_NAME_LIMIT:
        raise ApiError(400, f"display_name must be at most {DISPLAY_NAME_LIMIT} characters.")
    root = body.get("runtimeConfig", {}).get("gcsOutputDirectory")
    if not root and not body["pipelineSpec"].get("defaultPipelineRoot"):
        raise ApiError(400, "runtime_config.gcs_output_directory (the pipeline root) is required.")


def _fails_fast(job: JobRecord) -> bool:
    return job.body.get("runtimeConfig", {}).get("failurePolicy") in FAIL_FAST


def _natural_key(text: str) -> list[Any]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text)]


def _max_retries(task: Mapping[str, Any]) -> int:
    return int(float(task.get("retryPolicy", {}).get("maxRetryCount", 0)))


# --------------------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.fake._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._dispatch(self, "POST")

    def do_DELETE(self) -> None:
        self.server.fake._dispatch(self, "DELETE")

    def do_PATCH(self) -> None:
        self.server.fake._dispatch(self, "PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output readable

    def send_json(self, status: int, payload: Any) -> None:
        self.send(status, "application/json; charset=UTF-8", json.dumps(payload).encode())

    def send(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, f"Invalid JSON payload received. {exc}") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeVertex


def _route(method: str, path: str) -> tuple[str, tuple[str, ...]]:
    path = unquote(path)
    m = _COLLECTION_RE.match(path)
    if m and method == "POST":
        return "create", m.groups()
    m = _JOB_RE.match(path)
    if m and method == "POST" and m.group(4):
        return "cancel", m.groups()[:3]
    if m and method == "GET" and not m.group(4):
        return "get", m.groups()[:3]
    return "other", ()


# --------------------------------------------------------------------------- the fake


class FakeVertex:
    """In-process fake of the Vertex AI PipelineService (v1 REST)."""

    def __init__(
        self,
        scratch_root: Path | str,
        env: Optional[Mapping[str, str]] = None,
        max_parallel: int = 4,
        image_dir: Path | str | None = None,
        python: Path | str | None = None,
    ) -> None:
        self.scratch_root = Path(scratch_root)
        # The image's working dir: its files are in every task's working dir as it starts.
        self.image_dir = Path(image_dir) if image_dir is not None else None
        # The image's Python: steps' `python` runs it, without the launcher's PYTHONPATH or
        # virtualenv variables. None: the test's own interpreter and environment.
        self.python = str(python) if python is not None else None
        self.env = dict(env or {})
        self.max_parallel = max(1, max_parallel)
        self.requests: collections.Counter[str] = collections.Counter()
        # The X-Goog-FieldMask each request carried (None: none), by request kind.
        self.field_masks: dict[str, list[Optional[str]]] = collections.defaultdict(list)
        # The $alt each request asked for (None: none), by request kind.
        self.alts: dict[str, list[Optional[str]]] = collections.defaultdict(list)
        self.binary_answers = True
        self.jobs: dict[str, JobRecord] = {}
        # Every CustomJob a CustomJob step created (its payload, plus "name" and "task").
        self.custom_jobs: list[dict[str, Any]] = []
        self._cond = threading.Condition(threading.RLock())
        self._fail_next: dict[str, collections.deque[int]] = collections.defaultdict(
            collections.deque
        )
        self._fail_after_commit = 0
        self._kill_requests: list[tuple[str, str]] = []
        self._held = False
        self._stall_after_create = False
        self._stalling = False
        self._create_delay = 0.0
        self._stopped = threading.Event()
        self._ids = itertools.count(int(time.time()) * 1000)
        self._runners: list[threading.Thread] = []
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> FakeVertex:
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        # A short poll interval keeps stop() (and so every test teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-vertex", daemon=True
        )
        self._thread.start()
        return self

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "call start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Kill every task process, release stalled requests, then shut the HTTP server down."""
        self._stopped.set()
        with self._cond:
            for job in self.jobs.values():
                self._cancel_locked(job)
            self._cond.notify_all()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._thread = None  # stop() is idempotent; endpoint stays readable
        for runner in list(self._runners):
            runner.join(timeout=5)

    def __enter__(self) -> FakeVertex:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- fault injection

    def fail_next(self, kind: str, count: int = 1, status: int = 503) -> None:
        """Answer the next ``count`` requests of ``kind`` with ``status``, doing nothing."""
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
        with self._cond:
            self._fail_next[kind].extend([status] * count)

    def fail_create_after_commit(self, count: int = 1) -> None:
        """The next ``count`` creates really create and start the job, then answer 503."""
        with self._cond:
            self._fail_after_commit += count

    def stall_after_create(self) -> None:
        """Answer the next create, then never answer any request (get, cancel, another create)
        until ``stop``: each connection is accepted and read, and left waiting."""
        with self._cond:
            self._stall_after_create = True

    def delay_create(self, seconds: float) -> None:
        """Hold each create this long after it arrives, then create the job and answer (if the
        client still listens): a create in flight when the client gives up may still land."""
        with self._cond:
            self._create_delay = seconds

    def kill_task(self, job_id: str, task_name_substring: str) -> None:
        """SIGKILL matching tasks of ``job_id`` now if running, else as soon as they start."""
        with self._cond:
            self._kill_requests.append((job_id, task_name_substring))
            job = self.jobs.get(job_id)
            for task in job.tasks.values() if job else ():
                if task.matches(task_name_substring) and task.proc is not None:
                    self._kill_locked(task)

    def hold_tasks(self) -> None:
        """Start no new task process until ``release_tasks``."""
        with self._cond:
            self._held = True

    def release_tasks(self) -> None:
        """Let held tasks start (up to ``max_parallel`` at once)."""
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def misreport_artifact(
        self, job_id: str, task_name_substring: str, name: str, uri: str
    ) -> None:
        """Report ``uri`` in taskDetails for the output ``name`` of matching tasks (the artifact
        is still stored where it belongs)."""
        with self._cond:
            for task in self.jobs[job_id].tasks.values():
                if task.matches(task_name_substring):
                    task.reported_uris[name] = uri

    def cancel(self, job_id: str) -> bool:
        """Cancel as a console user would; False if the job had already ended."""
        with self._cond:
            return self._cancel_locked(self.jobs[job_id])

    # ----------------------------------------------------------------- observation

    def wait_for_state(self, job_id: str, states: Iterable[str], timeout: float) -> str:
        """Wait until the job is in one of ``states`` (prefix PIPELINE_STATE_ optional)."""
        wanted = {s if s.startswith("PIPELINE_STATE_") else f"PIPELINE_STATE_{s}" for s in states}

        def current() -> Optional[str]:
            job = self.jobs.get(job_id)
            return job.state if job else None

        return self._wait(current, wanted, timeout, f"job {job_id}")

    def wait_for_task_state(
        self, job_id: str, task: str, states: Iterable[str], timeout: float
    ) -> str:
        """Wait until the task (DAG key or display name) is in one of ``states``."""

        def current() -> Optional[str]:
            job = self.jobs.get(job_id)
            return self._find_task(job, task).state if job else None

        return self._wait(current, set(states), timeout, f"task {task!r} of {job_id}")

    def task_log(self, job_id: str, task_key: str) -> str:
        """Everything the task wrote to stdout/stderr, over all attempts."""
        path = self.scratch_root / job_id / f"{self._task_key(job_id, task_key)}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def task_dir(self, job_id: str, task_key: str) -> Path:
        """The task's working directory (its last attempt's, since each attempt starts fresh)."""
        return self.scratch_root / job_id / self._task_key(job_id, task_key)

    def _task_key(self, job_id: str, task: str) -> str:
        job = self.jobs.get(job_id)
        return self._find_task(job, task).key if job else task

    @staticmethod
    def _find_task(job: JobRecord, task: str) -> TaskRun:
        if task in job.tasks:
            return job.tasks[task]
        for candidate in job.tasks.values():
            if candidate.name == task:
                return candidate
        raise KeyError(f"no task {task!r} in job {job.job_id}")

    def _wait(self, current: Any, wanted: set[str], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                state = current()
                if state in wanted:
                    return state
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{what} is {state}, wanted one of {sorted(wanted)}")
                self._cond.wait(remaining)

    # ----------------------------------------------------------------- HTTP dispatch

    def _dispatch(self, handler: _Handler, method: str) -> None:
        url = urlsplit(handler.path)
        kind, parts = _route(method, url.path)
        mask = handler.headers.get("X-Goog-FieldMask")
        alt = parse_qs(url.query).get("$alt", [None])[0]
        with self._cond:
            self.requests[kind] += 1
            self.field_masks[kind].append(mask)
            self.alts[kind].append(alt)
            binary = alt == "proto" and self.binary_answers
            injected = self._fail_next[kind].popleft() if self._fail_next.get(kind) else None
            stall = self._stalling
        if stall:
            self._stopped.wait()
            return  # never answered: the connection closes when the fake stops
        try:
            if injected is not None:
                raise ApiError(injected, "injected")
            status, payload = self._handle(kind, parts, parse_qs(url.query), handler)
            if mask is not None:
                payload = masked(payload, parse_field_mask(mask))
        except ApiError as exc:
            status, payload = exc.status, exc.payload()
        if kind == "create" and status == 200:
            with self._cond:
                self._stalling = self._stall_after_create
        try:
            if binary and kind == "get":
                answer = as_protobuf(payload) if status == 200 else error_as_protobuf(payload)
                handler.send(status, "application/x-protobuf", answer)
            else:
                handler.send_json(status, payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (its timeout, or it was interrupted)

    def _handle(
        self, kind: str, parts: tuple[str, ...], query: dict[str, list[str]], handler: _Handler
    ) -> tuple[int, Any]:
        int_enums = "enum-encoding=int" in ";".join(query.get("$alt", []))
        if kind == "create":
            body = handler.read_json()
            self._stopped.wait(self._create_delay)
            job = self._create(parts[0], parts[1], query, body)
            return 200, self._render_job(job, int_enums)
        if kind == "get":
            with self._cond:
                return 200, self._render_job(self._lookup(*parts), int_enums)
        if kind == "cancel":
            handler.read_json()
            with self._cond:
                self._cancel_via_api(self._lookup(*parts))
            return 200, {}
        raise ApiError(404, f"The requested URL {handler.path} was not found on this server.")

    def _lookup(self, project: str, location: str, job_id: str) -> JobRecord:
        job = self.jobs.get(job_id)
        name = f"projects/{project}/locations/{location}/pipelineJobs/{job_id}"
        if job is None or job.name != name:
            raise ApiError(404, f'The PipelineJob "{name}" does not exist.')
        return job

    def _cancel_via_api(self, job: JobRecord) -> None:
        if not self._cancel_locked(job):
            # Vertex refuses to cancel a job that has already ended (400 FAILED_PRECONDITION).
            message = (
                f'The PipelineJob "{job.name}" is in state {job.state} and cannot be canceled.'
            )
            raise ApiError(400, message, "FAILED_PRECONDITION")

    # ----------------------------------------------------------------- create

    def _create(
        self, project: str, location: str, query: dict[str, list[str]], body: Any
    ) -> JobRecord:
        if not isinstance(body, dict) or not isinstance(body.get("pipelineSpec"), dict):
            raise ApiError(400, "PipelineJob.pipeline_spec is required.")
        _check_pipeline_job(body)
        job_id = (query.get("pipelineJobId") or [""])[0] or self._generated_id(body)
        if not JOB_ID_RE.match(job_id):
            raise ApiError(400, f"pipeline_job_id {job_id!r} must match {JOB_ID_RE.pattern}")
        with self._cond:
            if job_id in self.jobs:
                raise ApiError(409, f"PipelineJob {job_id!r} already exists.")
            job = self._new_job(project, location, job_id, body)
            self.jobs[job_id] = job
            runner = threading.Thread(target=self._run_job, args=(job,), daemon=True)
            self._runners.append(runner)
            runner.start()
            if self._fail_after_commit > 0:
                self._fail_after_commit -= 1
                raise ApiError(503, "injected after commit")
        return job

    @staticmethod
    def _generated_id(body: Mapping[str, Any]) -> str:
        """Like Vertex without a pipelineJobId: ``<display-name>-<timestamp>``."""
        stem = re.sub(r"[^-a-z0-9]", "-", str(body.get("displayName", "")).lower()).strip("-")
        if not stem[:1].isalpha():
            stem = f"pipeline-{stem}".rstrip("-")
        return f"{stem[:100]}-{datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S%f')}"

    def _new_job(self, project: str, location: str, job_id: str, body: dict[str, Any]) -> JobRecord:
        spec = body["pipelineSpec"]
        created = now_rfc3339()
        job_dir = self.scratch_root / job_id
        dag_tasks = spec.get("root", {}).get("dag", {}).get("tasks", {})
        # The spec went through a protobuf Struct (a map), so key order is arbitrary; run and
        # report tasks in natural key order (task-2 before task-10) to keep tests deterministic.
        root = str(body.get("runtimeConfig", {}).get("gcsOutputDirectory", "")).rstrip("/")
        tasks = {
            key: self._new_task(spec, key, dag_tasks[key], job_dir, created)
            for key in sorted(dag_tasks, key=_natural_key)
        }
        for task in tasks.values():
            stored = f"{root}/{project}/{job_id}/{task.key}_{task.task_id}"
            task.artifact_uris = {name: f"{stored}/{name}" for name in task.outputs}
        return JobRecord(
            job_id=job_id,
            name=f"projects/{project}/locations/{location}/pipelineJobs/{job_id}",
            body=body,
            root_name=str(spec.get("pipelineInfo", {}).get("name", job_id)),
            root_task_id=next(self._ids),
            tasks=tasks,
            create_time=created,
            update_time=created,
        )

    def _new_task(
        self, spec: Mapping[str, Any], key: str, task: Mapping[str, Any], job_dir: Path, now: str
    ) -> TaskRun:
        container = _container_of(spec, key, task)
        custom_job, custom_job_error = None, None
        if GCPC_LAUNCHER in container.get("command", []):
            try:
                custom_job = _custom_job_of(spec, task, container)
                container = custom_job["job_spec"]["worker_pool_specs"][0]["container_spec"]
            except ValueError as exc:
                custom_job_error, container = str(exc), {}
        artifacts = _artifact_paths(spec, key, task, job_dir / ARTIFACTS_DIR)
        python = self.python or sys.executable
        argv, env = _argv_and_env(container, _parameter_values(task, spec), artifacts, python)
        dag_keys = spec.get("root", {}).get("dag", {}).get("tasks", {})
        upstream, all_upstream_completed = _trigger(key, task, dag_keys)
        return TaskRun(
            upstream=upstream,
            all_upstream_completed=all_upstream_completed,
            custom_job=custom_job,
            custom_job_error=custom_job_error,
            outputs={name: path for (side, name), path in artifacts.items() if side == "outputs"},
            key=key,
            name=str(task.get("taskInfo", {}).get("name", key)),
            task_id=next(self._ids),
            argv=argv,
            env=env,
            max_retries=_max_retries(task),
            workdir=job_dir / key,
            log_path=job_dir / f"{key}.log",
            create_time=now,
        )

    # ----------------------------------------------------------------- running

    def _run_job(self, job: JobRecord) -> None:
        with self._cond:
            if job.state == "PIPELINE_STATE_PENDING":
                self._set_job_state(job, "PIPELINE_STATE_RUNNING")
                job.start_time = job.update_time
        queue = collections.deque(job.tasks.values())
        workers = [
            threading.Thread(target=self._worker, args=(job, queue), daemon=True)
            for _ in range(min(self.max_parallel, len(queue)))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        with self._cond:
            self._finish_job(job)

    def _worker(self, job: JobRecord, queue: collections.deque[TaskRun]) -> None:
        while True:
            with self._cond:
                task = self._next_triggered(job, queue)
                if task is None:
                    return
            self._run_task(job, task)

    def _next_triggered(
        self, job: JobRecord, queue: collections.deque[TaskRun]
    ) -> Optional[TaskRun]:
        """The first queued task whose upstream tasks have all ended (waits while there is
        none); a task whose trigger policy they do not meet ends NOT_TRIGGERED on the way."""
        while queue:
            ended = [
                t
                for t in queue
                if all(job.tasks[u].state in TERMINAL_TASK_STATES for u in t.upstream)
            ]
            if not ended:
                self._cond.wait()
                continue
            task = ended[0]
            queue.remove(task)
            if _fails_fast(job) and any(t.state == "FAILED" for t in job.tasks.values()):
                # Fail-fast: once a task has failed, no new task is scheduled.
                self._end_task(task, "CANCELLED")
                self._touch(job)
                continue
            upstream_ok = all(job.tasks[u].state == "SUCCEEDED" for u in task.upstream)
            if task.all_upstream_completed or upstream_ok:
                return task
            self._end_task(task, "NOT_TRIGGERED")
            self._touch(job)
        return None

    def _run_task(self, job: JobRecord, task: TaskRun) -> None:
        retry = True
        while retry:
            proc = self._start_attempt(job, task)
            if proc is None:
                return
            rc = proc.wait()
            _store_outputs(task)
            with self._cond:
                retry = self._after_attempt(job, task, rc)

    def _start_attempt(self, job: JobRecord, task: TaskRun) -> Optional[subprocess.Popen[bytes]]:
        with self._cond:
            while self._held and not job.cancel_requested:
                self._cond.wait()
            if job.cancel_requested:
                self._end_task(task, "CANCELLED")
                return None
            return self._spawn(job, task)

    def _spawn(self, job: JobRecord, task: TaskRun) -> Optional[subprocess.Popen[bytes]]:
        if task.custom_job_error is not None:
            message = f"Creating the CustomJob failed: {task.custom_job_error}"
            self._end_task(task, "FAILED", message)
            return None
        # Each attempt gets a fresh working dir, as a new container would.
        shutil.rmtree(task.workdir, ignore_errors=True)
        if self.image_dir is not None:
            shutil.copytree(self.image_dir, task.workdir)
        else:
            task.workdir.mkdir(parents=True)
        env = {**self._base_env(), **self.env, **task.env}
        with open(task.log_path, "ab") as log:
            try:
                proc = subprocess.Popen(
                    task.argv, cwd=task.workdir, env=env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            except (OSError, ValueError) as exc:
                log.write(f"failed to start {task.argv!r}: {exc}\n".encode())
                self._end_task(task, "FAILED", f"The replica workerpool0-0 could not start: {exc}")
                return None
        task.attempts += 1
        custom_job_name = f"{job.name.split('/pipelineJobs/')[0]}/customJobs/{next(self._ids)}"
        task.custom_jobs.append(custom_job_name)
        if task.custom_job is not None:
            self.custom_jobs.append({"name": custom_job_name, "task": task.name, **task.custom_job})
        task.proc = proc
        task.start_time = task.start_time or now_rfc3339()
        task.state = "RUNNING"
        if any(j == job.job_id and task.matches(s) for j, s in self._kill_requests):
            self._kill_locked(task)
        self._touch(job)
        return proc

    def _base_env(self) -> dict[str, str]:
        if self.python is None:
            return dict(os.environ)
        left_out = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE")
        return {key: value for key, value in os.environ.items() if key not in left_out}

    def _after_attempt(self, job: JobRecord, task: TaskRun, rc: int) -> bool:
        """Record an attempt's outcome; True if the task should run again."""
        task.proc = None
        status = 128 - rc if rc < 0 else rc  # a signal shows as 128+N, like in a container
        if task.killed:
            self._end_task(task, "FAILED", _replica_error(f"{status} (killed)", "Killed"))
        elif job.cancel_requested:
            self._end_task(task, "CANCELLED")
        elif rc == 0 and not _missing_output(task):
            self._end_task(task, "SUCCEEDED")
        elif task.attempts <= task.max_retries:
            self._touch(job)
            return True
        elif rc == 0:
            self._end_task(task, "FAILED", _missing_output(task))
        else:
            self._end_task(task, "FAILED", _replica_error(str(status), "Error"))
        self._touch(job)
        return False

    def _end_task(self, task: TaskRun, state: str, message: Optional[str] = None) -> None:
        if task.state in TERMINAL_TASK_STATES:
            return
        task.state = state
        task.end_time = now_rfc3339()
        if message is not None:
            task.error = {"code": _FAILED_PRECONDITION, "message": message}
        self._cond.notify_all()

    def _finish_job(self, job: JobRecord) -> None:
        failed = [t.name for t in job.tasks.values() if t.state != "SUCCEEDED"]
        if job.cancel_requested:
            state = "PIPELINE_STATE_CANCELLED"
        elif failed:
            state = "PIPELINE_STATE_FAILED"
            message = (
                "The DAG failed because some tasks failed. The failed tasks are: [{}].".format(
                    ", ".join(failed)
                )
            )
            job.error = {"code": _FAILED_PRECONDITION, "message": message}
        else:
            state = "PIPELINE_STATE_SUCCEEDED"
        self._set_job_state(job, state)
        job.end_time = job.update_time

    def _cancel_locked(self, job: JobRecord) -> bool:
        if job.state in TERMINAL_JOB_STATES:
            return False
        if not job.cancel_requested:
            job.cancel_requested = True
            self._set_job_state(job, "PIPELINE_STATE_CANCELLING")
        for task in job.tasks.values():
            if task.state == "PENDING":
                self._end_task(task, "CANCELLED")
            elif task.proc is not None:
                self._signal(task, signal.SIGKILL)
        self._cond.notify_all()
        return True

    def _kill_locked(self, task: TaskRun) -> None:
        task.killed = True
        self._signal(task, signal.SIGKILL)

    @staticmethod
    def _signal(task: TaskRun, signum: int) -> None:
        proc = task.proc
        if proc is None or proc.returncode is not None:
            return  # already reaped: its pid may belong to someone else now
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    def _set_job_state(self, job: JobRecord, state: str) -> None:
        job.state = state
        self._touch(job)

    def _touch(self, job: JobRecord) -> None:
        job.update_time = now_rfc3339()
        self._cond.notify_all()

    # ----------------------------------------------------------------- rendering

    def _render_job(self, job: JobRecord, int_enums: bool) -> dict[str, Any]:
        with self._cond:
            out: dict[str, Any] = {"name": job.name}
            out.update({k: job.body[k] for k in _ECHOED_FIELDS if k in job.body})
            out.update(
                state=_JOB_STATE_NUMBERS[job.state] if int_enums else job.state,
                createTime=job.create_time,
                updateTime=job.update_time,
                jobDetail={"taskDetails": self._render_tasks(job, int_enums)},
            )
            _put_optional(out, startTime=job.start_time, endTime=job.end_time, error=job.error)
            return out

    def _render_tasks(self, job: JobRecord, int_enums: bool) -> list[dict[str, Any]]:
        def enum(state: str) -> Any:
            return _TASK_STATE_NUMBERS[state] if int_enums else state

        root: dict[str, Any] = {
            "taskId": str(job.root_task_id),
            "taskName": job.root_name,
            "createTime": job.create_time,
            "state": enum(_ROOT_TASK_STATES.get(job.state, "PENDING")),
        }
        _put_optional(root, startTime=job.start_time, endTime=job.end_time, error=job.error)
        return [root] + [self._render_task(job, t, enum(t.state)) for t in job.tasks.values()]

    @staticmethod
    def _render_task(job: JobRecord, task: TaskRun, state: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "taskId": str(task.task_id),
            "parentTaskId": str(job.root_task_id),
            "taskName": task.name,
            "createTime": task.create_time,
            "state": state,
        }
        if task.custom_jobs:
            container = {"mainJob": task.custom_jobs[-1], "failedMainJobs": task.custom_jobs[:-1]}
            out["executorDetail"] = {"containerDetail": container}
        if task.start_time is not None and task.artifact_uris:
            # Vertex lists a running task's outputs already: their URIs are set before it starts.
            uris = {**task.artifact_uris, **task.reported_uris}
            out["outputs"] = {
                name: {
                    "artifacts": [
                        {"displayName": name, "uri": uri, "schemaTitle": "system.Artifact"}
                    ]
                }
                for name, uri in uris.items()
            }
        _put_optional(out, startTime=task.start_time, endTime=task.end_time, error=task.error)
        return out


def _store_outputs(task: TaskRun) -> None:
    """What the attempt wrote at its output paths, into the pipeline root on the emulator."""
    host = os.environ.get("STORAGE_EMULATOR_HOST")
    for name, path in task.outputs.items():
        uri = task.artifact_uris.get(name, "")
        if host and uri.startswith("gs://") and os.path.exists(path):
            bucket, _, key = uri[len("gs://") :].partition("/")
            for object_name, data in _objects_of(Path(path), key):
                _upload(host, bucket, object_name, data)


def _objects_of(path: Path, key: str) -> list[tuple[str, bytes]]:
    """A file as one object; a folder as its files and, as gcsfuse's mkdir leaves them, a
    marker object ``<folder>/`` per folder."""
    if path.is_file():
        return [(key, path.read_bytes())]
    found = [(f"{key}/", b"")]
    for item in sorted(path.rglob("*")):
        name = f"{key}/{item.relative_to(path).as_posix()}"
        found.append((f"{name}/", b"") if item.is_dir() else (name, item.read_bytes()))
    return found


def _upload(host: str, bucket: str, name: str, data: bytes) -> None:
    """A multipart upload, as google-cloud-storage sends small objects (the emulator's media
    upload cannot store an empty object, such as a folder marker)."""
    boundary = "fake-vertex-boundary"
    body = b"".join(
        [
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps({"name": name}).encode(),
            f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    url = f"{host}/upload/storage/v1/b/{bucket}/o?uploadType=multipart"
    request = Request(url, data=body, method="POST")
    request.add_header("Content-Type", f"multipart/related; boundary={boundary}")
    with urlopen(request, timeout=30) as answer:
        answer.read()


def _missing_output(task: TaskRun) -> Optional[str]:
    """What Vertex's launcher says of an output artifact the task did not write."""
    for name, path in task.outputs.items():
        if not os.path.exists(path):
            return f"Failed to upload output artifact {name!r}: stat {path}: no such file"
    return None


def _replica_error(status: str, reason: str) -> str:
    return (
        f"The replica workerpool0-0 exited with a non-zero status of {status}. "
        f"Termination reason: {reason}."
    )


def as_protobuf(job: dict[str, Any]) -> bytes:
    """A PipelineJob as JSON -> its binary protobuf, as Google's front end serves `$alt=proto`.

    Encoded a task at a time (each task's encoding kept while it is unchanged): serialized
    messages put one after another parse as one merged message, repeated fields appended in
    order, and encoding 10 000 tasks whole at every read would make the fake the slow side.
    """
    detail = job.get("jobDetail") or {}
    tasks = detail.get("taskDetails") or []
    rest = {**job, "jobDetail": {k: v for k, v in detail.items() if k != "taskDetails"}}
    encoded = [_encoded(json.dumps(rest, sort_keys=True))]
    encoded += [_encoded_task(json.dumps(task, sort_keys=True)) for task in tasks]
    return b"".join(encoded)


def error_as_protobuf(payload: dict[str, Any]) -> bytes:
    """An error as JSON -> the google.rpc.Status a read asking for protobuf gets."""
    from google.rpc import code_pb2, status_pb2

    error = payload["error"]
    code = code_pb2.Code.Value(error["status"])
    return status_pb2.Status(code=code, message=error["message"]).SerializeToString()


def _encoded_task(task: str) -> bytes:
    return _encoded(f'{{"jobDetail": {{"taskDetails": [{task}]}}}}')


@functools.lru_cache(maxsize=100_000)
def _encoded(job: str) -> bytes:
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format

    message = aiplatform_v1.PipelineJob.pb()()
    json_format.Parse(job, message, ignore_unknown_fields=True)
    return message.SerializeToString()


def parse_field_mask(text: str) -> Optional[dict[str, Any]]:
    """A response field mask -> {field: its own mask, or None for the whole field}; None: all.

    "a(b,c),d.e" -> {"a": {"b": None, "c": None}, "d": {"e": None}}. Refused (400, as Google's
    front end refuses it): empty names, unbalanced parentheses.
    """
    tree, rest = _mask_list(_MASK_TOKEN_RE.findall(text), text)
    if rest:
        raise ApiError(400, f"Invalid field mask {text!r}: unexpected {rest[0]!r}")
    return tree


def _mask_list(tokens: list[str], text: str) -> tuple[Optional[dict[str, Any]], list[str]]:
    """Comma-separated paths from the start of tokens, and the tokens after them."""
    tree: Optional[dict[str, Any]] = {}
    while True:
        path, tokens = _mask_path(tokens, text)
        tree = _merged(tree, path)
        if not tokens or tokens[0] != ",":
            return tree, tokens
        tokens = tokens[1:]


def _mask_path(tokens: list[str], text: str) -> tuple[Optional[dict[str, Any]], list[str]]:
    """One path (name, then "." name ..., then an optional "(...)") as a mask tree."""
    if not tokens or tokens[0] in "(),./":
        raise ApiError(400, f"Invalid field mask {text!r}: a field name is missing")
    name, tokens = tokens[0], tokens[1:]
    sub: Optional[dict[str, Any]] = None
    if tokens and tokens[0] in "./":
        sub, tokens = _mask_path(tokens[1:], text)
    elif tokens and tokens[0] == "(":
        sub, tokens = _mask_list(tokens[1:], text)
        if not tokens or tokens[0] != ")":
            raise ApiError(400, f"Invalid field mask {text!r}: unbalanced parentheses")
        tokens = tokens[1:]
    return (None if name == "*" else {name: sub}), tokens


def _merged(
    tree: Optional[dict[str, Any]], path: Optional[dict[str, Any]]
) -> Optional[dict[str, Any]]:
    """Two masks as one: a field named whole anywhere is kept whole."""
    if tree is None or path is None:
        return None
    merged = dict(tree)
    for name, sub in path.items():
        merged[name] = _merged(merged[name], sub) if name in merged else sub
    return merged


def masked(payload: Any, mask: Optional[dict[str, Any]]) -> Any:
    """payload with only the fields mask names; a list's mask applies to each of its items."""
    if mask is None:
        return payload
    if isinstance(payload, list):
        return [masked(item, mask) for item in payload]
    if not isinstance(payload, dict):
        return payload  # a scalar has no sub-fields to drop
    return {name: masked(payload[name], sub) for name, sub in mask.items() if name in payload}


def _put_optional(target: dict[str, Any], **values: Any) -> None:
    target.update({k: v for k, v in values.items() if v is not None})
