"""The choice of backend: above the backends, which import only the interface in _backend.py."""

from __future__ import annotations

import os
from pathlib import Path

from ._backend import PipelineBackend, RunContext
from .config import VertexPipelineLauncherConf, local_max_parallel


def make_backend(settings: VertexPipelineLauncherConf, run: RunContext) -> PipelineBackend:
    """Made before anything is staged, so that missing credentials stop the launch early."""
    if settings.backend == "local":
        from ._backend_local import LocalBackend

        return LocalBackend(local_max_parallel(settings), Path(os.getcwd()), run)
    from ._backend_vertex import VertexBackend

    return VertexBackend(settings, run)
