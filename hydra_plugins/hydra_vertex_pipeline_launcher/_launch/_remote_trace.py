"""A failed job's exception, raised here by Hydra's sweeper, carries the frames its step
reported, so that Hydra prints it as it prints a job of its basic launcher: from its `run_job`
on, the app's frames only, then its hint about HYDRA_FULL_ERROR (every frame with it set).

Python tracebacks hold real frames only: each remote frame is a frame of a small code object
compiled under the remote file's name and line and named as the remote function (as Jinja2
does for its templates). The lines are shown from the files here, or else as the step
reported them.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
from dataclasses import dataclass
from types import TracebackType
from typing import Dict, List, Optional

from ._report import TRACEBACK_HEADER

FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<name>\S+)$')
# The plugin's own frames around the job: not the app's, shown only with HYDRA_FULL_ERROR=1.
OWN_CODE = f"{os.sep}hydra_plugins{os.sep}hydra_vertex_pipeline_launcher{os.sep}"


@dataclass(frozen=True)
class RemoteFrame:
    file: str
    line: int
    name: str
    source: str


def with_remote_frames(error: BaseException, trace: str) -> None:
    """error's traceback becomes the frames of trace, the step's account of it (a traceback's
    last exception, or the stack where a time limit stopped the job); unchanged if it has
    none."""
    full = os.environ.get("HYDRA_FULL_ERROR") == "1"
    frames = [frame for frame in remote_frames(trace) if full or OWN_CODE not in frame.file]
    tb: Optional[TracebackType] = None
    for frame in reversed(frames):
        made = _traceback_of(frame)
        if made is None:
            return  # a name Python cannot compile as a function's: left as it was
        made.tb_next = tb
        tb = made
    if tb is not None:
        _show_remote_lines(frames)
        error.__traceback__ = tb


def remote_frames(trace: str) -> List[RemoteFrame]:
    """The frames of trace's last traceback (or of its only stack listing)."""
    lines = trace.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(TRACEBACK_HEADER)]
    frames: List[RemoteFrame] = []
    for number, line in enumerate(lines[starts[-1] if starts else 0 :]):
        found = FRAME.match(line)
        if found is None:
            if frames and not line.startswith(" "):
                break  # the exception's line: its frames ended
            continue
        following = lines[(starts[-1] if starts else 0) + number + 1 :][:1]
        source = following[0].strip() if following and following[0].startswith("    ") else ""
        frames.append(RemoteFrame(found["file"], int(found["line"]), found["name"], source))
    return frames


def _traceback_of(frame: RemoteFrame) -> Optional[TracebackType]:
    """A traceback entry whose frame is at frame's file, line and function name."""
    try:
        # Two lines: Python 3.11+ then underlines no part of the line it shows.
        raising = "raise (\n__remote_error__)"
        code = compile("\n" * (frame.line - 1) + raising, frame.file, "exec")
        code = code.replace(co_name=frame.name)
    except (SyntaxError, ValueError):
        return None
    try:
        exec(code, {"__name__": "__remote__", "__remote_error__": _Marker()})
    except _Marker:
        tb = sys.exc_info()[2]
        return tb.tb_next if tb is not None else None
    return None


class _Marker(Exception):
    pass


def _show_remote_lines(frames: List[RemoteFrame]) -> None:
    """Files that are not here (the image's) show the lines the step reported."""
    by_file: Dict[str, Dict[int, str]] = {}
    for frame in frames:
        if frame.source and not os.path.isfile(frame.file):
            by_file.setdefault(frame.file, {})[frame.line] = frame.source
    for file, known in by_file.items():
        lines = [""] * max(known)
        for line, source in known.items():
            lines[line - 1] = source + "\n"
        # No modification time: linecache keeps the entry, as it keeps a module loader's.
        linecache.cache[file] = (sum(map(len, lines)), None, lines, file)
