"""A job's overrides as Hydra records them, and a command-mode job's overrides as one task
input: encoded by the launcher's build, decoded by the step."""

from __future__ import annotations

import json
from typing import List
from urllib.parse import quote, unquote

from omegaconf import DictConfig, OmegaConf

# Kept as they are in a job's overrides input; all else is percent-encoded: a CustomJob step's
# launcher inserts the input raw into a JSON payload (quotes, backslashes, control characters),
# and any renderer could read "{{$...}}" in a value as a placeholder.
PLAIN_CHARS = "".join(c for c in map(chr, range(0x20, 0x7F)) if c not in '"%\\{}')


def encode_overrides(overrides: List[str]) -> str:
    """A job's overrides as one task input: a JSON list, percent-encoded where unsafe."""
    return quote(json.dumps(overrides, ensure_ascii=False), safe=PLAIN_CHARS)


def decode_overrides(encoded: str) -> List[str]:
    overrides: List[str] = json.loads(unquote(encoded))
    return overrides


def task_overrides(config: DictConfig) -> List[str]:
    """The job's overrides as given, as Hydra's run_job writes them: an interpolation in one
    (`+token=${oc.env:TOKEN}`) stays unresolved."""
    overrides: List[str] = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    return overrides
