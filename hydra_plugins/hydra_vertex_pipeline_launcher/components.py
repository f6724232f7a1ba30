"""Hydra apps as the steps of hand-built Kubeflow pipelines, and one call that runs such a
pipeline on this machine or on Vertex AI with the launcher's settings.

Hydra imports this module at every app start: kfp and the launcher's machinery are imported
only when a function here is called.

    prepare = hydra_component("prepare", IMAGE, ["python", "prepare.py"],
                              parameters={"rows": int}, outputs=["data"])
    train = hydra_component("train", IMAGE, ["python", "train.py"],
                            parameters={"lr": float}, inputs=["data"], outputs=["model"])

    @dsl.pipeline(name="two-step")
    def two_step(lr: float = 0.1):
        data = prepare(rows=100).outputs["data"]
        train(lr=lr, data=data)

    run_pipeline(two_step, {"lr": 0.01}, backend="local")

Each argument reaches the app as a Hydra override: `rows={{$.inputs.parameters['rows']}}`,
`data={{$.inputs.artifacts['data'].path}}`, `model={{$.outputs.artifacts['model'].path}}`.
Vertex (and the local backend) put a parameter's value in as text: int, float and bool values,
and lists of numbers, bools and plain strings, come back to the app with their type; a str value
reaches it exactly when Hydra reads it as that string unquoted (letters, digits, spaces inside,
`/ - _ . : + @ %`; not `, ' " = [ ] { }`, `${`, non-ASCII; "3", "true" and "null" become a number,
a bool and None). Pass other text in an artifact, or as a fixed, Hydra-quoted override.
"""

from __future__ import annotations

import inspect
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    get_args,
    get_origin,
)

if TYPE_CHECKING:
    from ._launch._pipeline_run import PipelineRun
    from .config import VertexPipelineLauncherConf

# The parameter types whose values Hydra reads back from Vertex's text as they were sent (and
# lists of them).
SCALAR_TYPES = (int, float, str, bool)


def hydra_component(
    name: str,
    image: str,
    command: Sequence[str],
    parameters: Optional[Mapping[str, Any]] = None,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    overrides: Sequence[str] = (),
) -> Any:
    """A kfp container component that runs an unchanged Hydra app: `command` (e.g.
    `["python", "train.py"]`, run in the image's working dir), then the fixed Hydra `overrides`
    (e.g. `["+experiment=big", "hydra.job.chdir=true"]`), then one override per parameter
    (`name -> type`), input artifact and output artifact, in that order.

    Each step's Hydra output dir is its output artifact `hydra_run_dir` (the override
    `hydra.run.dir=<its path>` comes last), so every step has its own, and it comes back with
    the run's other artifacts; unless `hydra.run.dir` is set in `overrides` or `outputs`.

    A name is the override's key (`lr`, `data.path`, `+extra`): the component's input or
    output is that key without its leading `+` and with `.` as `_` (`data_path`, `extra`), so an
    output `model` is `task.outputs["model"]`.
    """
    from kfp import dsl

    from .config import IN_STEP_ENV

    params = dict(parameters or {})
    _check_command(name, command, overrides)
    outputs = [*outputs, *_run_dir_output(overrides, [*params, *inputs, *outputs])]
    keys = _input_names(name, [*params, *inputs, *outputs])
    for key, kind in params.items():
        _check_type(name, key, kind)
    arguments = [
        *[(key, kind) for key, kind in params.items()],
        *[(key, dsl.Input[dsl.Artifact]) for key in inputs],
        *[(key, dsl.Output[dsl.Artifact]) for key in outputs],
    ]
    signature = inspect.Signature(
        [
            inspect.Parameter(keys[key], inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind)
            for key, kind in arguments
        ],
        return_annotation=dsl.ContainerSpec,
    )

    def container(*placeholders: Any) -> Any:
        values = [
            f"{key}={value if key in params else value.path}"
            for (key, _), value in zip(arguments, placeholders)
        ]
        return dsl.ContainerSpec(image=image, command=list(command), args=[*overrides, *values])

    container.__name__ = name
    container.__signature__ = signature  # type: ignore[attr-defined]
    component = dsl.container_component(container)
    # An app whose config picks this launcher runs in the step, not as a pipeline of its own.
    component.component_spec.implementation.container.env = {IN_STEP_ENV: "1"}
    return component


