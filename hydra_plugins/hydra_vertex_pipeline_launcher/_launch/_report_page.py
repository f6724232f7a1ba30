"""The report as one self-contained HTML page: inline CSS, SVG and a little JavaScript; nothing
fetched, no server. It opens from the file system and, while a run goes, reloads itself.

The table sorts on a click on any column header; `#sort=NAME` (or `#sort=-NAME`, descending)
in the page's address sorts on load, and `?click=NAME` clicks that header on load (so a
headless browser can exercise the click).
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime, timedelta
from typing import Any, Callable, List, Optional, Tuple

from ._report import LIVE_INTERVAL, JobRow, Sweep, is_number, parse_time

STATE_COLOURS = {
    "SUCCEEDED": "#2e8b57",
    "FAILED": "#d0342c",
    "CANCELLED": "#8c8c8c",
    "RUNNING": "#2f6fdb",
    "PENDING": "#c9c9c9",
}
WAIT_COLOUR = "#e8c66a"
POINT, BEST = "#2f6fdb", "#e0a800"
# Where a moment sits along the timeline, in pixels.
Placement = Callable[[Optional[datetime]], float]
NUMERIC_COLUMNS = ("#", "waiting_s", "duration_s", "attempts")
TIMELINE_WIDTH = 960
LABEL_WIDTH = 48
PLOT_WIDTH, PLOT_HEIGHT, PLOT_MARGIN = 340, 230, 56
# Room at either end of a plot's x axis, as a share of its width.
PLOT_PAD = 0.08
# Log-scale a swept key whose positive values span this factor or more (learning rates).
LOG_SPAN = 20

CSS = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;
text-align:left;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}
.scroll{max-height:36em;overflow:auto;display:inline-block}
#jobs th{cursor:pointer;background:#f3f3f3;position:sticky;top:0}
#jobs th[aria-sort=ascending]::after{content:" \\25B2"}
#jobs th[aria-sort=descending]::after{content:" \\25BC"}
tr.best td{background:#fff4c2}td.best{font-weight:bold}
td.err{white-space:normal;max-width:32em;color:#a00}
.state{font-weight:600}.plots{display:flex;flex-wrap:wrap;gap:1em}
svg text{font:11px system-ui,sans-serif}.muted{color:#777}
"""

SCRIPT = """
(function () {
  var table = document.getElementById("jobs");
  if (!table) return;
  var body = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  function key(cell, numeric) {
    var v = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
    if (!numeric) return v === "" ? null : v;
    var n = parseFloat(v);
    return isNaN(n) ? null : n;
  }
  function sort(name, descending) {
    var i = heads.findIndex(function (h) { return h.dataset.name === name; });
    if (i < 0) return;
    var numeric = heads[i].dataset.type === "n";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[i], numeric), y = key(b.cells[i], numeric);
      if (x === null || y === null) return (x === null) - (y === null);  // unknown last
      var c = numeric ? x - y : x.localeCompare(y);
      return descending ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
    heads[i].setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  heads.forEach(function (h) {
    h.addEventListener("click", function () {
      var descending = h.getAttribute("aria-sort") === "ascending";
      sort(h.dataset.name, descending);
      // Kept in the address: the live page's reload sorts the same way.
      history.replaceState(null, "", "#sort=" + (descending ? "-" : "") +
        encodeURIComponent(h.dataset.name));
    });
  });
  var wanted = /sort=(-?)([^&]*)/.exec(location.hash);
  if (wanted) sort(decodeURIComponent(wanted[2]), wanted[1] === "-");
  var click = /[?&]click=([^&]*)/.exec(location.search);
  if (click) {
    var h = heads.find(function (h) { return h.dataset.name === decodeURIComponent(click[1]); });
    if (h) h.click();
  }
  // Laid out and sorted: how long the page took to show, for a test to read.
  void document.body.offsetHeight;
  document.documentElement.setAttribute("data-rendered-ms", performance.now().toFixed(0));
})();
"""


