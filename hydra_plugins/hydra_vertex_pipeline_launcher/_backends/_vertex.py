"""The vertex backend: the compiled spec becomes a Vertex AI PipelineJob, via aiplatform's client.

REST everywhere: the same transport reaches Vertex and, for an http:// api_endpoint, a local
emulator (gRPC there always wants TLS). PipelineJob.submit()/wait() are not used: submit creates
buckets through other APIs and wait() polls every 5 s forever.

Status reads alone are not the client's: they ask for the answer as binary protobuf (`$alt=proto`,
a system parameter of every Google REST API), which the client's REST transport cannot ask for.
Its JSON parse (protobuf's json_format, in Python) takes about a second at 10 000 tasks; the
binary parse, a few milliseconds.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Type, TypeVar
from urllib.parse import quote

from ..config import LauncherConfigError, VertexPipelineLauncherConf
from ._base import (
    CancelOutcome,
    RunContext,
    RunLocation,
    RunNotFound,
    RunStatus,
    State,
    TaskStatus,
)
from ._spec import read_spec

log = logging.getLogger(__name__)

T = TypeVar("T")
CONSOLE_URL = (
    "https://console.cloud.google.com/vertex-ai/locations/{location}/pipelines/runs/{id}"
    "?project={project}"
)
LABEL_LIMIT = 63
# Google's response field mask (https://cloud.google.com/apis/docs/system-parameters): Vertex
# then leaves out of a status read the echoed spec and everything of a task but what run_status
# reads, which at thousands of tasks is most of the answer's size and of the client's parse.
STATUS_FIELDS = (
    "state,error.message,jobDetail.taskDetails(taskName,state,error.message,startTime,endTime,"
    "outputs,executorDetail(containerDetail.mainJob,customJobDetail.job))"
)
PROTOBUF = "application/x-protobuf"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# Seconds between looks for a run whose create was in flight when the launcher was interrupted.
LOOKUP_DELAY = 1.0
TASK_STATES = {
    "SUCCEEDED": State.SUCCEEDED,
    "FAILED": State.FAILED,
    # Never run: SKIPPED (e.g. a condition false), NOT_TRIGGERED (its trigger policy was not
    # met, or a cancel came first: see _unstarted_state).
    "SKIPPED": State.FAILED,
    "NOT_TRIGGERED": State.FAILED,
    "CANCELLED": State.CANCELLED,
    "RUNNING": State.RUNNING,
    "CANCEL_PENDING": State.RUNNING,
    "CANCELLING": State.RUNNING,
}
# Where a CustomJob's console output is: Cloud Logging, by the job's number.
LOGS_FILTER = 'resource.type="ml_job" AND resource.labels.job_id="{job_id}"'
LOGS_URL = "https://console.cloud.google.com/logs/query;query={query}?project={project}"
NOT_TRIGGERED_ERROR = (
    "Vertex did not start the step (NOT_TRIGGERED): a step it waits for did not succeed"
)
RUN_STATES = {
    "PIPELINE_STATE_RUNNING": State.RUNNING,
    "PIPELINE_STATE_CANCELLING": State.RUNNING,
    "PIPELINE_STATE_SUCCEEDED": State.SUCCEEDED,
    "PIPELINE_STATE_FAILED": State.FAILED,
    "PIPELINE_STATE_CANCELLED": State.CANCELLED,
    # A paused run runs nothing more until someone resumes it: this launcher stops waiting.
    "PIPELINE_STATE_PAUSED": State.FAILED,
}


class VertexBackend:
    steps_share_filesystem = False
    outlives_launcher = True

    def __init__(self, settings: VertexPipelineLauncherConf, run: RunContext) -> None:
        self.settings = settings
        self.run = run
        self.parent = f"projects/{settings.project}/locations/{settings.location}"
        self.resource_name = f"{self.parent}/pipelineJobs/{run.run_id}"
        self.location = RunLocation(
            resource_name=self.resource_name,
            console_url=CONSOLE_URL.format(
                location=settings.location, id=run.run_id, project=settings.project
            ),
        )
        self._client, self._session = _pipeline_client(settings)
        self._job_url = f"{_base_url(settings)}/v1/{self.resource_name}"
        self._task_keys: Dict[str, str] = {}
        self._seen_tasks = SeenTasks()
        self._create_sent = False
        # The call's metadata naming the fields (an HTTP header); dropped (whole runs read) if
        # Vertex ever refuses it.
        self._status_mask: Tuple[Tuple[str, str], ...] = (("x-goog-fieldmask", STATUS_FIELDS),)
        # Status reads as binary protobuf, until an answer is not that.
        self._binary_reads = True

    def submit(self, spec_path: Path) -> None:
        spec = self._read_spec(spec_path)
        self._create_once(self._pipeline_job(spec))

    def reattach(self, spec_path: Path) -> None:
        """Reads and cancels a run that another process submitted from this spec."""
        self._read_spec(spec_path)
        self._create_sent = True

    def _read_spec(self, spec_path: Path) -> Dict[str, Any]:
        spec = read_spec(spec_path)
        tasks = spec["root"]["dag"]["tasks"]
        # Vertex reports a task by its display name; the DAG key is accepted too, unless it is
        # also the pipeline's name, which the run's own (root) task detail carries.
        self._task_keys = {key: key for key in tasks}
        self._task_keys.pop(spec["pipelineInfo"]["name"], None)
        self._task_keys.update({task["taskInfo"]["name"]: key for key, task in tasks.items()})
        return spec

    def read_status(self) -> RunStatus:
        from google.api_core import exceptions

        try:
            answer = self._read_job()
        except exceptions.NotFound as e:
            raise RunNotFound(
                f"Vertex has no run {self.resource_name} ({e.message}): it was never created "
                "(its launcher stopped before the create), or it was deleted."
            ) from e
        return run_status(answer, self._task_keys, self._seen_tasks)

    def _read_job(self) -> bytes:
        """The run, field-masked, as binary protobuf (converted from JSON if read as that)."""
        from google.api_core import exceptions

        if self._binary_reads:
            try:
                return self._call(self._read_binary)
            except (exceptions.BadRequest, NotBinary) as e:
                log.warning(
                    f"Vertex did not answer a status read as protobuf ({e}); reading JSON from "
                    "now on, which takes longer at thousands of jobs"
                )
                self._binary_reads = False
        from google.cloud import aiplatform_v1

        read = functools.partial(self._call, self._client.get_pipeline_job, name=self.resource_name)
        if self._status_mask:
            try:
                return aiplatform_v1.PipelineJob.serialize(read(metadata=self._status_mask))
            except exceptions.BadRequest as e:  # the name is ours and well formed: the mask
                log.warning(
                    f"Vertex refused the field mask of a status read ({e.message}); reading "
                    "whole runs from now on, which takes longer at thousands of jobs"
                )
                self._status_mask = ()
        return aiplatform_v1.PipelineJob.serialize(read())

    def _read_binary(self, retry: Any, timeout: float) -> bytes:
        """The run, field-masked, as binary protobuf: tries and waits bounded as _call's."""
        deadline = time.monotonic() + timeout
        return retry(lambda: self._get_binary(max(deadline - time.monotonic(), 1.0)))()

    def _get_binary(self, timeout: float) -> bytes:
        from google.api_core import exceptions

        answer = self._session.get(
            self._job_url,
            params={"$alt": "proto"},
            headers={"X-Goog-FieldMask": STATUS_FIELDS},
            timeout=timeout,
            max_allowed_time=timeout,  # a token refresh included
        )
        content_type = answer.headers.get("Content-Type", "").partition(";")[0].strip()
        if answer.status_code >= 400 and content_type == PROTOBUF:
            from google.rpc import status_pb2

            # An error answered in the format asked for: a google.rpc.Status.
            message = status_pb2.Status.FromString(answer.content).message
            raise exceptions.from_http_status(answer.status_code, message)
        if answer.status_code >= 400:
            raise exceptions.from_http_response(answer)
        if content_type != PROTOBUF:
            raise NotBinary(f"its answer was {content_type or 'untyped'}, not {PROTOBUF}")
        return answer.content

    def cancel(self) -> CancelOutcome:
        """Cancels the run, all within request_timeout; raises if Vertex cannot confirm it.

        A 404 may only mean that a create in flight when the launcher was interrupted has not
        landed yet: the cancel is tried again until the deadline, and so cancels the run if it
        appears.
        """
        from google.api_core import exceptions

        if not self._create_sent:
            return CancelOutcome.NEVER_CREATED
        deadline = time.monotonic() + self.settings.request_timeout
        while True:
            try:
                self._call(
                    self._client.cancel_pipeline_job,
                    deadline - time.monotonic(),
                    name=self.resource_name,
                )
                return CancelOutcome.CONFIRMED
            except exceptions.NotFound:
                if time.monotonic() + LOOKUP_DELAY >= deadline:
                    log.info(
                        f"{self.resource_name} did not appear within "
                        f"{self.settings.request_timeout:.0f}s: it was not created"
                    )
                    return CancelOutcome.NEVER_CREATED
                time.sleep(LOOKUP_DELAY)
            except exceptions.BadRequest as e:  # FAILED_PRECONDITION: it ended meanwhile
                log.info(f"{self.resource_name} had already ended: {e.message}")
                return CancelOutcome.ALREADY_ENDED

    def close(self) -> None:
        self._client.transport.close()
        self._session.close()

    def _pipeline_job(self, spec: Dict[str, Any]) -> Any:
        from google.cloud import aiplatform_v1

        settings = self.settings
        job = aiplatform_v1.PipelineJob(
            display_name=self.run.run_id,
            pipeline_spec=spec,
            labels=vertex_labels(settings.labels, self.run.job_name),
            runtime_config=aiplatform_v1.PipelineJob.RuntimeConfig(
                gcs_output_directory=f"{self.run.staging_uri}/pipeline_root",
                failure_policy=aiplatform_v1.PipelineFailurePolicy.PIPELINE_FAILURE_POLICY_FAIL_SLOW,
            ),
        )
        if settings.service_account:
            job.service_account = settings.service_account
        if settings.network:
            job.network = settings.network
        if settings.encryption_spec_key_name:
            job.encryption_spec = aiplatform_v1.EncryptionSpec(
                kms_key_name=settings.encryption_spec_key_name
            )
        return job

    def _create_once(self, job: Any) -> Any:
        """Creates the run; after an unclear answer, looks it up before trying again."""
        from google.api_core import exceptions

        deadline = time.monotonic() + self.settings.request_timeout
        delay = 1.0
        while True:
            self._create_sent = True
            try:
                return self._client.create_pipeline_job(
                    parent=self.parent,
                    pipeline_job=job,
                    pipeline_job_id=self.run.run_id,
                    retry=None,
                    timeout=max(deadline - time.monotonic(), 1.0),
                )
            except exceptions.Conflict:  # 409: the id exists, so an earlier try created it
                return self._call(self._client.get_pipeline_job, name=self.resource_name)
            except (exceptions.Forbidden, exceptions.NotFound, exceptions.BadRequest) as e:
                raise self._refusal(e) from e
            except _transient() as e:
                existing = self._existing_run()
                if existing is not None:
                    return existing
                if time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    f"Creating {self.resource_name} failed ({e!r}); retrying in {delay:.0f}s"
                )
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _refusal(self, error: Any) -> LauncherConfigError:
        settings = self.settings
        where = f"projects/{settings.project}/locations/{settings.location}"
        if error.code == 403:
            runner = settings.service_account or "the default compute service account"
            return LauncherConfigError(
                f"Vertex denied creating a pipeline run in {where} ({error.message}). Grant "
                f"roles/aiplatform.user, and roles/iam.serviceAccountUser on {runner}."
            )
        if error.code == 404:
            return LauncherConfigError(
                f"Vertex has no {where} ({error.message}): check hydra.launcher.project and "
                "hydra.launcher.location (and hydra.launcher.api_endpoint, if set)."
            )
        return LauncherConfigError(f"Vertex refused the pipeline run: {error.message}")

    def _existing_run(self) -> Optional[Any]:
        from google.api_core import exceptions

        try:
            return self._call(self._client.get_pipeline_job, name=self.resource_name)
        except exceptions.NotFound:
            return None

    def _call(self, method: Callable[..., T], within: Optional[float] = None, **request: Any) -> T:
        """One client call, its tries and each try's wait for an answer all bounded by
        `within` (request_timeout by default); 429, 5xx and dropped connections are retried."""
        from google.api_core import retry

        seconds = max(within if within is not None else self.settings.request_timeout, 1.0)
        policy = retry.Retry(
            predicate=retry.if_exception_type(*_transient()),
            initial=0.5,
            maximum=30.0,
            timeout=seconds,
        )
        # A number here makes the client give each try only what is left of `seconds`.
        return method(**request, retry=policy, timeout=seconds)


