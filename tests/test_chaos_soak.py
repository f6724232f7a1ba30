"""A seeded chaos soak: a sweep on the fake Vertex, the launcher's Cloud Storage behind a proxy
that drops connections and slows down at random, Vertex answering 5xx at random (a create too,
after it committed), and the launcher SIGKILLed at a random moment; then `attach`. No result is
lost, no pipeline is created twice, every failed job is named.

One short round by default; more, or another seed, by environment:
`CHAOS_ROUNDS=20 CHAOS_SEED=7 python -m pytest tests/test_chaos_soak.py`. A failing round's seed
is in its test id, so it can be run again alone.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Optional, Type

import pytest
from apputil import kept_result, read_json
from cliutil import run_cli, start_app_with_env
from fake_vertex import FakeVertex
from tcp_proxy import SwitchableProxy
from vertexutil import only_job, sweep_args

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._collect import load_value

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "1"))
SEED = int(os.environ.get("CHAOS_SEED", "1729"))
# faults.py: "hang" jobs return x * 10 after hang_for seconds, "exit" ones fail, by design.
SWEEP = ("+fault=hang,exit", "+x=1,2,3")
ATTACH_TRIES = 3


class Chaos:
    """Until the block ends: at random moments, drops the launcher's Cloud Storage connections
    for a while, slows them down, or makes Vertex answer status reads with 5xx."""

    def __init__(self, rng: random.Random, proxy: SwitchableProxy, fake: FakeVertex) -> None:
        self.rng = rng
        self.proxy = proxy
        self.fake = fake
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Chaos:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        error: Optional[BaseException],
        trace: Optional[TracebackType],
    ) -> None:
        self.done.set()
        self.thread.join()
        self.proxy.restore()
        self.proxy.delay = 0.0

    def _run(self) -> None:
        while not self.done.wait(self.rng.uniform(0.2, 1.0)):
            what = self.rng.choice(("drop", "slow", "vertex_5xx", "calm"))
            if what == "drop":
                self.proxy.refuse()
                self.done.wait(self.rng.uniform(0.1, 1.5))
                self.proxy.restore()
            elif what == "slow":
                self.proxy.delay = self.rng.uniform(0.05, 0.3)
                self.done.wait(self.rng.uniform(0.5, 2.0))
                self.proxy.delay = 0.0
            elif what == "vertex_5xx":
                self.fake.fail_next("get", self.rng.randint(1, 3), self.rng.choice((500, 503)))


@pytest.mark.parametrize("seed", [SEED + n for n in range(ROUNDS)])
def test_chaos_loses_no_result_and_creates_no_run_twice(
    fake_vertex: FakeVertex,
    gcs_bucket: str,
    storage_proxy: SwitchableProxy,
    tmp_path: Path,
    seed: int,
) -> None:
    rng = random.Random(seed)
    sweep = tmp_path / "m"
    hang_for = f"+hang_for={rng.uniform(0.5, 4.0):.1f}"
    args = sweep_args(fake_vertex, gcs_bucket, sweep, *SWEEP, hang_for)
    env = {**os.environ, "STORAGE_EMULATOR_HOST": storage_proxy.endpoint}
    if rng.random() < 0.5:
        fake_vertex.fail_create_after_commit()
    kill_after = rng.uniform(0.5, 6.0) if rng.random() < 0.5 else None
    launcher = start_app_with_env("faults.py", args, tmp_path, env)
    try:
        only_job(fake_vertex)
        with Chaos(rng, storage_proxy, fake_vertex):
            if kill_after is not None:
                _wait_for_exit(launcher, kill_after)
                launcher.kill()
            output, _ = launcher.communicate(timeout=240)
    finally:
        launcher.kill()

    killed = launcher.returncode == -9
    print(f"seed {seed}: launcher killed {killed}, {storage_proxy.refused} connections dropped")
    for _ in range(ATTACH_TRIES):  # the chaos is over: attach collects what is left
        attached = run_cli("attach", str(sweep), env=env)
        if "every job was collected already" in attached.stdout:
            break
    (run_id,) = fake_vertex.jobs  # never created twice
    record = read_json(sweep / "vertex_pipeline" / run_id / "run.json")
    assert len(record["jobs"]) == 6
    for num, entry in record["jobs"].items():
        job = dict(override.lstrip("+").split("=") for override in entry["overrides"])
        status = read_json(sweep / num / "vertex_status.json")
        if job["fault"] == "exit":
            assert status["state"] == "FAILED", (status, output)
            assert "the job exited with status 3" in status["error"], status
        else:
            assert status["state"] == "SUCCEEDED", (status, output, attached.stdout)
            assert load_value(kept_result(sweep, sweep / num)) == int(job["x"]) * 10


def _wait_for_exit(process: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
