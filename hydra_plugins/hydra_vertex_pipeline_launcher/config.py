"""Launcher settings and the config source of their options; imported by every Hydra app, so kept
light."""
# No `from __future__ import annotations` here: Hydra execs this module before it is in
# sys.modules, and dataclasses then cannot resolve string annotations.

import copy
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

from ._shared._errors import LauncherConfigError

LAUNCHER_TARGET = (
    "hydra_plugins.hydra_vertex_pipeline_launcher.vertex_pipeline_launcher.VertexPipelineLauncher"
)
SINGLE_RUN_CALLBACK = (
    "hydra_plugins.hydra_vertex_pipeline_launcher._launch._callbacks.SingleRunOnPipeline"
)
# Set in every step's environment: an app run inside a step never launches again.
IN_STEP_ENV = "HYDRA_VERTEX_PIPELINE_STEP"
# Each hydra_component step's Hydra output dir (its .hydra/, its job log, what it writes there
# with hydra.job.chdir=true) is an output artifact of its own: the component's `hydra_run_dir`.
RUN_DIR_KEY = "hydra.run.dir"


# Plain strings, not an Enum: Hydra's plugin scan executes this module a second time, and
# members of the two Enum classes would not compare equal.
BACKENDS = ("vertex", "local")
# The settings that make a step a Vertex CustomJob, and their "not set" values.
CUSTOM_JOB_SETTINGS = {
    "machine_type": None,
    "boot_disk_size_gb": None,
    "spot": False,
    "max_wait_duration": None,
    "restart_job_on_worker_restart": False,
}
# A container image reference, as Docker's distribution/reference grammar reads one:
# [host[:port]/]path[:tag][@digest], path components lowercase.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
# Patterns as text, compiled (and cached by re) on first use: every Hydra app imports this module,
# and compiling them all up front was half of its import time.
IMAGE_REFERENCE = (
    rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::(?P<tag>\w[\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?"
)
# What a run without -m does: become a one-step pipeline run, or run in this process as usual.
SINGLE_RUN_MODES = ("pipeline", "in_process")
# How a step runs its job: the cloudpickled task function, or the app's own command in the image.
EXECUTION_MODES = ("payload", "command")
# Which jobs' console lines (stdout, stderr, log) the terminal shows.
CONSOLE_MODES = ("all", "failures", "none")


@dataclass
class ResourcesConf:
    # Kubernetes-style quantities, as kfp's set_cpu_limit / set_memory_limit take them.
    cpu_limit: Optional[str] = None  # e.g. "4"
    memory_limit: Optional[str] = None  # e.g. "16G"
    accelerator_type: Optional[str] = None  # e.g. "NVIDIA_TESLA_T4"
    accelerator_count: int = 1


@dataclass
class LocalConf:
    # How many steps the local backend runs at once; None means one per CPU.
    max_parallel: Optional[int] = None


@dataclass
class VertexPipelineLauncherConf:
    _target_: str = LAUNCHER_TARGET
    backend: str = "vertex"  # or "local"
    project: Optional[str] = None
    location: str = "us-central1"
    # gs://bucket/prefix for vertex; for local, None stages into the sweep dir.
    staging_root: Optional[str] = None
    image: Optional[str] = None
    # e.g. "europe-west4-aiplatform.googleapis.com"; an http:// URL means a local emulator.
    api_endpoint: Optional[str] = None
    # None: the Hydra job name.
    pipeline_name: Optional[str] = None
    resources: ResourcesConf = field(default_factory=ResourcesConf)
    retries: int = 0
    enable_caching: bool = False
    labels: Dict[str, str] = field(default_factory=dict)
    service_account: Optional[str] = None
    network: Optional[str] = None
    encryption_spec_key_name: Optional[str] = None
    # Environment variables set in every step.
    env: Dict[str, str] = field(default_factory=dict)
    # Seconds between status reads; the wait grows by half while nothing changes, up to the cap.
    poll_interval: float = 10.0
    max_poll_interval: float = 60.0
    # Seconds at most between two progress lines: a run whose state does not change (steps
    # waiting for machines) still says so.
    progress_interval: float = 60.0
    # Seconds between uploads of a running job's log to the staging root.
    log_upload_interval: float = 15.0
    cancel_on_interrupt: bool = True
    # Seconds a storage or Vertex request may take, with its retries, before it is an error.
    request_timeout: float = 120.0
    local: LocalConf = field(default_factory=LocalConf)
    # A run without -m: "pipeline" sends it to the backend as one step; "in_process" runs it
    # here, as Hydra does without a launcher (for debugging with the same config).
    single_run: str = "pipeline"
    # False: submit, record the run, print how to attach, and end without waiting (vertex).
    wait: bool = True
    # True: jobs whose dir holds a collected success for the same overrides are not run again.
    resume: bool = False
    # Seconds a job may run before its step stops it; None: no limit.
    timeout: Optional[float] = None
    # Steps of a run that may run at once (on every backend); None: no cap.
    max_parallel: Optional[int] = None
    # True: a sweep's report.html and results.csv are rewritten in its dir while it runs.
    report: bool = True
    # Any of these makes each step a Vertex CustomJob (needs the [customjob] extra); with them,
    # resources.accelerator_* go to the CustomJob's machine. Vertex's default machine type is
    # n1-standard-4.
    machine_type: Optional[str] = None  # e.g. "n1-highmem-8"
    boot_disk_size_gb: Optional[int] = None
    spot: bool = False
    # Seconds a step may wait for its machine (Vertex's FLEX_START scheduling); not with spot.
    max_wait_duration: Optional[float] = None
    restart_job_on_worker_restart: bool = False
    # "payload": each step runs the task function as pickled here; "command": each step runs
    # the app's own entrypoint in the image with the job's overrides (see `command`).
    execution: str = "payload"
    # Payload mode on Vertex: the Python files of the app's own folders (its script's, the
    # launch dir on its path, PYTHONPATH's) travel with the run, first on each step's path;
    # False: the image is the only source of the app's code.
    ship_code: bool = True
    # The app's entrypoint for execution=command, run in the image's working dir, e.g.
    # ["python", "train.py"]; None: the way this app was started (script or -m module).
    command: Optional[List[str]] = None
    # Environment variables each step reads from Secret Manager itself, by name: a secret
    # version, projects/<project>/secrets/<secret>/versions/<version or latest>. Only these
    # names reach the spec; the values reach neither it nor the staging root.
    secret_env: Dict[str, str] = field(default_factory=dict)
    # Where steps read secret_env from; an http:// URL means a local emulator (anonymous).
    secret_manager_endpoint: str = "https://secretmanager.googleapis.com"
    # True: compose, check, pack, build and compile as a launch does, write pipeline.yaml and
    # plan.json (jobs, tasks, per-job settings, what would be staged) to the run's dir below
    # the sweep dir, and end (exit status 0) without uploading or creating anything.
    dry_run: bool = False
    # Which jobs' console (stdout, stderr and log lines) the terminal shows, a sweep's prefixed
    # by the job: "all" as they come, "failures" (a failed job's, once it ended) or "none";
    # None: "all" for a run without -m, "failures" for a sweep.
    console: Optional[str] = None


@dataclass
class VertexPipelineLocalLauncherConf(VertexPipelineLauncherConf):
    backend: str = "local"
    poll_interval: float = 0.25
    max_poll_interval: float = 1.0
    log_upload_interval: float = 5.0


ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
SECRET_VERSION = r"projects/[^/\s]+/secrets/[^/\s]+/versions/[^/\s]+"
# The longest number of seconds any time setting may hold: far below what sleeps and thread
# timeouts overflow at (threading.TIMEOUT_MAX, ~292 years), far above any sensible wait.
MAX_SECONDS = 1e7


def validate(conf: VertexPipelineLauncherConf) -> None:
    """Checks what the dataclass types cannot: one error naming every wrong or missing setting
    and its fix, so that a user fixes them all in one try."""
    problems = setting_problems(conf)
    if problems:
        raise one_error(problems, "launcher settings need a fix")


# How many problems one error lists; the rest are counted.
LISTED_PROBLEMS = 10


def one_error(problems: List[str], what: str) -> LauncherConfigError:
    """One error for every problem: a single one as it is, several listed, one a line."""
    if len(problems) == 1:
        return LauncherConfigError(problems[0])
    listed = "".join(f"\n  - {problem}" for problem in problems[:LISTED_PROBLEMS])
    if len(problems) > LISTED_PROBLEMS:
        listed += f"\n  - ... and {len(problems) - LISTED_PROBLEMS} more"
    return LauncherConfigError(f"{len(problems)} {what}:{listed}")


def setting_problems(conf: VertexPipelineLauncherConf) -> List[str]:
    """What each check said of conf, in the order of the checks."""
    problems = []
    for check in _CHECKS:
        try:
            check(conf)
        except LauncherConfigError as problem:
            problems.append(str(problem))
    return problems


def _check_modes(conf: VertexPipelineLauncherConf) -> None:
    _check_choice(conf.backend, "backend", BACKENDS)


def _check_single_run(conf: VertexPipelineLauncherConf) -> None:
    _check_choice(conf.single_run, "single_run", SINGLE_RUN_MODES)


def _check_execution(conf: VertexPipelineLauncherConf) -> None:
    _check_choice(conf.execution, "execution", EXECUTION_MODES)


def _check_console(conf: VertexPipelineLauncherConf) -> None:
    if conf.console is not None:
        _check_choice(conf.console, "console", CONSOLE_MODES)


def _check_wait(conf: VertexPipelineLauncherConf) -> None:
    if not conf.wait and conf.backend == "local":
        raise LauncherConfigError(
            "hydra.launcher.wait=false: a local run cannot outlive its launcher. Use the vertex "
            "backend to detach, or leave wait=true."
        )


def _check_project(conf: VertexPipelineLauncherConf) -> None:
    if conf.backend == "vertex":
        _require(conf.project, "project", "the Google Cloud project id, e.g. my-proj")


def _check_image_setting(conf: VertexPipelineLauncherConf) -> None:
    if conf.backend == "vertex":
        _require(conf.image, "image", "the container image that has your app and this plugin")
        _check_image(str(conf.image))


def _check_image(image: str) -> None:
    if not re.fullmatch(IMAGE_REFERENCE, image) or len(image.partition("@")[0]) > 255:
        raise LauncherConfigError(
            f"hydra.launcher.image={image!r} cannot be a container image reference: use "
            "[host/]path[:tag][@digest] with a lowercase path, e.g. "
            "europe-docker.pkg.dev/my-proj/repo/train:1."
        )


def unpinned_image_warning(image: str) -> Optional[str]:
    """What to say about an image reference that may name another image in a later run."""
    found = re.fullmatch(IMAGE_REFERENCE, image)
    if found is None or found["digest"] or found["tag"] not in (None, "latest"):
        return None
    return (
        f"hydra.launcher.image={image} has no tag or digest, or is :latest: the image may "
        "change between runs, so this run is not reproducible. Pin it with a version tag "
        "(train:1) or a digest (train@sha256:...)."
    )


def _check_command(conf: VertexPipelineLauncherConf) -> None:
    if conf.command is None:
        return
    if conf.execution != "command":
        raise LauncherConfigError(
            f"hydra.launcher.command={list(conf.command)!r} is only run with "
            "hydra.launcher.execution=command: set that too, or unset command."
        )
    if not conf.command or not all(str(part) for part in conf.command):
        raise LauncherConfigError(
            f"hydra.launcher.command={list(conf.command)!r}: give the app's entrypoint as a "
            "list of non-empty words, e.g. hydra.launcher.command=[python,train.py], or null "
            "for the way this app was started."
        )


def _check_staging_root(conf: VertexPipelineLauncherConf) -> None:
    if conf.backend == "vertex":
        _require(conf.staging_root, "staging_root", "a Cloud Storage prefix, gs://my-bucket/hydra")
    root = str(conf.staging_root or "")
    setting = f"hydra.launcher.staging_root={conf.staging_root!r}"
    if root.startswith("gs:") and not root.startswith("gs://"):
        raise LauncherConfigError(f"{setting}: a Cloud Storage root is gs://<bucket>/<prefix>.")
    if conf.backend == "vertex" and not root.startswith("gs://"):
        raise LauncherConfigError(
            f"{setting}: Vertex steps reach only Cloud Storage. Set it to gs://<bucket>/<prefix>."
        )
    if "://" in root and not root.startswith("gs://"):
        raise LauncherConfigError(
            f"{setting}: only a local folder or gs://<bucket>/<prefix> can stage jobs."
        )
    _check_bucket(conf.staging_root)


def _seconds_check(name: str) -> Callable[[VertexPipelineLauncherConf], None]:
    def check(conf: VertexPipelineLauncherConf) -> None:
        _check_positive(getattr(conf, name), name)

    return check


def _check_timing(conf: VertexPipelineLauncherConf) -> None:
    if conf.poll_interval > conf.max_poll_interval:
        raise LauncherConfigError(
            f"hydra.launcher.poll_interval={conf.poll_interval} is above "
            f"hydra.launcher.max_poll_interval={conf.max_poll_interval}, the longest wait between "
            "status reads: lower poll_interval or raise max_poll_interval."
        )


def _check_timeout(conf: VertexPipelineLauncherConf) -> None:
    if conf.timeout is not None:
        _check_positive(conf.timeout, "timeout")


def _check_secret_env(conf: VertexPipelineLauncherConf) -> None:
    for name, version in conf.secret_env.items():
        if not re.fullmatch(ENV_NAME, str(name)):
            raise LauncherConfigError(
                f"hydra.launcher.secret_env: {name!r} is not an environment variable name "
                "(letters, digits and _, not starting with a digit)."
            )
        if not re.fullmatch(SECRET_VERSION, str(version)):
            raise LauncherConfigError(
                f"hydra.launcher.secret_env.{name}={version!r}: give a secret version, "
                "projects/<project>/secrets/<secret>/versions/<version or latest>."
            )


def _check_retries(conf: VertexPipelineLauncherConf) -> None:
    if conf.retries < 0:
        raise LauncherConfigError(f"hydra.launcher.retries={conf.retries}: set it to 0 or more.")


def _check_parallel(conf: VertexPipelineLauncherConf) -> None:
    if conf.max_parallel is not None and conf.max_parallel < 1:
        raise LauncherConfigError(
            f"hydra.launcher.max_parallel={conf.max_parallel}: set it to 1 or more, or null for"
            " no cap."
        )


def _check_local_parallel(conf: VertexPipelineLauncherConf) -> None:
    if conf.local.max_parallel is not None and conf.local.max_parallel < 1:
        raise LauncherConfigError(
            f"hydra.launcher.local.max_parallel={conf.local.max_parallel}: set it to 1 or more,"
            " or null for one per CPU."
        )


def _check_accelerator(conf: VertexPipelineLauncherConf) -> None:
    if conf.resources.accelerator_type and conf.resources.accelerator_count < 1:
        raise LauncherConfigError(
            "hydra.launcher.resources.accelerator_count must be 1 or more when "
            "hydra.launcher.resources.accelerator_type is set."
        )


# Kubernetes quantities as kfp's set_cpu_limit / set_memory_limit accept them: checked here too,
# so that a wrong one is named with the other settings, before anything is staged.
CPU_QUANTITY = r"([0-9]*[.])?[0-9]+m?"
MEMORY_QUANTITY = r"[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?"


def _quantity_check(
    name: str, pattern: str, what: str, fix: str
) -> Callable[[VertexPipelineLauncherConf], None]:
    def check(conf: VertexPipelineLauncherConf) -> None:
        value = getattr(conf.resources, name)
        if value and not re.fullmatch(pattern, str(value)):
            raise LauncherConfigError(
                f"hydra.launcher.resources.{name}={value!r}: Invalid {what} string: {fix}."
            )

    return check


def custom_job_settings(conf: VertexPipelineLauncherConf) -> List[str]:
    """The settings that make conf's steps CustomJobs, by name; empty for plain steps."""
    return [name for name, unset in CUSTOM_JOB_SETTINGS.items() if getattr(conf, name) != unset]


def _check_boot_disk(conf: VertexPipelineLauncherConf) -> None:
    if conf.boot_disk_size_gb is not None and conf.boot_disk_size_gb < 1:
        raise LauncherConfigError(
            f"hydra.launcher.boot_disk_size_gb={conf.boot_disk_size_gb}: set it to a positive "
            "number of GB, or null for Vertex's default."
        )


def _check_max_wait(conf: VertexPipelineLauncherConf) -> None:
    if conf.max_wait_duration is not None:
        _check_positive(conf.max_wait_duration, "max_wait_duration")
        if conf.spot:
            raise LauncherConfigError(
                "hydra.launcher.max_wait_duration is how long a step waits for its machine under "
                "Vertex's FLEX_START scheduling; a Spot step (hydra.launcher.spot=true) does not "
                "wait for one. Set only one of them."
            )


def _check_machine_sizes(conf: VertexPipelineLauncherConf) -> None:
    chosen = custom_job_settings(conf)
    sized = [k for k in ("cpu_limit", "memory_limit") if getattr(conf.resources, k)]
    if chosen and sized:
        raise LauncherConfigError(
            f"hydra.launcher.resources.{sized[0]} sizes a plain step, but "
            f"hydra.launcher.{chosen[0]} makes each step a CustomJob, whose machine type decides "
            f"its CPUs and memory: unset resources.{sized[0]}, or pick a machine type "
            "(hydra.launcher.machine_type=n1-highmem-8)."
        )


def _check_choice(value: str, name: str, choices: Tuple[str, ...]) -> None:
    if value not in choices:
        raise LauncherConfigError(
            f"hydra.launcher.{name}={value!r}: set it to one of {', '.join(choices)}."
        )


_CHECKS: List[Callable[[VertexPipelineLauncherConf], None]] = [
    _check_modes,
    _check_single_run,
    _check_execution,
    _check_console,
    _check_command,
    _check_wait,
    _check_project,
    _check_image_setting,
    _check_staging_root,
    *(
        _seconds_check(name)
        for name in (
            "poll_interval",
            "max_poll_interval",
            "progress_interval",
            "log_upload_interval",
            "request_timeout",
        )
    ),
    _check_timing,
    _check_timeout,
    _check_secret_env,
    _check_retries,
    _check_parallel,
    _check_local_parallel,
    _quantity_check(
        "cpu_limit", CPU_QUANTITY, "cpu", "give a number of CPUs (4, 0.5) or of millicores (500m)"
    ),
    _quantity_check(
        "memory_limit",
        MEMORY_QUANTITY,
        "memory",
        "give a number of bytes, or a number followed by one of E, Ei, P, Pi, T, Ti, G, Gi, M, "
        "Mi, K, Ki (e.g. 16G)",
    ),
    _check_accelerator,
    _check_boot_disk,
    _check_max_wait,
    _check_machine_sizes,
]


BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def check_sweeper(conf: VertexPipelineLauncherConf, config: Any) -> None:
    """wait=false hands back no return values: only a sweeper that ignores them can go on."""
    sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))
    if not conf.wait and sweeper != BASIC_SWEEPER:
        raise LauncherConfigError(
            f"hydra.launcher.wait=false cannot be used with the sweeper {sweeper}: it needs each "
            "job's return value, and a detached launch hands back none. Set "
            "hydra.launcher.wait=true, or sweep with Hydra's basic sweeper."
        )


