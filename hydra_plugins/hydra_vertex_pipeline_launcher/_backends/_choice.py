"""The choice of backend: above the backends, which import only the interface in _base.py."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import VertexPipelineLauncherConf, local_max_parallel
from ._base import PipelineBackend, RunContext


def make_backend(settings: VertexPipelineLauncherConf, run: RunContext) -> PipelineBackend:
    """Made before anything is staged, so that missing credentials stop the launch early."""
    if settings.backend == "local":
        from ._local import LocalBackend

        return LocalBackend(local_max_parallel(settings), Path(os.getcwd()), run)
    from ._vertex import VertexBackend

    return VertexBackend(settings, run)