def render(sweep: Sweep) -> str:
    title = f"Sweep report: {sweep.directory.name or sweep.directory}"
    reload = ""
    if sweep.live:
        reload = f"setTimeout(function () {{ location.reload(); }}, {LIVE_INTERVAL * 1000:.0f});"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _summary(sweep),
        "<h2>Jobs</h2>",
        _table(sweep),
        "<h2>Timeline</h2>",
        _timeline(sweep),
        "<h2>Return value by swept key</h2>",
        _plots(sweep),
        f"<script>{SCRIPT}{reload}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _summary(sweep: Sweep) -> str:
    from ._watch import progress

    lines = [f"<p>{_e(str(sweep.directory))}<br>"]
    lines.append(f"{len(sweep.jobs)} jobs: {_e(progress([job.state for job in sweep.jobs]))}")
    start, end = _span(sweep)
    busy = sum(_length(job.started, job.ended or sweep.now) for job in sweep.jobs)
    lines.append(f"; wall time {_clock(_length(start, end))}, running time {_clock(busy)}")
    if sweep.common:
        lines.append(f"<br>every job: <code>{_e(' '.join(sweep.common))}</code>")
    when = sweep.now.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    live = f" (reloads every {LIVE_INTERVAL:.0f} s while a run goes)" if sweep.live else ""
    lines.append(f'<br><span class="muted">written {when}{live}</span></p>')
    rows = ["<table><tr><th>run</th><th>backend</th><th>state</th><th>created</th>"]
    rows.append("<th>cap on parallel steps</th><th>console</th></tr>")
    for record in sweep.records:
        console = record.console_url
        link = _e(console or record.path.parent)
        if console and console.startswith("https://"):  # a link, never a script
            link = f'<a href="{_e(console)}">{link}</a>'
        rows.append(
            f"<tr class='run'><td>{_e(record.run_id)}</td><td>{_e(record.backend)}</td>"
            f"<td>{_e(record.state)}</td><td>{_e(_local(parse_time(record.created)))}</td>"
            f"<td>{_e(record.max_parallel or 'none')}</td><td>{link}</td></tr>"
        )
    rows.append("</table>")
    return "".join(lines) + "".join(rows)


def _table(sweep: Sweep) -> str:
    objective = sweep.objective_column
    rows_cells = [sweep.cells(job) for job in sweep.jobs]
    numeric = set(NUMERIC_COLUMNS) | {
        name for name in sweep.columns if any(is_number(cells[name]) for cells in rows_cells)
    }
    head = "".join(
        f'<th data-name="{_e(name)}" data-type="{"n" if name in numeric else "s"}">{_e(name)}</th>'
        for name in sweep.columns
    )
    rows = []
    for job, row_cells in zip(sweep.jobs, rows_cells):
        best = job.num == sweep.best
        cells = [_td(name, value, best and name == objective) for name, value in row_cells.items()]
        rows.append(
            f'<tr data-num="{job.num}" data-state="{_e(job.state)}"'
            f"{' class=best' if best else ''}>{''.join(cells)}</tr>"
        )
    note = ""
    if objective is not None:
        direction = "highest" if sweep.maximize else "lowest"
        note = f'<p class="muted">&#9733; best: the {direction} <code>{_e(objective)}</code>'
        note += " of the jobs that succeeded.</p>"
    body = "".join(rows)
    table = f'<table id="jobs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="scroll">{table}</div>{note}'


def _td(name: str, value: Any, best: bool) -> str:
    if value is None:
        return "<td></td>"
    if name == "state":
        colour = STATE_COLOURS.get(str(value), "#222")
        return f'<td class="state" style="color:{colour}">{_e(value)}</td>'
    if name == "error":
        return f'<td class="err">{_e(value)}</td>'
    if name == "start":
        return f'<td data-v="{_e(value)}">{_e(_local(parse_time(value)))}</td>'
    if name in ("waiting_s", "duration_s"):
        return f'<td class="n" data-v="{value}">{_clock(value)}</td>'
    if is_number(value):
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        if best:
            return f'<td class="n best" data-v="{value}" title="best">&#9733; {shown}</td>'
        return f'<td class="n" data-v="{value}">{shown}</td>'
    return f"<td>{_e(value)}</td>"


def _timeline(sweep: Sweep) -> str:
    """A bar per job, waiting then running, over the sweep's span; above it, the steps running
    at each moment against the run's cap."""
    jobs = sweep.jobs
    if not jobs:
        return "<p>No jobs.</p>"
    start, end = _span(sweep)
    span = max(_length(start, end), 1.0)
    width = TIMELINE_WIDTH - LABEL_WIDTH
    bar = max(1.5, min(14.0, 700.0 / len(jobs)))
    lanes_top, lanes_height = 20.0, 70.0
    top = lanes_top + lanes_height + 24

    def x(moment: Optional[datetime]) -> float:
        return LABEL_WIDTH + width * _length(start, moment or sweep.now) / span

    shapes: List[str] = []
    shapes += _lanes(sweep, x, lanes_top, lanes_height)
    for row, job in enumerate(jobs):
        y = top + row * bar
        shapes.append(_job_bar(sweep, job, x, y, bar))
        if bar >= 10:
            shapes.append(
                f'<text x="{LABEL_WIDTH - 4}" y="{y + bar - 3:.1f}" text-anchor="end">'
                f"#{job.num}</text>"
            )
    height = top + len(jobs) * bar + 22
    shapes += _time_axis(span, x(start), width, height - 16, start)
    legend = " ".join(
        f'<span style="color:{colour}">&#9632;</span> {name.lower()}'
        for name, colour in [("waiting", WAIT_COLOUR), *STATE_COLOURS.items()]
    )
    svg = (
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{TIMELINE_WIDTH}" '
        f'height="{height:.0f}">{"".join(shapes)}</svg>'
    )
    return f"<p>{legend}</p>{svg}"


