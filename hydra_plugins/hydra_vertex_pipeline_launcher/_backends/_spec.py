"""A compiled KFP v2 spec read into runnable steps, with every placeholder filled in as Vertex
fills it: parameters (constants and pipeline parameters, rendered as Vertex renders them) and
artifact paths (in a local pipeline root: `<root>/<task>/<artifact>`).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml

# A CustomJob step's container: google-cloud-pipeline-components' launcher of the real job.
GCPC_LAUNCHER = "google_cloud_pipeline_components.container.v1.custom_job.launcher"
ALL_UPSTREAM_TASKS_COMPLETED = "ALL_UPSTREAM_TASKS_COMPLETED"
# {{$.inputs.parameters['x']}}, {{$.inputs.artifacts['x'].path}}, {{$.outputs.artifacts['y'].path}}
PLACEHOLDER = re.compile(
    r"""\{\{\$\.(inputs|outputs)\.(parameters|artifacts)\[['"]([^'"\]]+)['"]\](\.path)?\}\}"""
)


class SpecError(ValueError):
    """A pipeline the local backend cannot run as compiled; says what to change."""


@dataclass(frozen=True)
class LocalStep:
    task_name: str
    argv: List[str]
    env: Dict[str, str]
    max_retries: int
    # Folders its output artifacts go in, made before it starts (as Vertex's launcher does).
    artifact_dirs: Tuple[Path, ...] = ()
    # Each output artifact's name and path: the step must write them all to succeed.
    outputs: Tuple[Tuple[str, Path], ...] = ()


@dataclass(frozen=True)
class Trigger:
    """When a step may start: once every upstream task has ended, and, unless
    all_upstream_completed, only if they all succeeded (else it never starts)."""

    upstream: Tuple[str, ...]
    all_upstream_completed: bool


def read_spec(spec_path: Path) -> Dict[str, Any]:
    """The launcher's own specs are JSON (see _build): read as that, 60 times faster than as
    YAML; kfp's compiler writes YAML (hand-built pipelines), read with libyaml where there is
    one (the pure-Python loader takes ~1 ms a task)."""
    text = spec_path.read_bytes()
    if text.lstrip().startswith(b"{"):
        try:
            spec: Dict[str, Any] = json.loads(text)
            return spec
        except ValueError:
            pass  # YAML's flow style, not JSON
    spec = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return spec


def read_steps(spec: Dict[str, Any], pipeline_root: Path) -> List[LocalStep]:
    """Every task of the pipeline's DAG as a step; artifacts at <pipeline_root>/<task>/<name>."""
    defaults = _pipeline_defaults(spec)
    return [
        _step(spec, name, task, defaults, pipeline_root)
        for name, task in spec["root"]["dag"]["tasks"].items()
    ]


def read_triggers(spec: Dict[str, Any]) -> Dict[str, Trigger]:
    """Each task's dependentTasks and triggerPolicy, as Vertex honours them."""
    return {
        name: Trigger(
            upstream=tuple(task.get("dependentTasks", [])),
            all_upstream_completed=task.get("triggerPolicy", {}).get("strategy")
            == ALL_UPSTREAM_TASKS_COMPLETED,
        )
        for name, task in spec["root"]["dag"]["tasks"].items()
    }


def _step(
    spec: Dict[str, Any],
    name: str,
    task: Dict[str, Any],
    defaults: Dict[str, Any],
    pipeline_root: Path,
) -> LocalStep:
    component = spec["components"][task["componentRef"]["name"]]
    if "executorLabel" not in component:
        raise SpecError(
            f"Task {name!r} is a sub-pipeline (a nested pipeline, dsl.Condition or "
            "dsl.ParallelFor): the local backend runs container steps only. Call its "
            "components in the pipeline itself, or run it on the vertex backend."
        )
    executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
    container = step_container(component, executor["container"])
    values = {
        **_parameter_values(name, task, defaults),
        **_input_artifacts(name, task, pipeline_root),
    }
    outputs = {
        output: pipeline_root / name / output
        for output in component.get("outputDefinitions", {}).get("artifacts", {})
    }
    values.update({("outputs", "artifacts", key): str(path) for key, path in outputs.items()})
    parts = container.get("command", []) + container.get("args", [])
    argv = [_resolve(part, values) for part in parts]
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return LocalStep(
        task_name=name,
        argv=argv,
        env={e["name"]: e["value"] for e in container.get("env", [])},
        max_retries=int(task.get("retryPolicy", {}).get("maxRetryCount", 0)),
        artifact_dirs=(pipeline_root / name,) if outputs else (),
        outputs=tuple(outputs.items()),
    )


