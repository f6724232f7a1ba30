"""`hydra-vertex-pipeline report DIR` and the page the launcher keeps current, seen as a person
sees them: rendered by headless Chromium, from real sweeps on the local backend."""

from __future__ import annotations

import csv
import shutil
import struct
import subprocess
import sys
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import yaml
from apputil import read_json, run_app, start_app, wait_until
from cliutil import run_cli
from fake_vertex import FakeVertex
from vertexutil import vertex_overrides

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._report_page import (
    STATE_COLOURS,
    WAIT_COLOUR,
)
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._value import as_shown

LOCAL = "hydra/launcher=vertex_pipeline_local"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# On CI (CI=true) a skipped test fails the run (conftest.py): there Chromium must be installed.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install chromium; .ci/run installs it in CI)",
)
EXAMPLE_APP = Path(__file__).parent.parent / "example_app" / "train.py"
LRS = (0.3, 0.1, 0.03)
FAIL_LR = 0.3


def _loss(lr: float, layers: int) -> float:
    """What apps/scored.py returns as loss."""
    return round((lr - 0.1) ** 2 + 0.01 * layers, 6)


def _scored_sweep(tmp_path: Path, *extra: str) -> Tuple[Path, subprocess.CompletedProcess[str]]:
    """Six jobs (lr x layers), two of which fail, at most two at once."""
    sweep = tmp_path / "multirun"
    args = [
        "-m",
        LOCAL,
        f"+lr={','.join(map(str, LRS))}",
        "+layers=1,2",
        f"+fail_lr={FAIL_LR}",
        "hydra.launcher.max_parallel=2",
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]
    return sweep, run_app("scored.py", args, tmp_path)


def _expected_jobs() -> List[Tuple[int, float, int]]:
    """(job number, lr, layers) in Hydra's order."""
    return [(2 * i + j, lr, layers) for i, lr in enumerate(LRS) for j, layers in enumerate((1, 2))]


