"""A hand-built pipeline's output artifacts, from where the backend keeps them (Vertex: the run's
pipeline root on Cloud Storage) into the run dir, where the local backend leaves them:
`<run dir>/pipeline_root/<task>/<name>`.

Each artifact's URI comes from the backend's answer: one outside the run's own pipeline root
(another bucket, another run, a `..` part) is refused and never fetched. What is fetched is data
the user's own step wrote, kept as files: nothing here loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

from .._backends._local import PIPELINE_ROOT
from .._shared._storage import Storage, UnsafeObjectName, safe_relative


def fetch_artifacts(
    storage: Storage, artifacts: Sequence[Tuple[str, str]], task_dir: Path
) -> List[str]:
    """Each (name, URI) below the run's pipeline root (storage is at the run's staging folder)
    into task_dir/<name>, a file or a folder as stored; returns what was refused. Raises when
    the storage cannot be read (each request bounded by its request_timeout)."""
    root = storage.uri(PIPELINE_ROOT) + "/"
    refused = []
    for name, uri in artifacts:
        try:
            source = f"{PIPELINE_ROOT}/{_below(uri, root)}"
            dest = task_dir / _plain_name(name)
            if not storage.download_dir(source, dest):
                storage.download_changed({source: dest}, {})  # a file, not a folder
        except UnsafeObjectName as e:
            refused.append(f"its artifact {name!r} was not fetched: {e}")
    return refused


def _below(uri: str, root: str) -> str:
    """uri's name below root; refused unless it stays there (no '..', '.' or empty part)."""
    try:
        return str(safe_relative(uri[len(root) :] if uri.startswith(root) else ""))
    except UnsafeObjectName:
        raise UnsafeObjectName(
            f"refused {uri!r}: it is not in the run's pipeline root {root}"
        ) from None


def _plain_name(name: str) -> str:
    if len(safe_relative(name).parts) != 1:
        raise UnsafeObjectName(f"refused artifact name {name!r}: not a plain file name")
    return name