def _job_bar(sweep: Sweep, job: JobRow, x: Placement, y: float, bar: float) -> str:
    colour = STATE_COLOURS.get(job.state, "#222")
    waited_until = job.started or job.ended
    title = (
        f"#{job.num} {job.state}: waited {_clock(_length(job.created, waited_until or sweep.now))}"
    )
    parts = [f'<g class="job" data-num="{job.num}" data-state="{_e(job.state)}"><title>']
    if job.started:
        title += f", ran {_clock(_length(job.started, job.ended or sweep.now))}"
    parts.append(_e(title) + "</title>")
    height = max(1.0, bar - 1)
    wait_start, wait_end = x(job.created), x(waited_until)
    if job.started is None and job.ended is not None:  # ended before it ran: its state's colour
        fill = colour
    else:
        fill = WAIT_COLOUR
    parts.append(_rect("wait", wait_start, y, wait_end - wait_start, height, fill))
    if job.started is not None:
        run_start, run_end = x(job.started), x(job.ended)
        parts.append(_rect("run", run_start, y, max(1.0, run_end - run_start), height, colour))
    parts.append("</g>")
    return "".join(parts)


def _rect(kind: str, x: float, y: float, width: float, height: float, fill: str) -> str:
    return (
        f'<rect class="{kind}" x="{x:.1f}" y="{y:.1f}" width="{max(0.0, width):.1f}" '
        f'height="{height:.1f}" fill="{fill}"/>'
    )


def _lanes(sweep: Sweep, x: Placement, top: float, height: float) -> List[str]:
    """Steps running at once over time, a step line, and the cap as a dashed line."""
    changes: List[Tuple[datetime, int]] = []
    for job in sweep.jobs:
        if job.started is not None:
            changes += [(job.started, 1), (job.ended or sweep.now, -1)]
    changes.sort(key=lambda change: (change[0], change[1]))
    caps = [record.max_parallel for record in sweep.records if record.max_parallel]
    peak = max([*caps, 1, *_running_counts(changes)])
    scale = height / (peak * 1.1)  # headroom: the cap's line sits above a full house
    base = top + height
    points = [f"{LABEL_WIDTH},{base}"]
    running = 0
    for moment, step in changes:
        points.append(f"{x(moment):.1f},{base - running * scale:.1f}")
        running += step
        points.append(f"{x(moment):.1f},{base - running * scale:.1f}")
    shapes = [
        f'<text x="{LABEL_WIDTH - 4}" y="{base - peak * scale + 4:.1f}" text-anchor="end">'
        f"{peak}</text>",
        f'<text x="{LABEL_WIDTH - 4}" y="{base}" text-anchor="end">0</text>',
        f'<line x1="{LABEL_WIDTH}" y1="{base}" x2="{TIMELINE_WIDTH}" y2="{base}" stroke="#999"/>',
        f'<polyline class="running" fill="none" stroke="{STATE_COLOURS["RUNNING"]}" '
        f'stroke-width="1.5" points="{" ".join(points)}"/>',
    ]
    if caps:
        cap = max(caps)
        y = base - cap * scale
        shapes.append(
            f'<line class="cap" x1="{LABEL_WIDTH}" y1="{y:.1f}" x2="{TIMELINE_WIDTH}" '
            f'y2="{y:.1f}" stroke="#d0342c" stroke-dasharray="5,4"/>'
            f'<text x="{TIMELINE_WIDTH - 4}" y="{y - 3:.1f}" text-anchor="end">'
            f"cap: {cap} steps at once</text>"
        )
    label = "steps running" + ("" if caps else " (no cap on parallel steps)")
    shapes.append(f'<text x="{LABEL_WIDTH + 4}" y="{top - 6}">{label}</text>')
    return shapes


def _running_counts(changes: List[Tuple[datetime, int]]) -> List[int]:
    counts, running = [], 0
    for _, step in changes:
        running += step
        counts.append(running)
    return counts


def _time_axis(span: float, left: float, width: float, y: float, start: datetime) -> List[str]:
    ticks = []
    for i in range(6):
        seconds = span * i / 5
        tick_x = left + width * i / 5
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        moment = (start + timedelta(seconds=seconds)).astimezone().strftime("%H:%M:%S")
        ticks.append(
            f'<text x="{tick_x:.1f}" y="{y + 12:.1f}" text-anchor="{anchor}">'
            f"{moment} (+{_clock(seconds)})</text>"
        )
    return ticks