def settings_from(launcher_node: Any) -> VertexPipelineLauncherConf:
    """The typed settings from `hydra.launcher` (a DictConfig or keyword arguments)."""
    schema = OmegaConf.structured(VertexPipelineLauncherConf)
    merged = OmegaConf.merge(schema, launcher_node)
    settings: VertexPipelineLauncherConf = OmegaConf.to_object(merged)  # type: ignore[assignment]
    return settings


def local_max_parallel(conf: VertexPipelineLauncherConf) -> int:
    """Steps the local backend runs at once: local.max_parallel, else the run's cap, else one
    per CPU (the run's cap holds anyway: its steps wait for each other in the spec)."""
    return conf.local.max_parallel or conf.max_parallel or os.cpu_count() or 1


def _require(value: Optional[str], name: str, what: str) -> None:
    if not value:
        raise LauncherConfigError(
            f"hydra.launcher.{name} is not set; the vertex backend needs {what}. "
            f"Set hydra.launcher.{name}=..., or use hydra/launcher=vertex_pipeline_local "
            "to run on this machine."
        )


def _check_bucket(staging_root: Optional[str]) -> None:
    if not (staging_root and staging_root.startswith("gs://")):
        return
    bucket = staging_root[5:].split("/")[0]
    if not bucket:
        raise LauncherConfigError(
            f"hydra.launcher.staging_root={staging_root!r} names no bucket. "
            "Set it to gs://<bucket>/<prefix>."
        )
    broken = bucket_name_problem(bucket)
    if broken:
        raise LauncherConfigError(
            f"hydra.launcher.staging_root={staging_root!r}: {bucket!r} cannot be a Cloud Storage "
            f"bucket name: {broken}. Name the bucket you created (gcloud storage buckets list), "
            "e.g. gs://my-bucket/hydra."
        )


