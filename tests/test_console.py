"""What the terminal shows of a launch's jobs (#18): their console (hydra.launcher.console), each
failure named as it ends and in a closing summary with the next commands, and a failed job's
traceback as Hydra's basic launcher prints it."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Tuple

from apputil import APPS, read_json, run_app, start_app, wait_until
from cliutil import run_cli, table_rows
from fake_vertex import FakeVertex
from vertexutil import vertex_overrides

from hydra_plugins.hydra_vertex_pipeline_launcher._shared._faults import FAILURE_MARK

LOCAL = "hydra/launcher=vertex_pipeline_local"
VERTEX = "hydra/launcher=vertex_pipeline"
APP = "talkative.py"
HINT = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."


class Output:
    """A launcher's output (stdout and stderr), read line by line as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: List[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        self._reader = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._reader.start()

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def text(self) -> str:
        self._reader.join(timeout=30)
        return "".join(self.lines)


def _vertex(fake: FakeVertex, bucket: str) -> List[str]:
    return [VERTEX, *vertex_overrides(fake, bucket)]


def _shows_a_single_runs_console_as_it_comes(launcher: List[str], tmp_path: Path) -> None:
    go = tmp_path / "go"
    args = ["+x=1", f"+go={go}", f"hydra.run.dir={tmp_path / 'run'}", *launcher]
    proc = start_app(APP, args, tmp_path)
    output = Output(proc)
    try:
        wait_until(lambda: output.has("logged by x=1"), timeout=120)
        # The job still waits for its go-file: these lines came while it ran.
        assert not output.has("printed again by x=1")
        go.touch()
        assert proc.wait(timeout=120) == 0, output.text()
    finally:
        proc.kill()
    shown = output.text()
    for line in ("printed by x=1", "to stderr by x=1", "UserWarning: warned by x=1"):
        assert line in shown
    assert "printed again by x=1" in shown
    assert "[#0" not in shown, "a single run's lines are its own, not prefixed"


def test_a_single_run_shows_the_jobs_console_as_it_comes(tmp_path: Path) -> None:
    _shows_a_single_runs_console_as_it_comes([LOCAL], tmp_path)


