"""The format of what the launcher stages for the steps (shared.pkl, each job's payload.pkl).

A pickle, compressed: a job's config pickles to ~15 KiB of mostly repeated node metadata that
compresses to a quarter, and the two ways a part may be pickled (by reference, by value) largely
repeat each other too. The digest a step checks is over these stored bytes, so nothing is
decompressed or unpickled before it matches.
"""

from __future__ import annotations

import zlib
from typing import Any, Dict

import cloudpickle


def dumps(parts: Dict[str, Any]) -> bytes:
    return zlib.compress(cloudpickle.dumps(parts))


def loads(data: bytes) -> Dict[str, Any]:
    loaded: Dict[str, Any] = cloudpickle.loads(zlib.decompress(data))
    return loaded