BUCKET_CHARACTERS = r"[a-z0-9][a-z0-9._-]*[a-z0-9]"
IP_ADDRESS = r"[0-9]{1,3}(\.[0-9]{1,3}){3}"


def bucket_name_problem(bucket: str) -> Optional[str]:
    """Which of Cloud Storage's bucket naming rules the name breaks, if any
    (https://cloud.google.com/storage/docs/buckets#naming)."""
    parts = bucket.split(".")
    if not re.fullmatch(BUCKET_CHARACTERS, bucket):
        return (
            "use lowercase letters, digits, -, _ and ., starting and ending with a letter or "
            "digit, at least 3 characters"
        )
    if len(parts) == 1 and len(bucket) > 63:
        return "a name without dots has at most 63 characters"
    if len(bucket) > 222 or any(not 1 <= len(part) <= 63 for part in parts):
        return "a dotted name has at most 222 characters, each dot-separated part 1 to 63"
    if len(bucket) < 3:
        return "a name has at least 3 characters"
    if re.fullmatch(IP_ADDRESS, bucket):
        return "a name cannot be an IP address"
    if bucket.startswith("goog") or re.search(r"g[o0][o0]gle", bucket):
        return "a name cannot start with goog or hold google (or a misspelling of it)"
    return None


def _check_positive(value: float, name: str) -> None:
    """A number of seconds that sleeps and timeouts can take (time.sleep(1e300) overflows)."""
    if math.isnan(value):
        raise LauncherConfigError(
            f"hydra.launcher.{name}=nan is not a number: set it to a positive number of seconds."
        )
    if value <= 0:
        raise LauncherConfigError(f"hydra.launcher.{name}={value}: set it to a positive number.")
    if value > MAX_SECONDS:
        raise LauncherConfigError(
            f"hydra.launcher.{name}={value} is more than {MAX_SECONDS:.0f} s (about 115 days), "
            "the longest wait this launcher takes: set it to a finite number of seconds up to "
            "that."
        )