def test_a_single_run_on_vertex_shows_the_jobs_console_as_its_log_streams_in(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    _shows_a_single_runs_console_as_it_comes(_vertex(fake_vertex, gcs_bucket), tmp_path)


def test_a_job_on_vertex_shows_all_it_and_its_children_printed_up_to_its_last_words(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    # A child floods the step's pipes right before the job ends, and the job's last line has no
    # newline: the step's final console upload must hold all of it.
    flood = 3000
    args = ["+x=4", f"+flood={flood}", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = run_app(APP, [*args, *_vertex(fake_vertex, gcs_bucket)], tmp_path)

    assert proc.returncode == 0, proc.stderr
    shown = [line for line in proc.stdout.splitlines() if line.startswith("flood line ")]
    assert shown == [f"flood line {i:06d} " + "x" * 100 for i in range(flood)]
    assert "last words by x=4" in proc.stdout


DRAIN = """
import subprocess, sys
from pathlib import Path
from hydra_plugins.hydra_vertex_pipeline_launcher._step._console import Console

console = Console().start()
lines = "for i in range(3000): print(f'line {i:06d} ' + 'x' * 100)"
subprocess.run([sys.executable, "-c", lines], check=True)
sys.stdout.write("last words")
console.drain()
Path(sys.argv[1]).write_bytes(console.path.read_bytes())
"""


def test_a_steps_console_file_holds_all_written_before_its_drain_however_slow_its_reader(
    tmp_path: Path,
) -> None:
    # The step's stdout is read slowly (a busy log collector), so its pump lags behind the
    # child; the file must still hold all of it, in order, after the drain. (The drain's wait
    # for non-empty pipes is not what this catches: Python's lock hand-off lets the pump win.)
    kept = tmp_path / "console.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", DRAIN, str(kept)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    shown = b""
    while chunk := proc.stdout.read1(4096):
        shown += chunk
        time.sleep(0.003)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    expected = "".join(f"line {i:06d} " + "x" * 100 + "\n" for i in range(3000)) + "last words"
    assert kept.read_text() == expected
    assert shown.decode() == expected


def _three_failures(launcher: List[str], tmp_path: Path, *settings: str) -> Tuple[Path, str]:
    """A sweep of four jobs, three failing three ways: its dir and its stdout. Checks what the
    terminal said of each failure as it ended and at the end."""
    sweep = tmp_path / "multirun"
    args = ["-m", "+end=ok,raise,exit,hang", "+x=7", f"hydra.sweep.dir={sweep}", *launcher]
    proc = run_app(APP, [*args, "hydra.launcher.timeout=5", *settings], tmp_path)

    assert proc.returncode == 1, proc.stderr
    said = proc.stdout
    failures = [
        "#1 +end=raise +x=7 failed: ValueError: x=7 is not allowed here",
        "#2 +end=exit +x=7 failed: JobExited: the job exited with status 3",
        "#3 +end=hang +x=7 failed: the job timed out after 5 s (hydra.launcher.timeout=5)",
    ]
    summary = said[said.index("3 of 4 jobs failed:") :]
    for failure in failures:
        assert failure in said[: said.index("3 of 4 jobs failed:")], "named as it ended"
        number, _, rest = failure.partition(" failed: ")
        assert f"{number}: {rest}" in summary
    assert f"hydra-vertex-pipeline status {sweep}" in summary
    assert "talkative.py -m +end=ok,raise,exit,hang +x=7" in summary
    assert summary.rstrip().endswith("hydra.launcher.resume=true")
    # The first failure raised to Hydra, printed as Hydra prints it: the app's frames, its hint.
    assert "Error executing job with overrides: ['+end=raise', '+x=7']" in proc.stderr
    assert 'talkative.py", line' in proc.stderr and "in check" in proc.stderr
    assert HINT in proc.stderr
    assert "_payload_job.py" not in proc.stderr and "run_and_report" not in proc.stderr
    return sweep, said


def test_a_sweep_names_three_failures_as_they_end_and_at_the_end(tmp_path: Path) -> None:
    sweep, _ = _three_failures([LOCAL], tmp_path)
    # The full account stays in the job's status; its own log has none of it.
    error = read_json(sweep / "1" / "vertex_status.json")["error"]
    assert "Traceback" in error and "in check" in error
    assert "Traceback" not in (sweep / "1" / "talkative.log").read_text()
    # The status table names each failure by its exception, and says so by its exit status.
    shown = run_cli("status", str(sweep))
    assert shown.returncode == 1, shown.stdout
    rows = table_rows(shown.stdout)
    assert rows["1"][-1] == "ValueError: x=7 is not allowed here"
    assert rows["2"][-1] == "JobExited: the job exited with status 3"
    assert rows["3"][-1] == "the job timed out after 5 s (hydra.launcher.timeout=5)"


def test_a_sweep_shows_only_its_failed_jobs_lines_by_default(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    args = ["-m", "+end=ok,raise", "+x=5", f"hydra.sweep.dir={sweep}", LOCAL]
    proc = run_app(APP, args, tmp_path)

    assert proc.returncode == 1
    assert "[#1 +end=raise +x=5] printed by x=5" in proc.stdout
    assert "[#1 +end=raise +x=5] to stderr by x=5" in proc.stdout
    assert "[#1 +end=raise +x=5] printed again by x=5" in proc.stdout
    assert "[#0 " not in proc.stdout, "a job that succeeded says nothing by default"
    # What its step added after the job (its full traceback) is named, not echoed.
    assert "how the job failed, in full" not in proc.stdout


def test_a_sweep_on_vertex_names_three_failures_and_shows_every_jobs_lines(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launcher = _vertex(fake_vertex, gcs_bucket)
    sweep, said = _three_failures(launcher, tmp_path, "hydra.launcher.console=all")
    assert "[#0 +end=ok +x=7] printed again by x=7" in said
    assert "[#1 +end=raise +x=7] to stderr by x=7" in said
    assert read_json(sweep / "0" / "vertex_status.json")["state"] == "SUCCEEDED"


def test_console_all_prefixes_every_jobs_lines_and_none_shows_none(tmp_path: Path) -> None:
    def sweep(console: str) -> subprocess.CompletedProcess[str]:
        args = ["-m", "+x=1,2", LOCAL, f"hydra.sweep.dir={tmp_path / console}"]
        return run_app(APP, [*args, f"hydra.launcher.console={console}"], tmp_path)

    every = sweep("all")
    assert every.returncode == 0, every.stderr
    for num, x in ((0, 1), (1, 2)):
        for line in (f"printed by x={x}", f"logged by x={x}", f"printed again by x={x}"):
            assert any(
                shown.startswith(f"[#{num} +x={x}] ") and line in shown
                for shown in every.stdout.splitlines()
            ), line
    none = sweep("none")
    assert none.returncode == 0, none.stderr
    assert "printed by" not in none.stdout + none.stderr


def test_a_bad_console_setting_is_named_before_anything_is_staged(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    args = ["-m", "+x=1", LOCAL, f"hydra.sweep.dir={sweep}", "hydra.launcher.console=loud"]
    proc = run_app(APP, args, tmp_path)

    assert proc.returncode != 0
    assert "hydra.launcher.console='loud': set it to one of all, failures, none." in proc.stderr
    assert not (sweep / "vertex_pipeline").exists()


def test_a_failed_single_run_prints_its_traceback_as_the_basic_launcher_does(
    tmp_path: Path,
) -> None:
    job = ["+x=2", "+end=raise"]
    ours = run_app(APP, [*job, LOCAL, f"hydra.run.dir={tmp_path / 'ours'}"], tmp_path)
    basic = run_app(APP, [*job, f"hydra.run.dir={tmp_path / 'basic'}"], tmp_path)

    assert ours.returncode == basic.returncode == 1
    start = "Error executing job with overrides:"
    assert ours.stderr[ours.stderr.index(start) :] == basic.stderr[basic.stderr.index(start) :]
    assert HINT in ours.stderr

    def logged(run_dir: Path) -> List[str]:
        lines = (run_dir / "talkative.log").read_text().splitlines()
        return [line.partition("] - ")[2] for line in lines]

    assert logged(tmp_path / "ours") == logged(tmp_path / "basic") == ["logged by x=2"]
    # The job's console, as the basic launcher shows it.
    for line in ("printed by x=2", "to stderr by x=2", "printed again by x=2"):
        assert line in ours.stdout + ours.stderr
    # With HYDRA_FULL_ERROR=1, every frame: the step's own too.
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    full = run_app(APP, [*job, LOCAL, f"hydra.run.dir={tmp_path / 'full'}"], tmp_path, env)
    assert full.returncode == 1
    assert "_payload_job.py" in full.stderr and "in check" in full.stderr
    assert HINT not in full.stderr


def test_a_failed_jobs_last_printed_line_shows_above_its_failure_even_unended(
    tmp_path: Path,
) -> None:
    # The job's stdout ends without a newline right before it raises: the step's mark below the
    # job's lines (its traceback follows it, on stderr) must still start a line of its own.
    args = ["+x=5", "+flood=3", "+end=raise", LOCAL, f"hydra.run.dir={tmp_path / 'run'}"]
    proc = run_app(APP, args, tmp_path)

    assert proc.returncode == 1, proc.stderr
    assert "last words by x=5" in proc.stdout.splitlines()
    assert FAILURE_MARK not in proc.stdout + proc.stderr
    assert "_payload_job.py" not in proc.stdout + proc.stderr


def test_a_job_whose_script_is_not_in_the_image_is_named_by_its_exception(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    # The image's working dir is empty and the app's code does not travel with the run: the
    # step says so, and runs the task as pickled by value, which raises.
    fake_vertex.image_dir = tmp_path / "image"
    fake_vertex.image_dir.mkdir()
    launch, sweep = tmp_path / "launch", tmp_path / "multirun"
    launch.mkdir()
    shutil.copy(APPS / APP, launch / APP)
    args = [APP, "-m", "+end=raise", "+x=2", f"hydra.sweep.dir={sweep}"]
    launcher = [*_vertex(fake_vertex, gcs_bucket), "hydra.launcher.ship_code=false"]
    proc = subprocess.run(
        [sys.executable, *args, *launcher], cwd=launch, capture_output=True, text=True, timeout=180
    )

    assert proc.returncode == 1
    error = read_json(sweep / "0" / "vertex_status.json")["error"]
    assert "Running the task as the launcher pickled it by value" in error
    assert "#0 +end=raise +x=2 failed: ValueError: x=2 is not allowed here" in proc.stdout
    shown = run_cli("status", str(sweep))
    assert shown.returncode == 1
    assert table_rows(shown.stdout)["0"][-1] == "ValueError: x=2 is not allowed here"


def test_ctrl_c_says_what_it_cancelled_in_a_few_lines_not_a_traceback(tmp_path: Path) -> None:
    args = ["+x=1", f"+go={tmp_path / 'never'}", f"hydra.run.dir={tmp_path / 'run'}", LOCAL]
    proc = start_app(APP, args, tmp_path)
    output = Output(proc)
    try:
        wait_until(lambda: output.has("logged by x=1"), timeout=120)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 128 + signal.SIGINT
    finally:
        proc.kill()
    said = output.text()
    assert "Cancelled local:" in said
    assert "Traceback" not in said and "KeyboardInterrupt" not in said


def test_the_printed_resume_command_runs_the_failed_jobs_again_in_the_same_dir(
    tmp_path: Path,
) -> None:
    # Hydra's default sweep dir, named by the time: the command must name the same dir again.
    first = run_app("flaky.py", ["-m", "+x=1,2", LOCAL], tmp_path)
    assert first.returncode == 1, first.stderr
    command = first.stdout.split("To run the jobs that did not succeed again: ")[1].splitlines()[0]

    again = subprocess.run(
        shlex.split(command), cwd=tmp_path, capture_output=True, text=True, timeout=180
    )

    assert again.returncode == 1, again.stderr  # x=2 still fails
    assert "Resuming: 1 of 2 jobs succeeded in an earlier run; 1 run now" in again.stdout
    assert "\t#1 +x=2: ValueError: x=2 is not allowed here" in again.stdout


def test_a_run_that_waits_says_so_every_progress_interval(tmp_path: Path) -> None:
    go = tmp_path / "go"
    args = ["-m", "+x=1", f"+go={go}", f"hydra.sweep.dir={tmp_path / 'sweep'}", LOCAL]
    proc = start_app(APP, [*args, "hydra.launcher.progress_interval=1"], tmp_path)
    output = Output(proc)
    try:
        # The job waits for its go-file: its state does not change, yet the launch says so.
        wait_until(lambda: sum(": still " in line for line in output.lines) >= 3, timeout=120)
        go.touch()
        assert proc.wait(timeout=120) == 0, output.text()
    finally:
        proc.kill()
    assert "still 0/1 succeeded, 1 running" in output.text()


def test_a_run_that_changes_says_nothing_more_than_its_progress(tmp_path: Path) -> None:
    args = ["-m", "+x=1,2", f"hydra.sweep.dir={tmp_path / 'sweep'}", LOCAL]
    result = run_app(APP, args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert ": still " not in result.stdout + result.stderr


def test_a_bad_progress_interval_is_named_before_anything_is_staged(tmp_path: Path) -> None:
    args = ["-m", "+x=1", LOCAL, "hydra.launcher.progress_interval=0"]
    result = run_app(APP, args, tmp_path)
    assert result.returncode != 0
    assert "hydra.launcher.progress_interval" in result.stderr
    assert "Staging" not in result.stdout + result.stderr
