"""Target 6: staging and collecting a sweep through Cloud Storage that answers each request
30 ms late (the tests' emulator behind tests/tcp_proxy.py), in parallel as the launcher does it,
÷ the same objects moved one at a time.

The launcher's way: one `write_many` of every job's payload and readable configs, then each
job collected by `_collect.collect` (its output dir and result), COLLECT_WORKERS jobs at once,
as when they all end within one poll. One at a time: the same objects, one request after
another. That takes minutes at 1000 jobs and grows exactly with the objects, so it is timed on
a sample of the jobs and scaled to all of them.
"""

from __future__ import annotations

import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Tuple

TESTS = Path(__file__).parents[1] / "tests"
DELAY = 0.030


@contextmanager
def delayed_emulator(delay: float) -> Iterator[str]:
    """A bucket on the Cloud Storage emulator, reached through a proxy adding `delay`.

    Both run in a process of their own: in this one, they would compete with the transfers
    for its interpreter lock.
    """
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = server.stdout.readline().strip()
    try:
        from google.cloud import storage

        storage.Client().create_bucket("bench")
        yield "gs://bench"
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
        server.stdin.close()  # it ends when its input does
        server.wait(timeout=30)


def _serve(delay: float) -> None:
    """Runs the emulator behind the delaying proxy; prints the proxy's endpoint; ends with
    its input."""
    sys.path.insert(0, str(TESTS))
    from gcp_storage_emulator import server as emulator_server
    from gcs_emulator import start_emulator
    from tcp_proxy import SwitchableProxy

    # As Cloud Storage does: requests on many connections at once, each connection kept.
    emulator_server.server.HTTPServer = http.server.ThreadingHTTPServer
    emulator_server.RequestHandler.protocol_version = "HTTP/1.1"
    # Its headers and body go out as two writes: with Nagle's algorithm, the body would wait
    # for the client's delayed acknowledgement (40 ms) on every kept connection.
    emulator_server.RequestHandler.disable_nagle_algorithm = True
    server, endpoint = start_emulator()
    # The emulator rewrites its whole metadata file after every write, for a restart that an
    # in-memory emulator never has: at thousands of objects that alone would be the figure.
    server._storage._write_config_to_file = lambda: None
    host, port = endpoint.rsplit("/", 1)[-1].split(":")
    proxy = SwitchableProxy((host, int(port)), delay=delay)
    print(proxy.endpoint, flush=True)
    sys.stdin.read()
    proxy.close()
    server.stop()


def _objects(
    staged_job: Mapping[str, bytes],
    outputs_job: Mapping[str, bytes],
    result: bytes,
    count: int,
    run_id: str,
) -> Tuple[Dict[str, bytes], Dict[str, bytes]]:
    """What `count` jobs stage, and what their steps hand back, by object name."""
    from hydra_plugins.hydra_vertex_pipeline_launcher._shared import _layout

    staged: Dict[str, bytes] = {}
    handed_back: Dict[str, bytes] = {}
    for num in range(count):
        prefix, output = _layout.job_prefix(num), _layout.job_output(num)
        staged.update({f"{prefix}/{name}": data for name, data in staged_job.items()})
        handed_back.update({f"{output}/{name}": data for name, data in outputs_job.items()})
        handed_back[_layout.job_result(num)] = _resealed(result, run_id, num)
    return staged, handed_back


# The key the measured runs' results are sealed with.
BENCH_KEY = "0" * 64


def _resealed(result: bytes, run_id: str, num: int) -> bytes:
    """A real step's result as job `num` of run `run_id` would hand it back, sealed with
    BENCH_KEY: its header (the line after the seal) read as the JSON it is."""
    from hydra_plugins.hydra_vertex_pipeline_launcher._shared._result import seal

    header_line, _, pickled = result.split(b"\n", 2)[2].partition(b"\n")
    header = {**json.loads(header_line), "run_id": run_id, "job": num}
    return seal(header, pickled, BENCH_KEY)