PROVIDER = "vertex_pipeline_launcher"
LAUNCHER_GROUP = "hydra/launcher"


def _launcher_options() -> Dict[str, type]:
    """Each hydra/launcher option's config file name, and its settings."""
    return {
        f"{LAUNCHER_GROUP}/vertex_pipeline.yaml": VertexPipelineLauncherConf,
        f"{LAUNCHER_GROUP}/vertex_pipeline_local.yaml": VertexPipelineLocalLauncherConf,
    }


class LauncherConfigSource(ConfigSource):
    """The hydra/launcher options, made from the dataclasses only when Hydra loads one.

    Hydra reads a config group from every source on its search path alike. Stored in the
    ConfigStore instead, both dataclasses would be converted at the start of every Hydra app,
    whether it uses this launcher or not.
    """

    @staticmethod
    def scheme() -> str:
        return "vertex-pipeline-launcher"

    def load_config(self, config_path: str) -> ConfigResult:
        launcher = _launcher_options().get(self._normalize_file_name(config_path))
        if launcher is None:
            raise ConfigLoadError(f"{self.full_path()} has no config {config_path}")
        return ConfigResult(
            config=_launcher_node(launcher),
            path=self.full_path(),
            provider=self.provider,
            # As the callbacks go with the launcher, the option sets two keys of `hydra`.
            header={"package": "hydra"},
        )

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        return config_path.strip("/") in ("", "hydra", LAUNCHER_GROUP)

    def is_config(self, config_path: str) -> bool:
        return self._normalize_file_name(config_path.strip("/")) in _launcher_options()

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> List[str]:
        group = config_path.strip("/")
        found: List[str] = []
        for child in _children(group):
            self._list_add_result(found, f"{group}/{child}".lstrip("/"), child, results_filter)
        return sorted(set(found))


