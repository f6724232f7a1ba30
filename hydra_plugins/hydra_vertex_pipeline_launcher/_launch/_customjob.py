"""CustomJob steps: a job's own component wrapped by google-cloud-pipeline-components, so that its
step runs as a Vertex CustomJob on a chosen machine type, optionally Spot.

The wrapped step's container is GCPC's launcher, which creates the CustomJob and waits for it;
the job's own command, args and env travel inside the `worker_pool_specs` input. Settings put on
the wrapped task (env, CPU, memory) would size that launcher, so they go to the wrapper instead.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from ..config import (
    CUSTOM_JOB_SETTINGS,
    IN_STEP_ENV,
    LauncherConfigError,
    VertexPipelineLauncherConf,
    custom_job_settings,
)

DISTRIBUTION = "hydra-vertex-pipeline-launcher"
EXTRA = "customjob"
SPOT = "SPOT"
FLEX_START = "FLEX_START"
STANDARD = "STANDARD"


@dataclass(frozen=True)
class MachineShape:
    """What one job's CustomJob runs on and with; jobs of one shape share a wrapped component."""

    machine_type: Optional[str]
    accelerator_type: Optional[str]
    accelerator_count: int
    boot_disk_size_gb: Optional[int]
    spot: bool
    max_wait_duration: Optional[float]
    restart_job_on_worker_restart: bool
    env: Tuple[Tuple[str, str], ...]

    @property
    def strategy(self) -> str:
        if self.spot:
            return SPOT
        # GCPC's launcher drops max_wait_duration unless the strategy is FLEX_START.
        return FLEX_START if self.max_wait_duration is not None else STANDARD


@dataclass(frozen=True)
class RunWide:
    """CustomJob settings every step of a run shares; without them a CustomJob would run as
    Vertex's service agent, outside the run's network and key, and could not read the bucket."""

    service_account: Optional[str]
    network: Optional[str]
    encryption_spec_key_name: Optional[str]
    labels: Dict[str, str]


def machine_shape(settings: VertexPipelineLauncherConf) -> Optional[MachineShape]:
    """The CustomJob one job's settings ask for; None when its step is a plain container step."""
    if not custom_job_settings(settings):
        return None
    env = {**{k: str(v) for k, v in settings.env.items()}, IN_STEP_ENV: "1"}
    return MachineShape(
        machine_type=settings.machine_type,
        accelerator_type=settings.resources.accelerator_type,
        accelerator_count=settings.resources.accelerator_count,
        boot_disk_size_gb=settings.boot_disk_size_gb,
        spot=settings.spot,
        max_wait_duration=settings.max_wait_duration,
        restart_job_on_worker_restart=settings.restart_job_on_worker_restart,
        env=tuple(sorted(env.items())),
    )


def run_wide(settings: VertexPipelineLauncherConf, job_name: str) -> RunWide:
    from .._backends._vertex import vertex_labels

    return RunWide(
        service_account=settings.service_account,
        network=settings.network,
        encryption_spec_key_name=settings.encryption_spec_key_name,
        labels=vertex_labels(settings.labels, job_name),
    )


class CustomJobSteps:
    """Wraps one job component once per distinct machine shape, as the jobs ask for them."""

    def __init__(self, job_component: Any, shared: RunWide) -> None:
        self.job_component = job_component
        self.shared = shared
        self._wrapped: Dict[MachineShape, Any] = {}

    def component_for(self, shape: MachineShape) -> Any:
        if shape not in self._wrapped:
            self._wrapped[shape] = _wrap(self.job_component, shape, self.shared)
        return self._wrapped[shape]


def configure_task(task: Any, settings: VertexPipelineLauncherConf, display_name: str) -> None:
    """What the wrapped task itself takes: the rest went into its CustomJob."""
    task.set_display_name(display_name)
    task.set_caching_options(settings.enable_caching)
    if settings.retries:
        task.set_retry(settings.retries)


def _wrap(job_component: Any, shape: MachineShape, shared: RunWide) -> Any:
    create = _wrapper(shape)
    # Only what is set: GCPC's own defaults (n1-standard-4, a 100 GB disk) stand for the rest.
    optional = {
        "machine_type": shape.machine_type,
        "accelerator_type": shape.accelerator_type,
        "accelerator_count": shape.accelerator_count if shape.accelerator_type else None,
        "boot_disk_size_gb": shape.boot_disk_size_gb,
        "max_wait_duration": _duration(shape.max_wait_duration),
        "service_account": shared.service_account,
        "network": shared.network,
        "encryption_spec_key_name": shared.encryption_spec_key_name,
    }
    return create(
        job_component,
        strategy=shape.strategy,
        restart_job_on_worker_restart=shape.restart_job_on_worker_restart,
        env=[{"name": name, "value": value} for name, value in shape.env],
        labels=dict(shared.labels),
        **{name: value for name, value in optional.items() if value is not None},
    )


def _wrapper(shape: MachineShape) -> Any:
    try:
        from google_cloud_pipeline_components.v1.custom_job import (
            create_custom_training_job_from_component,
        )
    except ImportError as e:
        setting = _first_setting(shape)
        raise LauncherConfigError(
            f"hydra.launcher.{setting} makes each step a Vertex CustomJob, which needs "
            f"google-cloud-pipeline-components ({e}). Install it with {install_hint()} (it "
            "moves google-cloud-aiplatform to 1.x), or unset the CustomJob settings."
        ) from e
    return create_custom_training_job_from_component


def install_hint() -> str:
    """Commands that install the [customjob] extra: its requirement as this installed version
    declares it (the package is not on an index yet), or the extra from a checkout."""
    import importlib.metadata

    try:
        declared = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    marker = f'extra == "{EXTRA}"'
    needed = [req.partition(";")[0].strip() for req in declared if marker in req]
    checkout = f"`pip install '.[{EXTRA}]'` in a checkout of this repository"
    if not needed:
        return checkout
    return f"`pip install {' '.join(repr(req) for req in needed)}` (or {checkout})"


def _first_setting(shape: MachineShape) -> str:
    """The first setting that asked for a CustomJob (a shape has each under the same name)."""
    return next(
        name for name, unset in CUSTOM_JOB_SETTINGS.items() if getattr(shape, name) != unset
    )


def _duration(seconds: Optional[float]) -> Optional[str]:
    """A protobuf Duration in JSON ("3600s"), as the CustomJob's scheduling takes it."""
    if seconds is None:
        return None
    return f"{seconds}s" if seconds % 1 else f"{int(seconds)}s"