def _pipeline_defaults(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The pipeline's parameters: their default values, where arguments given at compile land."""
    parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    return {name: p["defaultValue"] for name, p in parameters.items() if "defaultValue" in p}


def _parameter_values(
    name: str, task: Dict[str, Any], defaults: Dict[str, Any]
) -> Dict[Tuple[str, str, str], str]:
    values = {}
    for key, source in task.get("inputs", {}).get("parameters", {}).items():
        if "runtimeValue" in source:
            value = source["runtimeValue"]["constant"]
        elif "componentInputParameter" in source:
            value = _pipeline_argument(name, source["componentInputParameter"], defaults)
        else:
            raise SpecError(
                f"Task {name!r} takes its input {key!r} from another task's output parameter, "
                "which the local backend does not pass: pass it as an artifact instead."
            )
        values[("inputs", "parameters", key)] = stringify_parameter(value)
    return values


def _pipeline_argument(task_name: str, parameter: str, defaults: Dict[str, Any]) -> Any:
    if parameter not in defaults:
        raise SpecError(
            f"Task {task_name!r} needs the pipeline parameter {parameter!r}, which has no value: "
            f"give it in the arguments ({parameter}=...) or a default in the pipeline function."
        )
    return defaults[parameter]


def _input_artifacts(
    name: str, task: Dict[str, Any], pipeline_root: Path
) -> Dict[Tuple[str, str, str], str]:
    paths = {}
    for key, source in task.get("inputs", {}).get("artifacts", {}).items():
        upstream = source.get("taskOutputArtifact")
        if upstream is None:
            raise SpecError(
                f"Task {name!r} takes its input artifact {key!r} from outside the pipeline "
                "(an importer or a pipeline input): the local backend passes only artifacts "
                "that another task of the pipeline writes."
            )
        path = pipeline_root / upstream["producerTask"] / upstream["outputArtifactKey"]
        paths[("inputs", "artifacts", key)] = str(path)
    return paths


def _resolve(part: str, values: Dict[Tuple[str, str, str], str]) -> str:
    def value(match: re.Match[str]) -> str:
        side, kind, name, path = match.groups()
        if (kind == "artifacts") != bool(path) or (side, kind, name) not in values:
            raise SpecError(f"the local backend cannot resolve {match.group(0)} in {part!r}")
        return values[(side, kind, name)]

    resolved = PLACEHOLDER.sub(value, part)
    if "{{$" in resolved:
        raise SpecError(f"the local backend cannot resolve the placeholder in {part!r}")
    return resolved


def stringify_parameter(value: Any) -> str:
    """A parameter as Vertex puts it in a command line: numbers in Go's shortest plain form
    (protobuf Struct numbers are doubles, so an int 3 arrives as 3.0 and renders "3"),
    true/false, lists and dicts as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _plain_number(float(value))
    return json.dumps(_integral(value), separators=(",", ":"))


def _plain_number(number: float) -> str:
    """Go's strconv.FormatFloat(x, 'f', -1, 64): shortest round-trip digits, no exponent."""
    if number.is_integer():
        return str(int(number))
    return format(Decimal(repr(number)), "f")


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def task_display_names(spec: Dict[str, Any]) -> Dict[str, str]:
    """Each DAG task's display name, by its key."""
    tasks: Dict[str, Any] = spec["root"]["dag"]["tasks"]
    return {key: str(task.get("taskInfo", {}).get("name", key)) for key, task in tasks.items()}


def output_artifacts(spec: Dict[str, Any]) -> Dict[str, List[str]]:
    """Each DAG task's output artifact names, by its key."""
    found: Dict[str, List[str]] = {}
    for key, task in spec["root"]["dag"]["tasks"].items():
        component = spec["components"][task["componentRef"]["name"]]
        found[key] = list(component.get("outputDefinitions", {}).get("artifacts", {}))
    return found


def step_container(component: Dict[str, Any], container: Dict[str, Any]) -> Dict[str, Any]:
    """The container a compiled task really runs: its own, or for a CustomJob step the job's
    container from worker pool 0 (its args still hold the task's input placeholders)."""
    if GCPC_LAUNCHER not in container.get("command", []):
        return container
    # Each shape's wrapped component has its worker pools as that input's default value.
    inputs = component["inputDefinitions"]["parameters"]
    pools: List[Dict[str, Any]] = inputs["worker_pool_specs"]["defaultValue"]
    spec = pools[0]["container_spec"]
    return {
        "image": spec["image_uri"],
        "command": spec.get("command", []),
        "args": spec.get("args", []),
        "env": spec.get("env", []),
    }
