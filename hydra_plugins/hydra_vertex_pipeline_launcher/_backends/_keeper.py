"""What a local step started cold runs in: `python -m <this module> <step's argv>`.

A container ends every process in it when its main process ends or is stopped; here this
process does it for a step that is not the launcher's own (a hand-built pipeline's app, which
runs none of this package's code): it runs the step as its child and, as a child subreaper,
finds whatever the step starts. What is left when the step ends is stopped; when the launcher
dies (SIGKILL included) the step and all it started are stopped. It ends as the step ended
(exit code, or the signal that killed it), so the backend reads the step's own end.

The local backend starts it in a session of its own and signals that session's process group,
which the step is in: this process only waits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import List

from .._shared._process_tree import (
    PARENT_PID_ENV,
    become_subreaper,
    end_with_starter,
    stop_tree,
)

# As a shell says a command could not be run.
CANNOT_START = 127
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)


def main(argv: List[str]) -> int:
    become_subreaper()
    end_with_starter(subreaper=False)
    for signum in STOP_SIGNALS:
        # The step got it too (its process group): it decides how it ends.
        signal.signal(signum, lambda signum, frame: None)
    env = {**os.environ, PARENT_PID_ENV: str(os.getpid())}
    try:
        step = subprocess.Popen(argv, env=env)
    except OSError as e:
        print(f"the step's command {argv!r} could not start: {e}", file=sys.stderr)
        return CANNOT_START
    returncode = step.wait()
    stop_tree(os.getpid())
    if returncode < 0:
        sys.stdout.flush()
        signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
