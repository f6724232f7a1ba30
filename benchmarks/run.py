"""Measures every figure of issues #11's and #20's targets; rewrites benchmarks/RESULTS.md.

Run from a checkout, after `pip install ".[test,bench]"`:

    python benchmarks/run.py            # the targets' sizes; medians of up to 3 runs
    python benchmarks/run.py --quick    # fewer jobs, one run: checks that it all works

A figure is run again (up to --runs times) only while it has used less than --budget seconds:
the cheap figures get medians of three, the sweeps of hundreds of jobs run once or twice,
which keeps the whole near 15 minutes on 2 cores (`--runs 3 --budget 1e9` for three of
everything, about three times as long).

Each comparison is a ratio of two figures measured in this run, on this machine. The sweeps
run a trivial app (benchmarks/apps/trivial.py) in a fresh process each, as a user runs it.
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TypeVar

HERE = Path(__file__).resolve().parent
APP = HERE / "apps" / "trivial.py"
TIMED_LAUNCH = HERE / "_timed_launch.py"
RESULTS = HERE / "RESULTS.md"
LOCAL = "hydra/launcher=vertex_pipeline_local"
PACKAGE = "hydra_plugins.hydra_vertex_pipeline_launcher"
PACKAGES = (
    "hydra-vertex-pipeline-launcher",
    "hydra-core",
    "omegaconf",
    "kfp",
    "google-cloud-aiplatform",
    "google-cloud-storage",
    "cloudpickle",
    "hydra-joblib-launcher",
    "gcp-storage-emulator",
)


@dataclass(frozen=True)
class Sizes:
    runs: int
    client_jobs: int  # target 1
    submit_jobs: Sequence[int]  # target 2: (fewer, more)
    build_jobs: int  # target 2: build + compile alone
    local_jobs: int  # target 3
    transfer_jobs: int  # target 6
    transfer_sample: int  # target 6: jobs moved one object at a time
    status_tasks: int  # target 7
    memory_jobs: Sequence[int]  # target 8: (fewer, more); the slope extrapolates to memory_at
    memory_at: int
    cancel_local_jobs: Sequence[int]  # target 9: each its own figure
    cancel_vertex_jobs: Sequence[int]  # target 9: each its own figure
    spec_jobs: int  # target 10
    big_status_tasks: int  # target 11
    # A figure is measured again, up to `runs` times, only while it has used less than this
    # many seconds: the cheap ones get medians, the slow sweeps keep the whole under ~15 min.
    budget: float


FULL = Sizes(
    3, 600, (300, 3000), 10_000, 200, 1000, 50, 1000,
    memory_jobs=(500, 2000), memory_at=10_000, cancel_local_jobs=(2000, 10_000),
    cancel_vertex_jobs=(2000, 10_000), spec_jobs=1000, big_status_tasks=10_000, budget=120,
)  # fmt: skip
QUICK = Sizes(
    1, 40, (20, 200), 1000, 20, 100, 10, 1000,
    memory_jobs=(50, 200), memory_at=1000, cancel_local_jobs=(100, 500),
    cancel_vertex_jobs=(100, 500), spec_jobs=100, big_status_tasks=1000, budget=0,
)  # fmt: skip


@dataclass(frozen=True)
class Figure:
    number: str
    what: str
    measured: float
    unit: str  # "" for a ratio
    target: float  # the most it may be
    how: str

    @property
    def met(self) -> bool:
        return self.measured <= self.target

    def row(self) -> str:
        shown = f"{self.measured:.3g}{' ' + self.unit if self.unit else ''}"
        target = f"≤ {self.target:g}{' ' + self.unit if self.unit else ''}"
        return f"| {self.number} | {self.what} | {shown} | {target} | {_met(self.met)} |"


def _met(met: bool) -> str:
    return "pass" if met else "FAIL"


def _compile_package() -> None:
    """The package's bytecode, as a regular install has it (pip compiles it): in a checkout
    under PYTHONDONTWRITEBYTECODE=1, every process would compile the plugin from source, which
    is not what users run (figure 5 read 21 ms that way, against 5 ms)."""
    package = importlib.import_module(PACKAGE)
    for folder in package.__path__:
        compileall.compile_dir(folder, quiet=1)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs and runs")
    parser.add_argument(
        "--runs", type=int, help="most runs per figure (median); default 3, quick 1"
    )
    parser.add_argument(
        "--budget", type=float, help="seconds after which a figure is not run again; default 120"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.runs:
        sizes = dataclasses.replace(sizes, runs=args.runs)
    if args.budget is not None:
        sizes = dataclasses.replace(sizes, budget=args.budget)
    _check_joblib()
    _compile_package()
    started = time.perf_counter()
    figures: List[Figure] = []
    for measure in (
        _staged_bytes,
        _import_time,
        _status_read,
        _transfers,
        _client_cost,
        _submit_scaling,
        _local_vs_joblib,
        _spec_bytes,
        _big_status_read,
        _cancel,
        _memory,
    ):
        section_started = time.perf_counter()
        measured = measure(sizes)
        for figure in measured:
            print(f"{figure.row()} ({time.perf_counter() - section_started:.0f} s)", flush=True)
        figures += measured
    figures.sort(key=lambda f: f.number)
    minutes = (time.perf_counter() - started) / 60
    command = " ".join(["python benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    args.output.write_text(_report(figures, command, args.quick, minutes), encoding="utf-8")
    print(f"wrote {args.output} ({minutes:.1f} min)")


def _check_joblib() -> None:
    try:
        metadata.version("hydra-joblib-launcher")
    except metadata.PackageNotFoundError:
        sys.exit('Target 3 compares with Hydra\'s joblib launcher: pip install ".[test,bench]"')


# Target 1: the launcher's own client cost.
def _client_cost(sizes: Sizes) -> List[Figure]:
    jobs = sizes.client_jobs
    pairs = _repeated(
        sizes,
        # Alternated: both see the same state of the machine.
        lambda: (
            _timed_launch(jobs, LOCAL)["submitted_seconds"],
            _timed_launch(jobs, "hydra/launcher=basic")["launch_seconds"],
        ),
    )
    ours, basic = [p[0] for p in pairs], [p[1] for p in pairs]
    ratio = statistics.median(ours) / statistics.median(basic)
    how = (
        f"{jobs} jobs: `vertex_pipeline_local` from launch() until submitted "
        f"{_seconds(ours)}; basic launcher's launch() (compose and run them) {_seconds(basic)}"
    )
    return [Figure("1", f"client cost ÷ basic launcher, {jobs} jobs", ratio, "", 0.3, how)]


# Target 2: time until submitted grows linearly; build + compile alone.
def _submit_scaling(sizes: Sizes) -> List[Figure]:
    fewer, more = sizes.submit_jobs
    pairs = _repeated(
        sizes,
        lambda: [_timed_launch(jobs, LOCAL)["submitted_seconds"] for jobs in (fewer, more)],
    )
    seconds = {fewer: [p[0] for p in pairs], more: [p[1] for p in pairs]}
    ratio = statistics.median(seconds[more]) / statistics.median(seconds[fewer])
    how = (
        f"until submitted: {fewer} jobs {_seconds(seconds[fewer])}; "
        f"{more} jobs {_seconds(seconds[more])}"
    )
    build = _build_seconds(sizes.build_jobs)
    return [
        Figure("2a", f"until submitted, {more} ÷ {fewer} jobs", ratio, "", more / fewer * 1.1, how),
        Figure(
            "2b",
            f"build + compile, {sizes.build_jobs} jobs",
            build["seconds"],
            "s",
            10.0 * sizes.build_jobs / FULL.build_jobs,
            build["how"],
        ),
    ]


def _build_seconds(jobs: int) -> Dict[str, Any]:
    build_scale = _sibling("build_scale")
    if build_scale is not None:
        result = build_scale.measure([jobs])["builds"][jobs]
        how = f"benchmarks/build_scale.py: median of {int(result['runs'])}"
        return {"seconds": result["seconds"], "how": how}
    return {"seconds": _own_build_seconds(jobs), "how": "`_build.build_pipeline` once"}


def _own_build_seconds(jobs: int) -> float:
    """build_pipeline alone, for trivial composed jobs (when build_scale.py is not there)."""
    from omegaconf import OmegaConf

    from hydra_plugins.hydra_vertex_pipeline_launcher._launch._build import build_pipeline
    from hydra_plugins.hydra_vertex_pipeline_launcher._launch._compose import ComposedJob
    from hydra_plugins.hydra_vertex_pipeline_launcher._launch._stage import StagedRun
    from hydra_plugins.hydra_vertex_pipeline_launcher.config import settings_from

    config = OmegaConf.create({"hydra": {"job": {"name": "bench"}}})
    composed = [
        ComposedJob(n, [f"x={n}"], config, Path(f"/tmp/bench/{n}"), f"#{n} x={n}")
        for n in range(jobs)
    ]
    staged = StagedRun("0" * 64, {job.num: f"{job.num:064x}" for job in composed}, {})
    settings = settings_from({"image": "europe-docker.pkg.dev/p/repo/train:1"})
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        build_pipeline(
            settings,
            "bench",
            "gs://bucket/hydra/bench",
            composed,
            staged,
            Path(scratch) / "pipeline.yaml",
            {job.num: settings for job in composed},
        )
        return time.perf_counter() - started


# Target 3: vertex_pipeline_local start to finish vs Hydra's joblib launcher.
def _local_vs_joblib(sizes: Sizes) -> List[Figure]:
    jobs, cpus = sizes.local_jobs, os.cpu_count() or 1
    local_steps = _sibling("local_steps")
    if local_steps is not None:

        def once() -> Sequence[float]:
            result = local_steps.measure(jobs, 1)
            return result["local_s"], result["joblib_s"]

        source = "benchmarks/local_steps.py, "
    else:

        def once() -> Sequence[float]:
            joblib = ("hydra/launcher=joblib", f"hydra.launcher.n_jobs={cpus}")
            return _sweep_seconds(jobs, LOCAL), _sweep_seconds(jobs, *joblib)

        source = ""
    pairs = _repeated(sizes, once)
    local, joblib = [p[0] for p in pairs], [p[1] for p in pairs]
    ratio = statistics.median(local) / statistics.median(joblib)
    how = (
        f"{source}{jobs} jobs, start to finish: `vertex_pipeline_local` {_seconds(local)}; "
        f"joblib (n_jobs={cpus}) {_seconds(joblib)}"
    )
    return [Figure("3", f"local backend ÷ joblib launcher, {jobs} jobs", ratio, "", 1.0, how)]


# Target 4: bytes a trivial job moves through the staging root.
STAGED_FILES = ("payload.pkl", "config.yaml", "overrides.yaml", "hydra.yaml")
MOVED_FILES = (*STAGED_FILES, "result.pkl")


def _staged_bytes(sizes: Sizes) -> List[Figure]:
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = _local_run(Path(scratch), jobs=4)
        job_dirs = sorted((run_dir / "jobs").iterdir())
        moved = max(sum((d / name).stat().st_size for name in MOVED_FILES) for d in job_dirs)
        sizes_0 = {name: (job_dirs[0] / name).stat().st_size for name in MOVED_FILES}
        shared = (run_dir / "shared.pkl").stat().st_size
    how = "largest of 4 jobs; job 0: " + ", ".join(f"{n} {b} B" for n, b in sizes_0.items())
    how += f"; once per run, shared.pkl {shared} B"
    return [Figure("4", "bytes a trivial job moves through staging", moved / 1024, "KiB", 12, how)]


def _local_run(workdir: Path, jobs: int) -> Path:
    """A trivial sweep on the local backend; its run's folder in the staging root."""
    sweep = workdir / "multirun"
    _run_app(workdir, f"x=range(0,{jobs})", LOCAL, f"hydra.sweep.dir={sweep}")
    (run_dir,) = (sweep / "vertex_pipeline").iterdir()
    return run_dir