def _children(group: str) -> List[str]:
    """What the source holds in a group: the groups down to hydra/launcher, then its options."""
    if group == LAUNCHER_GROUP:
        return [path.rpartition("/")[2] for path in _launcher_options()]
    return {"": ["hydra"], "hydra": ["launcher"]}.get(group, [])


# Each option's node, made once: Hydra loads it again for every job it composes.
_launcher_nodes: Dict[type, Any] = {}


def _launcher_node(launcher: type) -> Any:
    """Each option also registers the callback that sends runs without -m through the launcher:
    Hydra calls a launcher only in multirun mode. Hence the package `hydra`, not `hydra.launcher`.
    A copy each time, as the ConfigStore gives: Hydra's merges change what they load.
    """
    if launcher not in _launcher_nodes:
        _launcher_nodes[launcher] = OmegaConf.structured(
            {
                "launcher": launcher,
                "callbacks": {"vertex_pipeline_single_run": {"_target_": SINGLE_RUN_CALLBACK}},
            }
        )
    return copy.deepcopy(_launcher_nodes[launcher])


class LauncherSearchPath(SearchPathPlugin):
    """Puts the launcher's options on every app's config search path."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        path = f"{LauncherConfigSource.scheme()}://"
        if all(element.path != path for element in search_path.get_path()):
            search_path.append(PROVIDER, path)
