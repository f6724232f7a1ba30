"""Warm local steps: forked from a preloaded interpreter, each is still the process a fresh
`python -m` would be (session, working dir, environment, console log, exit code, signals)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from apputil import read_json, wait_until

from hydra_plugins.hydra_vertex_pipeline_launcher._backends._local import (
    _how_it_ended,
    _own_process_group,
    _signal_group,
)
from hydra_plugins.hydra_vertex_pipeline_launcher._backends._warm import WarmStarter, can_start_warm

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="warm starts need fork")

# Run as `python -m probe_step RECORD [sleep|kill]`: records what the step sees of its process.
PROBE = textwrap.dedent(
    """
    import atexit, json, logging, os, signal, subprocess, sys, threading, time

    preloaded = "hydra" in sys.modules
    stdin, null = os.fstat(0), os.stat(os.devnull)
    record = {
        "preloaded": preloaded,
        "pid": os.getpid(), "pgid": os.getpgid(0), "sid": os.getsid(0), "ppid": os.getppid(),
        "cwd": os.getcwd(), "env": dict(os.environ), "argv": sys.argv, "path": sys.path,
        "name": __name__, "main_is_me": sys.modules["__main__"].__dict__ is globals(),
        "stdin_is_null": (stdin.st_dev, stdin.st_ino) == (null.st_dev, null.st_ino),
        "root_handlers": len(logging.getLogger().handlers),
        "signals": [str(signal.getsignal(s)) for s in
                    (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE)],
        "threads": threading.active_count(),
    }
    if sys.argv[2:] == ["sleep"]:
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        record["grandchild"] = grandchild.pid
    with open(sys.argv[1], "w") as f:
        json.dump(record, f)
    atexit.register(lambda: print("atexit ran"))
    print("to stdout, unflushed", end="")
    print("to stderr", file=sys.stderr)
    if sys.argv[2:] == ["sleep"]:
        time.sleep(60)
    if sys.argv[2:] == ["kill"]:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(3)
    """
)


@pytest.fixture
def starter() -> Iterator[WarmStarter]:
    warm = WarmStarter()
    yield warm
    warm.close()


@pytest.fixture
def probe_dir(tmp_path: Path) -> Path:
    (tmp_path / "probe_step.py").write_text(PROBE)
    return tmp_path


def _step_env(probe_dir: Path) -> Dict[str, str]:
    return {"PATH": os.environ["PATH"], "STEP_ONLY": "yes", "PYTHONPATH": str(probe_dir)}


def _argv(*args: str) -> List[str]:
    return [sys.executable, "-m", "probe_step", *args]


def _cold(argv: List[str], cwd: Path, env: Dict[str, str], console: Path) -> int:
    """As the local backend starts a step cold."""
    with console.open("ab") as out:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            **_own_process_group(),
        ).wait()


def test_a_warm_step_is_the_process_a_cold_start_would_be(
    probe_dir: Path, starter: WarmStarter
) -> None:
    env = _step_env(probe_dir)
    cold_log, warm_log = probe_dir / "cold.log", probe_dir / "warm.log"
    cold_code = _cold(_argv(str(probe_dir / "seen.json")), probe_dir, env, cold_log)
    cold = read_json(probe_dir / "seen.json")
    warm = starter.start(_argv(str(probe_dir / "seen.json")), probe_dir, env, warm_log)

    assert warm is not None and warm.wait(timeout=60) == cold_code == 3
    warm_seen = read_json(probe_dir / "seen.json")
    assert (cold.pop("preloaded"), warm_seen.pop("preloaded")) == (False, True)
    for seen in (cold, warm_seen):
        assert seen.pop("pid") == seen.pop("pgid") == seen.pop("sid"), "its own session"
        seen.pop("ppid")
    assert warm_seen == cold
    # Exactly its env (the launcher's own variables stay out), plus what any Python adds at
    # start-up (PEP 538's LC_CTYPE under the C locale).
    assert set(warm_seen["env"]) - set(env) <= {"LC_CTYPE"} and warm_seen["env"]["STEP_ONLY"]
    assert warm_seen["cwd"] == str(probe_dir)
    assert warm_seen["argv"] == [str(probe_dir / "probe_step.py"), str(probe_dir / "seen.json")]
    assert warm_seen["name"] == "__main__" and warm_seen["main_is_me"]
    for log in (cold_log, warm_log):
        # Unflushed output too: the interpreter ends as a fresh one does.
        assert log.read_text().splitlines() == ["to stderr", "to stdout, unflushedatexit ran"]


def test_a_warm_step_ends_with_its_process_group_and_names_the_signal(
    probe_dir: Path, starter: WarmStarter
) -> None:
    record = probe_dir / "record.json"
    warm = starter.start(
        _argv(str(record), "sleep"), probe_dir, _step_env(probe_dir), probe_dir / "log"
    )
    assert warm is not None
    wait_until(record.exists)
    wait_until(lambda: record.stat().st_size > 0)
    grandchild = read_json(record)["grandchild"]

    _signal_group(warm, kill=False)

    assert warm.wait(timeout=30) == -signal.SIGTERM
    assert _how_it_ended(warm.wait()) == "the step was killed by signal SIGTERM"
    wait_until(lambda: not _alive(grandchild), timeout=15)


def test_a_lost_server_fails_its_running_steps_once_they_end_and_later_ones_start_cold(
    probe_dir: Path, starter: WarmStarter
) -> None:
    record = probe_dir / "record.json"
    env = _step_env(probe_dir)
    warm = starter.start(_argv(str(record), "sleep"), probe_dir, env, probe_dir / "log")
    assert warm is not None
    wait_until(lambda: record.exists() and record.stat().st_size > 0)
    os.kill(read_json(record)["ppid"], signal.SIGKILL)  # the server
    with pytest.raises(subprocess.TimeoutExpired):
        warm.wait(timeout=1)  # the step runs on

    _signal_group(warm, kill=True)

    with pytest.raises(RuntimeError, match="its exit code is lost"):
        warm.wait(timeout=30)
    assert starter.start(_argv(str(record)), probe_dir, env, probe_dir / "log") is None


def test_a_warm_step_killed_by_sigkill_is_named_so(probe_dir: Path, starter: WarmStarter) -> None:
    warm = starter.start(
        _argv(str(probe_dir / "r.json"), "kill"), probe_dir, _step_env(probe_dir), probe_dir / "log"
    )
    assert warm is not None
    assert _how_it_ended(warm.wait(timeout=60)).startswith("the step was killed by signal SIGKILL")


def test_each_warm_step_sees_only_its_own_environment(
    probe_dir: Path, starter: WarmStarter
) -> None:
    """The second step forked from the same server does not see the first one's variables."""
    locale = {"LC_ALL": "C.UTF-8"}  # nothing for Python to add at start-up
    first_env = {**_step_env(probe_dir), **locale, "FIRST_ONLY": "1"}
    second_env = {**_step_env(probe_dir), **locale, "SECOND_ONLY": "2"}
    for name, env in (("first", first_env), ("second", second_env)):
        warm = starter.start(
            _argv(str(probe_dir / f"{name}.json")), probe_dir, env, probe_dir / name
        )
        assert warm is not None and warm.wait(timeout=60) == 3
    assert read_json(probe_dir / "first.json")["env"] == first_env
    assert read_json(probe_dir / "second.json")["env"] == second_env