# Target 5: the plugin's own import time.
IMPORT_PROBE = f"""
import importlib, pkgutil, time
import hydra, hydra.main, hydra._internal.hydra, hydra._internal.config_loader_impl
import hydra._internal.core_plugins as core
# What Hydra has loaded when its plugin scan reaches this package: itself, its core plugins.
for found in pkgutil.walk_packages(core.__path__, core.__name__ + "."):
    importlib.import_module(found.name)
started = time.perf_counter()
import {PACKAGE} as package
# What the scan imports of this package, as Hydra walks it: each subpackage (walk_packages
# imports it to look inside) and every module whose name does not start with a single _.
for found in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    last = found.name.rsplit(".", 1)[-1]
    if not last.startswith("_") or last.startswith("__"):
        importlib.import_module(found.name)
print(time.perf_counter() - started)
"""


def _import_time(sizes: Sizes) -> List[Figure]:
    best = min(
        float(
            subprocess.run(
                [sys.executable, "-c", IMPORT_PROBE], check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(5)
    )
    how = (
        "best of 5 fresh interpreters: importing the package and walking it as Hydra's plugin "
        "scan does (its subpackages, and its modules not named _*), after Hydra and its core "
        "plugins"
    )
    return [Figure("5", "the plugin's own import", best * 1000, "ms", 10, how)]


# Target 6: staging and collecting through a slow Cloud Storage.
def _transfers(sizes: Sizes) -> List[Figure]:
    transfers = importlib.import_module("transfers")
    with tempfile.TemporaryDirectory() as scratch:
        job_dir = _local_run(Path(scratch), jobs=1) / "jobs" / "0"
        staged = {name: (job_dir / name).read_bytes() for name in STAGED_FILES}
        output = job_dir / "output"
        outputs = {
            p.relative_to(output).as_posix(): p.read_bytes()
            for p in output.rglob("*")
            if p.is_file()
        }
        result = (job_dir / "result.pkl").read_bytes()
    run = transfers.measure(
        staged,
        outputs,
        result,
        sizes.transfer_jobs,
        sizes.transfer_sample,
        sizes.runs,
        sizes.budget,
    )
    runs = f"(median of {run['runs']})"
    how = (
        f"{sizes.transfer_jobs} jobs ({len(staged)} objects staged, {len(outputs) + 1} collected "
        f"each), 30 ms added per request: as the launcher does it "
        f"{run['parallel_seconds']:.2f} s {runs}; one object at a time "
        f"{run['one_at_a_time_seconds']:.2f} s {runs}, timed on {sizes.transfer_sample} jobs "
        f"and scaled"
    )
    figure = Figure(
        "6",
        f"stage + collect {sizes.transfer_jobs} jobs ÷ one object at a time",
        run["ratio"],
        "",
        0.25,
        how,
    )
    return [figure]


# Target 7: one status read at 1000 tasks, turned into job states.
def _status_read(sizes: Sizes) -> List[Figure]:
    status_read = importlib.import_module("status_read")
    result = status_read.measure(sizes.status_tasks)
    how = (
        f"median of {result['runs']}; every task converted, as at a first read; the whole "
        f"read (request, parsing {result['tasks']} task details cut to the status read's "
        f"field mask, as binary protobuf, states): {result['first_read_seconds'] * 1000:.0f} ms"
    )
    tasks = result["tasks"]
    ms = result["states_seconds"] * 1000
    return [Figure("7", f"a read of {tasks} tasks → job states", ms, "ms", 50, how)]


# Target 8: the launcher's own peak memory against the basic launcher's, for the same sweep.
PEAK_MEMORY = HERE / "_peak_memory.py"


def _memory(sizes: Sizes) -> List[Figure]:
    fewer, more = sizes.memory_jobs
    peaks = {
        (launcher, jobs): _peak_bytes(jobs, launcher)
        for jobs in (fewer, more)
        for launcher in (LOCAL, "hydra/launcher=basic")
    }
    ours = {jobs: peaks[(LOCAL, jobs)] for jobs in (fewer, more)}
    basic = {jobs: peaks[("hydra/launcher=basic", jobs)] for jobs in (fewer, more)}
    slope = {
        name: (p[more] - p[fewer]) / (more - fewer)
        for name, p in (("ours", ours), ("basic", basic))
    }
    at = sizes.memory_at
    ours_at = ours[more] + slope["ours"] * (at - more)
    basic_at = basic[more] + slope["basic"] * (at - more)
    mib = 2**20
    how = (
        f"peak RSS of the launching process alone (VmHWM, steps excluded), a trivial sweep "
        f"run to its end: `vertex_pipeline_local` {fewer} jobs {ours[fewer] / mib:.0f} MiB, "
        f"{more} jobs {ours[more] / mib:.0f} MiB; basic launcher {basic[fewer] / mib:.0f} MiB, "
        f"{basic[more] / mib:.0f} MiB; each additional job: ours "
        f"{slope['ours'] / 1024:.1f} KiB, basic {slope['basic'] / 1024:.1f} KiB"
    )
    how_at = (
        f"not run: {at} jobs take each launcher tens of minutes here; each launcher's peak at "
        f"{more} jobs plus its own per-job slope (figure 8) times {at - more} more jobs: ours "
        f"{ours_at / mib:.0f} MiB, basic {basic_at / mib:.0f} MiB"
    )
    what = "peak memory ÷ basic launcher's"
    return [
        Figure("8a", f"{what}, {more} jobs", ours[more] / basic[more], "", 0.5, how),
        Figure("8b", f"{what}, {at} jobs (extrapolated)", ours_at / basic_at, "", 0.5, how_at),
    ]


def _peak_bytes(jobs: int, launcher: str) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        record = Path(scratch) / "memory.json"
        sweep = f"hydra.sweep.dir={Path(scratch) / 'multirun'}"
        command = [sys.executable, str(PEAK_MEMORY), str(record), str(APP)]
        _run(command + ["-m", f"x=range(0,{jobs})", launcher, sweep], Path(scratch))
        return float(json.loads(record.read_text())["peak_bytes"])


# Target 9: SIGTERM to a launcher watching a run, until it has ended, every job marked.
def _cancel(sizes: Sizes) -> List[Figure]:
    cancel = importlib.import_module("cancel")
    fewer, *more = sizes.cancel_local_jobs
    # Lettered as before the larger local run was added: 9a-9c keep their meaning, 9d is new.
    runs = [("local", fewer, cancel.measure_local(fewer))]
    runs += [("vertex", jobs, cancel.measure_vertex(jobs)) for jobs in sizes.cancel_vertex_jobs]
    runs += [("local", jobs, cancel.measure_local(jobs)) for jobs in more]
    figures = []
    for index, (backend, jobs, result) in enumerate(runs):
        unmarked = jobs - result["ended"]
        how = (
            f"benchmarks/cancel.py, {backend} backend, one run: the run ended "
            f"{result.get('run', result['recorded'])}, recorded {result['recorded']}; "
            f"jobs whose status file does not say they ended: {unmarked}"
        )
        limit = 10.0 if jobs <= 2000 else 20.0
        seconds = result["seconds"] if unmarked == 0 else float("inf")
        what = f"SIGTERM until ended, {jobs} jobs, {backend} backend"
        figures.append(Figure(f"9{'abcd'[index]}", what, seconds, "s", limit, how))
    return figures


# Target 10: spec bytes a job adds, whatever its overrides.
def _spec_bytes(sizes: Sizes) -> List[Figure]:
    per_job = importlib.import_module("spec_bytes").measure(sizes.spec_jobs)
    how = f"benchmarks/spec_bytes.py, {sizes.spec_jobs} jobs, the largest of: " + ", ".join(
        f"{case} {size:.0f} B" for case, size in per_job.items()
    )
    return [Figure("10", "spec bytes per job, any overrides", max(per_job.values()), "B", 500, how)]


# Target 11: a status read of a run of many tasks.
def _big_status_read(sizes: Sizes) -> List[Figure]:
    result = importlib.import_module("status_read").measure(sizes.big_status_tasks, runs=3)
    tasks = result["tasks"]

    def ms(key: str) -> str:
        return f"{result[key] * 1000:.0f} ms"

    how = (
        f"benchmarks/status_read.py, median of {result['runs']}: a poll's read of a run of "
        f"{tasks} Vertex-like task details from a local server, cut to the status read's field "
        f"mask and answered as binary protobuf ({result['answer_bytes'] / 2**20:.1f} MiB), "
        f"then the job states: splitting the answer into task details "
        f"{result['parse_seconds'] * 1000:.1f} ms, the states {ms('states_again_seconds')} "
        f"(only details not seen at the last read are parsed and converted; here none); a "
        f"first read, every task parsed and converted: "
        f"{ms('first_read_seconds')}; the same read as JSON through aiplatform's REST client: "
        f"{ms('json_read_seconds')} (masked), {ms('unmasked_read_seconds')} (whole)"
    )
    ms_read = result["read_seconds"] * 1000
    return [Figure("11", f"a status read of {tasks} tasks (a poll)", ms_read, "ms", 50, how)]


T = TypeVar("T")


def _repeated(sizes: Sizes, once: Callable[[], T]) -> List[T]:
    """once's results: at least one, at most sizes.runs, none started after the budget."""
    started = time.perf_counter()
    results = [once()]
    while len(results) < sizes.runs and time.perf_counter() - started < sizes.budget:
        results.append(once())
    return results


def _timed_launch(jobs: int, launcher: str) -> Dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        record = Path(scratch) / "timing.json"
        sweep = f"hydra.sweep.dir={Path(scratch) / 'multirun'}"
        command = [sys.executable, str(TIMED_LAUNCH), str(record), str(APP)]
        _run(command + ["-m", f"x=range(0,{jobs})", launcher, sweep], Path(scratch))
        timing: Dict[str, float] = json.loads(record.read_text())
        return timing


def _sweep_seconds(jobs: int, *overrides: str) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        sweep = f"hydra.sweep.dir={Path(scratch) / 'multirun'}"
        started = time.perf_counter()
        _run_app(Path(scratch), f"x=range(0,{jobs})", *overrides, sweep)
        return time.perf_counter() - started


def _run_app(workdir: Path, *args: str) -> None:
    _run([sys.executable, str(APP), "-m", *args], workdir)


def _run(command: List[str], workdir: Path) -> None:
    proc = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stdout}\n{proc.stderr}")


def _sibling(name: str) -> Optional[Any]:
    """Another engineer's benchmark module in this folder, if it is there."""
    if not (HERE / f"{name}.py").exists():
        return None
    return importlib.import_module(name)


def _seconds(timings: Sequence[float]) -> str:
    return f"{statistics.median(timings):.2f} s (median of {len(timings)})"


def _report(figures: List[Figure], command: str, quick: bool, minutes: float) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, in "
        f"{minutes:.1f} min.",
    ]
    if quick:
        lines.append(
            "**A quick run**: fewer jobs than the targets name (limits scaled where they "
            "depend on the count), one run each. Run without --quick for the real figures."
        )
    lines += ["", "## Machine", "", *_machine(), "", "## Figures (issues #11, #20)", ""]
    lines += ["| # | what | measured | target | |", "|---|---|---|---|---|"]
    lines += [figure.row() for figure in figures]
    lines += ["", "## How each was measured", ""]
    lines += [f"- **{figure.number}**: {figure.how}." for figure in figures]
    return "\n".join(lines) + "\n"


def _machine() -> List[str]:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return [
        f"- CPUs: {os.cpu_count()} ({_cpu_model()}), load average at the end "
        f"{os.getloadavg()[0]:.1f}",
        f"- {platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"- {', '.join(versions)}",
    ]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown model"


if __name__ == "__main__":
    main()