def _parallel(root: str, run: str, staged: Mapping[str, bytes], count: int, work: Path) -> float:
    from hydra_plugins.hydra_vertex_pipeline_launcher._backends._base import State, TaskStatus
    from hydra_plugins.hydra_vertex_pipeline_launcher._launch._collect import collect
    from hydra_plugins.hydra_vertex_pipeline_launcher._launch._watch import (
        COLLECT_WORKERS,
        WatchedJob,
    )
    from hydra_plugins.hydra_vertex_pipeline_launcher._shared._result import RunKey
    from hydra_plugins.hydra_vertex_pipeline_launcher._shared._storage import open_storage

    storage = open_storage(f"{root}/{run}", timeout=120)
    key = RunKey(run, BENCH_KEY)
    jobs = [WatchedJob(n, f"task-{n}", f"#{n}", work / run / str(n)) for n in range(count)]
    ended = TaskStatus(State.SUCCEEDED)
    started = time.perf_counter()
    storage.write_many(staged)
    with ThreadPoolExecutor(COLLECT_WORKERS) as pool:
        collected = pool.map(lambda job: collect(storage, job, ended, run, run_key=key), jobs)
        outcomes = [c.outcome for c in collected]
    seconds = time.perf_counter() - started
    assert all(o.state is State.SUCCEEDED for o in outcomes), outcomes[0]
    return seconds


def _one_at_a_time(
    root: str, run: str, staged: Mapping[str, bytes], count: int, work: Path
) -> float:
    """The same objects, each its own request, one after another."""
    from google.cloud import storage

    bucket = storage.Client().bucket(root[len("gs://") :])
    started = time.perf_counter()
    for name, data in staged.items():
        bucket.blob(f"{run}/{name}").upload_from_string(data)
    for num in range(count):
        prefix = f"{run}/jobs/{num}/output/"
        for blob in storage.Client.list_blobs(bucket.client, bucket, prefix=prefix):
            dest = work / run / str(num) / blob.name[len(prefix) :]
            dest.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(dest))
        bucket.blob(f"{run}/jobs/{num}/result.pkl").download_as_bytes()
    return time.perf_counter() - started


def measure(
    staged_job: Mapping[str, bytes],
    outputs_job: Mapping[str, bytes],
    result: bytes,
    jobs: int = 1000,
    sample: int = 100,
    runs: int = 3,
    budget: float = float("inf"),
    delay: float = DELAY,
) -> dict:
    """Medians of up to `runs` runs, none started after `budget` seconds.

    staged_job: one job's staged objects by name (payload.pkl, config.yaml, ...); outputs_job:
    its output dir's files by relative path; result: its result.pkl.
    """
    from hydra_plugins.hydra_vertex_pipeline_launcher._shared._storage import open_storage

    ways = (("parallel", jobs, _parallel), ("one_at_a_time", sample, _one_at_a_time))
    timings: Dict[str, List[float]] = {"parallel": [], "one_at_a_time": []}
    started = time.perf_counter()
    with delayed_emulator(delay) as root, tempfile.TemporaryDirectory() as scratch:
        for label, count, move in ways:
            staged, handed_back = _objects(staged_job, outputs_job, result, count, label)
            # The steps' side, in place before the collect; not timed.
            open_storage(f"{root}/{label}").write_many(handed_back)
            for run in range(runs):  # each run stages anew and collects into a fresh dir
                if run and time.perf_counter() - started > budget:
                    break
                work = Path(scratch, f"{label}-{run}")
                timings[label].append(move(root, label, staged, count, work))
    parallel = statistics.median(timings["parallel"])
    one_at_a_time = statistics.median(timings["one_at_a_time"]) * jobs / sample
    return {
        "jobs": jobs,
        "sample": sample,
        "runs": min(len(timings["parallel"]), len(timings["one_at_a_time"])),
        "delay_ms": delay * 1000,
        "parallel_seconds": parallel,
        "one_at_a_time_seconds": one_at_a_time,
        "ratio": parallel / one_at_a_time,
    }


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    _serve(float(sys.argv[2]))