@functools.lru_cache(maxsize=None)
def _transient() -> Tuple[Type[BaseException], ...]:
    """Errors after which the same request may well succeed: 429, 5xx, dropped connections."""
    import requests
    from google.api_core import exceptions
    from google.auth import exceptions as auth_exceptions

    return (
        auth_exceptions.TransportError,  # a token refresh that lost its connection
        exceptions.TooManyRequests,
        exceptions.InternalServerError,
        exceptions.BadGateway,
        exceptions.ServiceUnavailable,
        exceptions.GatewayTimeout,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
    )


class NotBinary(Exception):
    """A status read answered in another format than protobuf."""


def _endpoint(settings: VertexPipelineLauncherConf) -> str:
    return settings.api_endpoint or f"{settings.location}-aiplatform.googleapis.com"


def _base_url(settings: VertexPipelineLauncherConf) -> str:
    endpoint = _endpoint(settings).rstrip("/")
    return endpoint if re.match(r"https?://", endpoint) else f"https://{endpoint}"


def _pipeline_client(settings: VertexPipelineLauncherConf) -> Tuple[Any, Any]:
    """The client, and an authorized session with the same credentials for binary reads."""
    import google.auth
    from google.api_core.client_options import ClientOptions
    from google.auth import exceptions as auth_exceptions
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud import aiplatform_v1

    endpoint = _endpoint(settings)
    try:
        if endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        else:
            credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
        client = aiplatform_v1.PipelineServiceClient(
            credentials=credentials,
            transport="rest",
            client_options=ClientOptions(api_endpoint=endpoint),
        )
        return client, AuthorizedSession(credentials)
    except auth_exceptions.DefaultCredentialsError as e:
        raise LauncherConfigError(
            "hydra.launcher.backend=vertex needs Google credentials and none were found. Run "
            "`gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS."
        ) from e