def _plots(sweep: Sweep) -> str:
    objective = sweep.objective
    if objective is None:
        return "<p>No job returned a number to plot.</p>"
    plots = [_plot(sweep, key, objective) for key in sweep.swept]
    return f'<div class="plots">{"".join(plots)}</div>' if plots else "<p>Nothing was swept.</p>"


def _plot(sweep: Sweep, key: str, objective: str) -> str:
    """objective against key's values: a dot per job with a value; a cross per failed job,
    in a band of its own under the axis."""
    values = [job.overrides.get(key) for job in sweep.jobs if key in job.overrides]
    position = _axis(values)
    left, right = PLOT_MARGIN, PLOT_WIDTH - 12
    scored = [
        (job, job.values[objective])
        for job in sweep.jobs
        if key in job.overrides
        and job.state == "SUCCEEDED"
        and is_number(job.values.get(objective))
    ]
    numbers = [value for _, value in scored] or [0.0]
    low, high = min(numbers), max(numbers)
    high = high if high > low else low + 1
    top, bottom, band = 18.0, PLOT_HEIGHT - 58.0, PLOT_HEIGHT - 30.0

    def px(value: Any) -> float:
        return left + (right - left) * (PLOT_PAD + (1 - 2 * PLOT_PAD) * position(value))

    def py(value: float) -> float:
        return bottom - (bottom - top) * (value - low) / (high - low)

    shapes = [
        f'<text x="{left}" y="12">{_e(objective)} by {_e(key)}</text>',
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#999"/>',
        f'<text x="{left - 3}" y="{top + 4}" text-anchor="end">{high:.3g}</text>',
        f'<text x="{left - 3}" y="{bottom}" text-anchor="end">{low:.3g}</text>',
        f'<text x="{left - 3}" y="{band + 4}" text-anchor="end" fill="#d0342c">failed</text>',
    ]
    for value in sorted(set(map(json.dumps, values))):
        shown = json.loads(value)
        shapes.append(
            f'<text x="{px(shown):.1f}" y="{PLOT_HEIGHT - 6}" text-anchor="middle">'
            f"{_e(shown)}</text>"
        )
    for job, value in scored:
        best = " best" if job.num == sweep.best else ""
        setting = job.overrides[key]
        shapes.append(
            f'<circle class="pt{best}" data-num="{job.num}" cx="{px(setting):.1f}" '
            f'cy="{py(value):.1f}" r="{6 if best else 4}" fill="{BEST if best else POINT}">'
            f"<title>#{job.num}: {_e(key)}={_e(setting)}, {_e(objective)}={value:.6g}</title>"
            "</circle>"
        )
    for job in sweep.jobs:
        if job.failed and key in job.overrides:
            cx = px(job.overrides[key])
            shapes.append(
                f'<text class="fail" data-num="{job.num}" x="{cx:.1f}" y="{band + 4}" '
                f'text-anchor="middle" fill="#d0342c">&#10005;<title>#{job.num} {_e(job.state)}: '
                f"{_e(job.error)}</title></text>"
            )
    return (
        f'<svg class="plot" data-key="{_e(key)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}">{"".join(shapes)}</svg>'
    )


def _axis(values: List[Any]) -> Any:
    """Where a swept value sits along its axis, 0 to 1: numbers by value (log-scaled when they
    span orders of magnitude), anything else evenly in sorted order."""
    distinct = sorted(set(map(json.dumps, values)))
    if values and all(is_number(value) for value in values):
        low, high = min(values), max(values)
        if low > 0 and high / low >= LOG_SPAN:
            return lambda v: (math.log(v) - math.log(low)) / (math.log(high) - math.log(low))
        if high > low:
            return lambda v: (v - low) / (high - low)
    slots = {value: i for i, value in enumerate(distinct)}
    gaps = max(1, len(distinct) - 1)
    return lambda v: 0.5 if len(distinct) == 1 else slots[json.dumps(v)] / gaps


def _span(sweep: Sweep) -> Tuple[datetime, datetime]:
    moments = [m for job in sweep.jobs for m in (job.created, job.started, job.ended) if m]
    if not moments:
        return sweep.now, sweep.now
    unended = any(job.state not in ("SUCCEEDED", "FAILED", "CANCELLED") for job in sweep.jobs)
    return min(moments), max([*moments, *([sweep.now] if unended else [])])


def _length(start: Optional[datetime], end: Optional[datetime]) -> float:
    if start is None or end is None:
        return 0.0
    return max(0.0, (end - start).total_seconds())


def _clock(seconds: Optional[float]) -> str:
    """h:mm:ss, seconds as whole seconds but under a minute."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return str(timedelta(seconds=round(seconds)))


def _local(moment: Optional[datetime]) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _e(value: Any) -> str:
    return html.escape(str(value))