def _csv_rows(sweep: Path) -> List[Dict[str, str]]:
    with open(sweep / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


class Dom(HTMLParser):
    """The elements of a page as Chromium left it: (tag, attributes) in document order."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: List[Tuple[str, Dict[str, Optional[str]]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def having(self, tag: str, **wanted: str) -> List[Dict[str, Optional[str]]]:
        """Elements of tag whose attributes hold each wanted word (class="a b" holds "b")."""
        return [
            attrs
            for name, attrs in self.elements
            if name == tag
            and all(
                word in (attrs.get(key.rstrip("_")) or "").split() for key, word in wanted.items()
            )
        ]

    def row_order(self) -> List[int]:
        return [int(str(attrs["data-num"])) for attrs in self.having("tr") if "data-num" in attrs]


def _browse(page: Path, tail: str = "") -> Dom:
    """The DOM after the page's script ran, as headless Chromium has it."""
    assert CHROMIUM is not None, "chromium is not on PATH"
    proc = subprocess.run(
        [str(CHROMIUM), *_CHROMIUM_FLAGS, "--dump-dom", page.as_uri() + tail],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return Dom(proc.stdout)


_CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars")


def _screenshot(page: Path, png: Path) -> Dict[Tuple[int, int, int], int]:
    """How many pixels of each colour the page shows in a 1200x1400 window."""
    proc = subprocess.run(
        [
            str(CHROMIUM),
            *_CHROMIUM_FLAGS,
            "--window-size=1200,1400",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return _colours(png.read_bytes())


def _colours(png: bytes) -> Dict[Tuple[int, int, int], int]:
    """Pixels by colour of an 8-bit RGB or RGBA PNG, as Chromium writes its screenshots."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = {}, 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind = png[at + 4 : at + 8]
        chunks[kind] = chunks.get(kind, b"") + png[at + 8 : at + 8 + length]
        at += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8 and colour_type in (2, 6)
    size = 3 if colour_type == 2 else 4
    data, stride = zlib.decompress(chunks[b"IDAT"]), width * size
    counts: Dict[Tuple[int, int, int], int] = {}
    previous = bytearray(stride)
    for y in range(height):
        line = data[y * (stride + 1) : (y + 1) * (stride + 1)]
        row = _unfilter(line[0], bytearray(line[1:]), previous, size)
        for x in range(0, stride, size):
            pixel = (row[x], row[x + 1], row[x + 2])
            counts[pixel] = counts.get(pixel, 0) + 1
        previous = row
    return counts


def _unfilter(kind: int, row: bytearray, above: bytearray, size: int) -> bytearray:
    for i in range(len(row)):
        left = row[i - size] if i >= size else 0
        up, corner = above[i], above[i - size] if i >= size else 0
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 2:
            row[i] = (row[i] + up) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            guess = left + up - corner
            near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up))
            near = min(near, (abs(guess - corner), 2, corner))
            row[i] = (row[i] + near[2]) & 0xFF
    return row


def _rgb(colour: str) -> Tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


@needs_chromium
def test_a_sweep_with_a_failure_as_chromium_shows_it(tmp_path: Path) -> None:
    sweep, proc = _scored_sweep(tmp_path)
    assert proc.returncode != 0  # a job failed: Hydra's basic sweeper raises
    written = run_cli("report", str(sweep))
    assert written.returncode == 0, written.stdout
    page = Path(written.stdout.strip())
    assert page == sweep / "report.html"
    assert "http://" not in page.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")

    dom = _browse(page)
    jobs = _expected_jobs()
    assert sorted(dom.row_order()) == [num for num, _, _ in jobs]
    failed = {num for num, lr, _ in jobs if lr == FAIL_LR}
    assert {
        int(str(r["data-num"])) for r in dom.having("tr") if r.get("data-state") == "FAILED"
    } == failed
    best = min((_loss(lr, layers), num) for num, lr, layers in jobs if num not in failed)[1]
    assert [int(str(r["data-num"])) for r in dom.having("tr", class_="best")] == [best]
    assert len(dom.having("td", class_="best")) == 1

    # The timeline: a bar per job, each job ran (a running part), and the cap drawn.
    bars = dom.having("g", class_="job")
    assert sorted(int(str(bar["data-num"])) for bar in bars) == sorted(num for num, _, _ in jobs)
    assert len(dom.having("rect", class_="run")) == len(jobs)
    assert len(dom.having("rect", class_="wait")) == len(jobs)
    assert len(dom.having("line", class_="cap")) == 1

    # One plot per swept key: a dot per job that succeeded, a cross per failed one.
    plots = [attrs["data-key"] for attrs in dom.having("svg", class_="plot")]
    assert plots == ["lr", "layers"]
    assert len(dom.having("circle", class_="pt")) == 2 * (len(jobs) - len(failed))
    assert len(dom.having("text", class_="fail")) == 2 * len(failed)

    # On screen: the bars of jobs that succeeded and failed, and the time spent waiting.
    shown = _screenshot(page, tmp_path / "report.png")
    for colour in (STATE_COLOURS["SUCCEEDED"], STATE_COLOURS["FAILED"], WAIT_COLOUR):
        assert shown.get(_rgb(colour), 0) > 1000, colour  # more than a legend glyph


@needs_chromium
def test_the_table_sorts_in_the_browser_on_a_click_and_from_the_address(tmp_path: Path) -> None:
    sweep, _ = _scored_sweep(tmp_path)
    page = Path(run_cli("report", str(sweep)).stdout.strip())
    jobs = _expected_jobs()
    succeeded = [(num, lr, layers) for num, lr, layers in jobs if lr != FAIL_LR]
    by_loss = [num for _, num in sorted((_loss(lr, ly), num) for num, lr, ly in succeeded)]
    failed_last = [num for num, lr, _ in jobs if lr == FAIL_LR]  # no value: after the others
    assert _browse(page, "?click=loss").row_order()[: len(by_loss)] == by_loss
    assert _browse(page, "?click=loss").row_order()[len(by_loss) :] == failed_last
    by_lr_descending = [num for _, num in sorted(((-lr, num) for num, lr, _ in jobs))]
    assert _browse(page, "#sort=-lr").row_order() == by_lr_descending
    states = _browse(page, "#sort=state")
    headers = states.having("th", **{"aria-sort": "ascending"})
    assert [h["data-name"] for h in headers] == ["state"]


def test_results_csv_has_a_row_per_job_with_numbers_as_numbers(tmp_path: Path) -> None:
    sweep, _ = _scored_sweep(tmp_path)
    rows = _csv_rows(sweep)
    jobs = _expected_jobs()
    assert [int(row["#"]) for row in rows] == [num for num, _, _ in jobs]
    for row, (_, lr, layers) in zip(rows, jobs):
        assert (float(row["lr"]), int(row["layers"])) == (lr, layers)
        if lr == FAIL_LR:
            assert row["state"] == "FAILED" and row["loss"] == ""
            assert row["error"] == f"ValueError: lr={lr} diverged"
        else:
            assert row["state"] == "SUCCEEDED"
            assert float(row["loss"]) == _loss(lr, layers)
            assert float(row["accuracy"]) == round(1 - _loss(lr, layers), 6)
        assert float(row["duration_s"]) >= 0 and int(row["attempts"]) == 1


def test_the_launcher_keeps_the_page_current_while_the_sweep_runs(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    go = tmp_path / "go"
    args = ["-m", LOCAL, "+lr=0.1,0.2", f"+go={go}", f"hydra.sweep.dir={sweep}"]
    app = start_app("scored.py", args, tmp_path)
    try:
        page = sweep / "report.html"
        wait_until(lambda: page.is_file() and 'data-state="RUNNING"' in page.read_text(), 60)
        assert "location.reload()" in page.read_text()  # the open page follows the run
    finally:
        go.touch()
        output, _ = app.communicate(timeout=120)
    assert app.returncode == 0, output
    text = page.read_text()
    assert text.count('<tr data-num="') == 2 and 'data-state="RUNNING"' not in text
    assert "location.reload()" not in text


def test_report_false_writes_no_page(tmp_path: Path) -> None:
    sweep, proc = _scored_sweep(tmp_path, "+lr_unused=1", "hydra.launcher.report=false")
    assert (sweep / "multirun.yaml").is_file()
    assert not (sweep / "report.html").exists() and not (sweep / "results.csv").exists()


def test_the_report_reads_no_pickle_and_imports_neither_kfp_nor_aiplatform(tmp_path: Path) -> None:
    sweep, _ = _scored_sweep(tmp_path)
    for job_dir in sweep.glob("[0-9]*"):
        (job_dir / "vertex_result.pkl").write_bytes(b"not a pickle")
    check = (
        "import sys\n"
        "from pathlib import Path\n"
        "from hydra_plugins.hydra_vertex_pipeline_launcher._cli._main import main\n"
        f"assert main(['report', {str(sweep)!r}]) == 0\n"
        "loaded = [m for m in sys.modules if m.startswith(('kfp', 'google.cloud.aiplatform'))]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    value = read_json(sweep / "2" / "vertex_value.json")
    assert value == {"value": {"loss": 0.01, "accuracy": 0.99, "layers": 1}, "attempts": 1}
    assert "0.99" in (sweep / "report.html").read_text()


@needs_chromium
def test_a_sweep_of_500_jobs_gives_a_page_under_2_mb_that_renders_in_under_2_s(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "multirun"
    args = ["-m", LOCAL, "+lr=range(1,501)", f"hydra.sweep.dir={sweep}"]
    proc = run_app("scored.py", args, tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr
    started = time.monotonic()
    page = Path(run_cli("report", str(sweep)).stdout.strip())
    written_in = time.monotonic() - started
    assert page.stat().st_size < 2_000_000
    dom = _browse(page, "?click=loss")
    assert len(dom.row_order()) == 500 and len(dom.having("g", class_="job")) == 500
    [html] = [attrs for tag, attrs in dom.elements if tag == "html"]
    rendered_ms = float(str(html["data-rendered-ms"]))
    assert rendered_ms < 2000, rendered_ms
    print(
        f"500 jobs: {page.stat().st_size} bytes, written in {written_in:.2f} s, "
        f"rendered (sorted once) in {rendered_ms:.0f} ms"
    )


def test_the_best_follows_optunas_direction_across_its_batches(tmp_path: Path) -> None:
    """Optuna records a pipeline run per batch; the best marked is the one Optuna found."""
    sweep = tmp_path / "multirun"
    args = [
        "--config-name",
        "optuna",
        "-m",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.direction=maximize",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE_APP), *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    optuna_best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())["best_value"]
    rows = _csv_rows(sweep)
    assert len(rows) == 4 and len({row["run"] for row in rows}) == 2
    dom = Dom((sweep / "report.html").read_text())
    [best] = [int(str(attrs["data-num"])) for attrs in dom.having("tr", class_="best")]
    assert float(rows[best]["value"]) == pytest.approx(optuna_best)
    assert "the highest" in (sweep / "report.html").read_text()


def test_attach_writes_the_report_with_the_values_it_collected(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "multirun"
    args = ["-m", "hydra/launcher=vertex_pipeline", "+lr=0.1,0.2", f"hydra.sweep.dir={sweep}"]
    args += [*vertex_overrides(fake_vertex, gcs_bucket), "hydra.launcher.wait=false"]
    proc = run_app("scored.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    # The launcher did not wait: its report says what it knew, jobs not collected yet.
    assert [row["state"] for row in _csv_rows(sweep)] == ["PENDING", "PENDING"]
    assert run_cli("attach", str(sweep)).returncode == 0  # and attach rewrites it
    rows = _csv_rows(sweep)
    assert [float(row["loss"]) for row in rows] == [_loss(0.1, 1), _loss(0.2, 1)]
    assert [row["attempts"] for row in rows] == ["1", "1"]


@needs_chromium
def test_the_example_apps_sweep_as_the_issue_runs_it(tmp_path: Path) -> None:
    """`python example_app/train.py -m lr=0.3,0.1,0.03,0.01`, then `report multirun/<d>/<t>`."""
    args = [str(EXAMPLE_APP), "-m", "lr=0.3,0.1,0.03,0.01"]
    proc = subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    [sweep] = tmp_path.glob("multirun/*/*")
    page = Path(run_cli("report", str(sweep)).stdout.strip())
    dom = _browse(page)
    assert dom.row_order() == [0, 1, 2, 3] and len(dom.having("g", class_="job")) == 4
    values = [float(row["value"]) for row in _csv_rows(sweep)]
    assert len(set(values)) == 4
    [best] = [int(str(r["data-num"])) for r in dom.having("tr", class_="best")]
    assert values[best] == min(values)


def test_a_kept_value_holds_what_a_table_can_show() -> None:
    kept = as_shown({"loss": 0.5, "nan": float("nan"), "deep": {"a": {"b": 1}}, "obj": object()})
    assert kept == {"loss": 0.5, "nan": None, "deep": {"a": None}, "obj": None}
    assert as_shown(list(range(1000))) is None and as_shown((1, 2.5)) == [1, 2.5]