class SeenTasks:
    """What a read converted, for the next: by a task detail's encoding, its DAG key (None: no
    job's) and status, and whether the run was cancelled then (it changes unstarted tasks')."""

    def __init__(self) -> None:
        self.cancelled = False
        self.by_encoding: Dict[bytes, Tuple[Optional[str], Optional[TaskStatus]]] = {}


def run_status(
    answer: bytes, task_keys: Dict[str, str], seen: Optional[SeenTasks] = None
) -> RunStatus:
    """A PipelineJob as read from Vertex (its binary protobuf) -> the run's state and each known
    task's, by DAG key.

    task_keys: the name Vertex reports a task by -> its DAG key. seen: kept from one read to the
    next. Each task detail is parsed and converted only when its encoding is new: at 10 000
    tasks, parsing and converting them all is most of a read. (A task whose encoding differs
    with the same content is only converted again.)
    """
    from google.rpc import status_pb2

    view = _status_view().FromString(answer)
    # A state this client does not know yet reads as unspecified (pending), not as an error.
    state_name = _run_state_names().get(view.state, "PIPELINE_STATE_UNSPECIFIED")
    cancelled = state_name in ("PIPELINE_STATE_CANCELLING", "PIPELINE_STATE_CANCELLED")
    earlier = seen.by_encoding if seen is not None and seen.cancelled == cancelled else {}
    now: Dict[bytes, Tuple[Optional[str], Optional[TaskStatus]]] = {}
    tasks = {}
    for encoded in view.job_detail.task_details:
        known = earlier.get(encoded) or _converted(encoded, task_keys, cancelled)
        now[encoded] = known
        if known[0] is not None:
            tasks[known[0]] = known[1]
    if seen is not None:
        seen.cancelled, seen.by_encoding = cancelled, now
    error = status_pb2.Status.FromString(view.error).message or None
    if state_name == "PIPELINE_STATE_PAUSED":
        error = "Vertex paused the run; resume or cancel it in the console"
    return RunStatus(state=RUN_STATES.get(state_name, State.PENDING), tasks=tasks, error=error)


