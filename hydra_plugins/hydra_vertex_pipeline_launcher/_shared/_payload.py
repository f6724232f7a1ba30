"""The format of what the launcher stages for the steps (shared.pkl, each job's payload.pkl).

A pickle, compressed: a job's config pickles to ~15 KiB of mostly repeated node metadata that
compresses to a quarter, and the two ways a part may be pickled (by reference, by value) largely
repeat each other too. The digest a step checks is over these stored bytes, so nothing is
decompressed or unpickled before it matches. The same check guards every file the launcher
stages for a step (a command-mode job's overrides too): read_checked.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any, Dict

import cloudpickle

from ._storage import Storage


class StagedDigestMismatch(RuntimeError):
    """A staged file whose bytes are not what the launcher staged (its digest came in the
    step's task, not from the bucket)."""


def dumps(parts: Dict[str, Any]) -> bytes:
    return zlib.compress(cloudpickle.dumps(parts))


def loads(data: bytes) -> Dict[str, Any]:
    loaded: Dict[str, Any] = cloudpickle.loads(zlib.decompress(data))
    return loaded


def read_checked(storage: Storage, name: str, digest: str) -> bytes:
    """The staged file's bytes, only if their SHA-256 is the digest the launcher gave the step."""
    data = storage.read(name)
    if data is None:
        raise FileNotFoundError(f"{storage.uri(name)} is missing")
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise StagedDigestMismatch(
            f"{storage.uri(name)} has digest {actual}, the launcher staged {digest}: refusing it"
        )
    return data