def run_pipeline(
    pipeline: Any,
    arguments: Optional[Mapping[str, Any]] = None,
    *,
    backend: Optional[str] = None,
    output_dir: str = "pipelines",
    settings: Optional[VertexPipelineLauncherConf] = None,
    **launcher_settings: Any,
) -> PipelineRun:
    """Compiles `pipeline` (a `@dsl.pipeline` function) with `arguments` for its parameters and
    runs it on `backend` ("local", the default, or "vertex"; with `settings`, its backend),
    watched as a sweep is (each task's state in
    `<output_dir>/vertex_pipeline/<run id>/tasks/<task>/vertex_status.json`, progress in the
    log, Ctrl-C cancels it); returns how it ended.

    The settings are hydra.launcher's, as keyword arguments (`project=`, `location=`,
    `staging_root=` (the run's pipeline root is under it), `service_account=`, `labels=`,
    `network=`, `request_timeout=`, ...) or a `settings` object (its settings that shape the
    launcher's own steps, such as image or retries, are not used: set them on the tasks).
    The steps' artifacts are in `<output_dir>/vertex_pipeline/<run id>/pipeline_root/<task>/
    <name>` (on Vertex, fetched there from the run's pipeline root as each task ends, or by
    `hydra-vertex-pipeline attach`); a step's console output is in `steps/<task>.log` (local) or
    Cloud Logging (Vertex: `tasks/<task>/logs.txt` says where).
    """
    from ._launch._pipeline_run import run

    return run(pipeline, dict(arguments or {}), backend, output_dir, settings, launcher_settings)


def _check_command(name: str, command: Sequence[str], overrides: Sequence[str]) -> None:
    for what, value in (("command", command), ("overrides", overrides)):
        if isinstance(value, str) or not all(isinstance(part, str) for part in value):
            raise TypeError(
                f"hydra_component({name!r}): {what} is a list of strings, e.g. "
                f"{['python', 'train.py'] if what == 'command' else ['+experiment=big']}; got "
                f"{value!r}."
            )
    if not command:
        raise ValueError(f"hydra_component({name!r}): command is empty; give the app's command.")


def _run_dir_output(overrides: Sequence[str], keys: Sequence[str]) -> List[str]:
    """The step's own Hydra output dir as an output, unless the caller set hydra.run.dir."""
    from .config import RUN_DIR_KEY

    given = [override.split("=", 1)[0].lstrip("+~") for override in overrides]
    return [] if RUN_DIR_KEY in [*given, *keys] else [RUN_DIR_KEY]


def _input_names(name: str, keys: List[str]) -> Dict[str, str]:
    """Each override key's name as the component's input or output."""
    names: Dict[str, str] = {}
    for key in keys:
        candidate = key.lstrip("+").replace(".", "_")
        if key in names:
            raise ValueError(f"hydra_component({name!r}): {key!r} is given twice.")
        if not candidate.isidentifier():
            raise ValueError(
                f"hydra_component({name!r}): {key!r} is not a Hydra config key such as lr, "
                "data.path or +extra."
            )
        if candidate in names.values():
            raise ValueError(
                f"hydra_component({name!r}): {key!r} and another key are both {candidate!r} as "
                "the component's input or output: rename one."
            )
        names[key] = candidate
    return names


def _check_type(name: str, key: str, kind: Any) -> None:
    items = get_args(kind)
    if kind is list or (get_origin(kind) is list and not items):
        # Its items could be anything: a dict among them arrives as JSON, which Hydra refuses.
        raise TypeError(
            f"hydra_component({name!r}): parameter {key!r} is a bare list; give its items' "
            "type, e.g. List[str] or List[float] (int, float, str or bool)."
        )
    is_list = get_origin(kind) is list and len(items) == 1
    if kind not in SCALAR_TYPES and not (is_list and all(t in SCALAR_TYPES for t in items)):
        raise TypeError(
            f"hydra_component({name!r}): parameter {key!r} has the type {kind!r}; Hydra reads "
            "back from Vertex's text only int, float, str, bool and lists of them (a dict "
            "arrives as JSON, which Hydra's override syntax does not read): pass it as an "
            "artifact instead."
        )