def _converted(
    encoded: bytes, task_keys: Dict[str, str], cancelled: bool
) -> Tuple[Optional[str], Optional[TaskStatus]]:
    from google.cloud import aiplatform_v1

    detail = aiplatform_v1.PipelineTaskDetail.pb().FromString(encoded)
    key = task_keys.get(detail.task_name)
    return key, None if key is None else _task_status(detail, cancelled)


@functools.lru_cache(maxsize=None)
def _status_view() -> Any:
    """PipelineJob as a status read needs it parsed: its state, its error, and each task detail
    left encoded (protobuf's own parser splits them; run_status parses only those it has not
    seen). The same field numbers as aiplatform's PipelineJob, taken from it."""
    from google.cloud import aiplatform_v1
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    job = aiplatform_v1.PipelineJob.pb().DESCRIPTOR.fields_by_name
    detail = job["job_detail"].message_type.fields_by_name["task_details"]
    field = descriptor_pb2.FieldDescriptorProto
    one, many = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    file = descriptor_pb2.FileDescriptorProto(name="status_view.proto", package="status_view")
    view = file.message_type.add(name="Job")
    view.field.add(name="state", number=job["state"].number, type=field.TYPE_INT32, label=one)
    view.field.add(name="error", number=job["error"].number, type=field.TYPE_BYTES, label=one)
    view.field.add(
        name="job_detail",
        number=job["job_detail"].number,
        type=field.TYPE_MESSAGE,
        type_name=".status_view.Detail",
        label=one,
    )
    file.message_type.add(name="Detail").field.add(
        name="task_details", number=detail.number, type=field.TYPE_BYTES, label=many
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("status_view.Job"))