def test_a_child_that_cannot_become_its_step_fails_the_start_and_says_why(
    probe_dir: Path, starter: WarmStarter
) -> None:
    console = probe_dir / "gone" / "log"
    with pytest.raises(RuntimeError, match=f"No such file or directory: '{console}'"):
        starter.start(_argv("x"), probe_dir, _step_env(probe_dir), console)


@pytest.mark.parametrize(
    "argv, warm",
    [
        ([sys.executable, "-m", "pkg.mod", "--x"], True),
        (["python", "-m", "pkg.mod"], False),  # another interpreter: cold
        ([sys.executable, "-u", "-m", "pkg.mod"], False),  # interpreter options: cold
        ([sys.executable, "script.py"], False),
        (["/bin/echo", "-m", "x"], False),
    ],
)
def test_only_this_pythons_dash_m_starts_warm(argv: List[str], warm: bool) -> None:
    assert can_start_warm(argv) is warm


SWEEP_APP = textwrap.dedent(
    """
    import json, os
    from pathlib import Path

    import hydra

    @hydra.main(version_base=None, config_path=None)
    def main(cfg):
        with open(f"/proc/{os.getppid()}/cmdline") as f:
            parent = f.read().replace("\\0", " ")
        seen = {"pid": os.getpid(), "pgid": os.getpgid(0), "sid": os.getsid(0), "parent": parent,
                "cwd": os.getcwd(), "var": os.environ.get("RUN_VAR"), "x": cfg.x}
        Path(cfg.board, f"{cfg.x}.json").write_text(json.dumps(seen))
        print(f"console of x={cfg.x}")

    if __name__ == "__main__":
        main()
    """
)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
def test_the_jobs_of_a_sweep_run_in_warm_steps_each_in_its_own_process(tmp_path: Path) -> None:
    (tmp_path / "sweep_app.py").write_text(SWEEP_APP)
    board, sweep = tmp_path / "board", tmp_path / "multirun"
    board.mkdir()
    args = [
        "-m",
        "+x=1,2,3,4",
        f"+board={board}",
        "hydra/launcher=vertex_pipeline_local",
        "+hydra.launcher.env.RUN_VAR=set-by-the-spec",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.run(
        [sys.executable, "sweep_app.py", *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr

    seen = [read_json(board / f"{x}.json") for x in (1, 2, 3, 4)]
    assert len({s["pid"] for s in seen}) == 4
    for job in seen:
        assert job["pid"] == job["pgid"] == job["sid"]
        assert job["cwd"] == str(tmp_path) and job["var"] == "set-by-the-spec"
        # Forked by the warm-start server, which the launcher started: not by the launcher.
        assert "hydra_vertex_pipeline_launcher._backends._warm" in job["parent"]
    logs = sorted((sweep / "vertex_pipeline").glob("*/steps/*.log"))
    consoles = sorted(line for log in logs for line in log.read_text().splitlines())
    assert consoles == [f"console of x={x}" for x in (1, 2, 3, 4)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")  # a zombie counts as ended
    return not (status.exists() and "zombie" in status.read_text())
