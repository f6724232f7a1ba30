"""A job's return value as plain JSON in its dir (`vertex_value.json`), written when it is
collected: the report reads numbers, strings and dicts of them without unpickling anything."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Optional

from hydra.core.utils import JobStatus

from .._shared._layout import JOB_VALUE_FILE
from .._shared._result import SealedResult
from ._record import write_json

# Deeper or longer structures are not metrics a table can show (a column each).
MAX_DEPTH = 2
MAX_ITEMS = 50
MAX_TEXT = 1000


def as_shown(value: Any, depth: int = 0) -> Any:
    """value as JSON (numbers, strings, bools, None, short lists and dicts of them), numpy
    scalars included; None for anything else, or a number JSON cannot hold (nan, inf)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "..."
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if depth >= MAX_DEPTH or (isinstance(value, (dict, list, tuple)) and len(value) > MAX_ITEMS):
        return None
    if isinstance(value, dict):
        return {str(key): as_shown(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_shown(item, depth + 1) for item in value]
    return None


def keep(job_dir: Path, result: Optional[SealedResult], value: Any) -> None:
    """result: the step's result as collected (None: it handed back none); value: its return
    value, read only where it completed."""
    if result is None:
        return
    completed = result.status == JobStatus.COMPLETED.name
    kept = {"value": as_shown(value) if completed else None, "attempts": result.attempt}
    write_json(job_dir / JOB_VALUE_FILE, kept)


def sent_as_json(result: Optional[SealedResult]) -> Any:
    """A result's return value where its step sent it as JSON (plain data), for a process that
    loads no pickle (attach); None otherwise (e.g. a numpy number: only the launcher shows it)."""
    return None if result is None else result.value.get("json")