def _task_status(detail: Any, run_cancelled: bool) -> TaskStatus:
    """detail: a PipelineTaskDetail protobuf. NOT_TRIGGERED: in a cancelled run, a step the
    cancel came before (CANCELLED, as on the other backends); else a step whose trigger policy
    was not met."""
    name = _task_state_names().get(detail.state, "STATE_UNSPECIFIED")
    state = TASK_STATES.get(name, State.PENDING)
    error = detail.error.message or None
    if name == "NOT_TRIGGERED":
        if run_cancelled:
            state, error = State.CANCELLED, None
        else:
            error = error or NOT_TRIGGERED_ERROR
    elif state is State.FAILED and error is None:
        error = f"Vertex reports the task {name}"
    started, ended = _iso(detail.start_time), _iso(detail.end_time)
    if not state.terminal:  # what an ended task left is read once, when it is collected
        return TaskStatus(state=state, started=started, ended=ended, error=error)
    artifacts = tuple(
        (output, listed.artifacts[0].uri)
        for output, listed in detail.outputs.items()
        if listed.artifacts and listed.artifacts[0].uri
    )
    executor = detail.executor_detail
    job = executor.container_detail.main_job or executor.custom_job_detail.job
    return TaskStatus(state, started, ended, error, artifacts, cloud_logging(job) if job else None)


def cloud_logging(job: str) -> str:
    """Where the console output of the CustomJob `job` (its resource name) is."""
    parts = job.split("/")  # projects/<project>/locations/<location>/customJobs/<id>
    project, job_id = parts[1], parts[-1]
    query = LOGS_FILTER.format(job_id=job_id)
    before, after = _quoted_logs_filter()
    url = LOGS_URL.format(query=before + quote(job_id, safe="") + after, project=project)
    return f"Cloud Logging: gcloud logging read '{query}' --project={project} --order=asc, or {url}"


@functools.lru_cache(maxsize=None)
def _quoted_logs_filter() -> Tuple[str, str]:
    """LOGS_FILTER URL-quoted, before and after the job id: quoting it whole for each of
    thousands of ended tasks was a third of a status read's conversion."""
    before, after = LOGS_FILTER.split("{job_id}")
    return quote(before, safe=""), quote(after, safe="")


@functools.lru_cache(maxsize=None)
def _run_state_names() -> Dict[int, str]:
    from google.cloud import aiplatform_v1

    return {state.value: state.name for state in aiplatform_v1.PipelineState}


@functools.lru_cache(maxsize=None)
def _task_state_names() -> Dict[int, str]:
    from google.cloud import aiplatform_v1

    return {state.value: state.name for state in aiplatform_v1.PipelineTaskDetail.State}


def _iso(moment: Any) -> Optional[str]:
    """moment: a protobuf Timestamp; unset (0) is None."""
    if not moment.seconds and not moment.nanos:
        return None
    return datetime.fromtimestamp(moment.seconds, timezone.utc).isoformat(timespec="seconds")


def vertex_labels(user_labels: Dict[str, str], job_name: str) -> Dict[str, str]:
    """Vertex label rules: <=63 chars of [a-z0-9_-]; keys start with a letter."""
    labels = {"hydra_job_name": job_name, "launcher": "hydra-vertex-pipeline", **user_labels}
    return {_label_key(k): _label_text(str(v)) for k, v in labels.items()}


def _label_text(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:LABEL_LIMIT]


def _label_key(key: str) -> str:
    cleaned = _label_text(key)
    return cleaned if cleaned[:1].isalpha() else f"k{cleaned}"[:LABEL_LIMIT]
