"""The crash replay's report: one self-contained HTML file rendered from the result JSON.

Inline CSS, every plot an SVG made by ``svgplot`` and embedded as a ``data:`` image: the file opens
offline, from mail or an artefact store, with no script and nothing fetched from anywhere.
``python -m loadtests.crash.report RESULT.json OUT.html`` renders a saved result.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import orjson

from loadtests.crash import svgplot
from loadtests.crash.target import ACTIONS, PHASES

LIMIT_MS = 100.0            # the ceiling for a light action's p99 during uploads
GOOD_ENOUGH_LIMIT_S = 3.0   # from an upload's last byte to a playable video
OVER = '<span class="sr-only"> (over the limit)</span>'
MAX_POINTS = 3000           # samples drawn per plot; the tail and every error are always kept

ACTION_NAMES = {"log_in": "Log-in", "timeline_page": "Timeline page", "profile": "Profile", "post": "Post",
                "react": "React", "chat_delivery": "Chat delivery", "presence_seen": "Presence seen"}
PHASE_WORDS = {"before": "before uploads", "during": "during uploads", "after": "after uploads"}
TARGET_NAMES = {"platform": "Platform", "naive": "Naive baseline"}

CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, "DejaVu Sans", Helvetica, Arial, sans-serif; color: #111; background: #fff;
       margin: 0 auto; padding: 1.5rem 2rem 3rem; max-width: 1500px; line-height: 1.45; }
h1 { font-size: 1.8rem; margin: 0 0 .4rem; }
h2 { font-size: 1.35rem; border-bottom: 2px solid #333; padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { font-size: 1.1rem; margin: 1.4rem 0 .5rem; }
.meta { display: flex; flex-wrap: wrap; gap: .3rem 1.6rem; margin: 0; padding: 0; list-style: none; color: #333; }
.meta b { color: #111; }
.runs { display: grid; grid-template-columns: minmax(0, 1fr); gap: 1rem 2rem; align-items: start; }
@media (min-width: 1200px) { .runs.two { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); } }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid #ccc; }
figcaption { font-size: .9rem; color: #333; margin-top: .3rem; }
.verdict { border-radius: 8px; padding: 1rem 1.3rem; color: #fff; }
.verdict.pass { background: #0B6B2E; }
.verdict.fail { background: #A4001D; }
.verdict .word { font-size: 2.6rem; font-weight: 800; letter-spacing: .05em; line-height: 1.1; display: block; }
.verdict .who { font-size: 1.05rem; font-weight: 600; }
.verdict ul, .verdict p { margin: .6rem 0 0; padding-left: 1.2rem; }
.verdict p { padding-left: 0; }
.verdict li { margin: .2rem 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; width: 100%; font-size: .92rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid #bbb; padding: .25rem .5rem; text-align: right; }
th { background: #EEF1F5; }
th[scope=row], th[scope=rowgroup], td.text { text-align: left; }
td.text { overflow-wrap: anywhere; }
th[scope=row] { white-space: nowrap; }
th[scope=col]:first-child { text-align: left; }
.scroll { overflow-x: auto; }
table.compact { width: auto; min-width: min(100%, 44rem); }
td.over { background: #FFE0E0; color: #7A0014; font-weight: 700; }
td.over::after { content: " \\25B2"; }
.note { font-size: .9rem; color: #333; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
details { margin-top: .8rem; }
dl.config { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; font-size: .9rem; }
dl.config dt { font-weight: 600; } dl.config dd { margin: 0; font-family: "DejaVu Sans Mono", monospace; }
"""


def render_html(result: dict[str, Any]) -> str:
    runs: list[dict[str, Any]] = list(result.get("runs") or [])
    grid = "runs two" if len(runs) > 1 else "runs"
    preset = str(result.get("preset", "?"))
    parts = [
        "<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Crash replay {escape(preset)}, seed {escape(str(result.get('seed', '?')))}, "
        f"{escape(str(result.get('started_at', '?'))[:10])}: {escape(headline(runs))}</title>",
        f"<style>{CSS}</style>", "</head>", "<body>", "<header>",
        f"<h1>Crash replay: preset <code>{escape(preset)}</code></h1>",
        '<ul class="meta">',
        f"<li><b>Seed</b> {escape(str(result.get('seed', '?')))}</li>",
        f"<li><b>Commit</b> <code>{escape(str(result.get('commit', '?')))}</code></li>",
        f"<li><b>Started</b> <time>{escape(str(result.get('started_at', '?')))}</time></li>",
        f"<li><b>Targets</b> {escape(', '.join(target_name(r) for r in runs) or 'none')}</li>",
        machine_item(result.get("machine") or {}), "</ul>", config_block(result.get("config") or {}),
        "</header>", "<main>",
        '<section aria-labelledby="verdict"><h2 id="verdict">Verdict</h2>',
        f'<div class="{grid}">', *(verdict_block(run) for run in runs), "</div></section>",
    ]
    if result.get("comparison"):
        parts.append(comparison_block(result["comparison"]))
    parts += latency_section(runs, grid)
    parts += box_section(runs, grid)
    parts += ['<section aria-labelledby="phases"><h2 id="phases">Light actions per phase</h2>',
              '<p class="note">Latencies in ms. A highlighted cell (&#9650;) is one the verdict names as failing '
              f"(a p99 during uploads at or over {LIMIT_MS:g} ms, or over the larger of 1.5&times; and +10 ms of the "
              "same action's p99 before uploads; no sample to judge) or counts errors.</p>",
              f'<div class="{grid}">', *(phase_table(run) for run in runs), "</div></section>",
              '<section aria-labelledby="uploads"><h2 id="uploads">Uploads</h2>',
              '<p class="note">Sending: from the first to the last byte, in seconds since the start. Good enough '
              "and upgraded: seconds after the last byte until the video plays, and until its full quality. "
              "A highlighted cell is a failed upload, or a video not good enough within "
              f"{GOOD_ENOUGH_LIMIT_S:g} s of its last byte.</p>",
              f'<div class="{grid}">', *(uploads_table(run) for run in runs), "</div></section>",
              "</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


# --- header and verdict -------------------------------------------------------------------------


def target_name(run: dict[str, Any]) -> str:
    target = str(run.get("target", "?"))
    return TARGET_NAMES.get(target, target)


def headline(runs: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{target_name(r)} {'PASS' if r.get('verdict', {}).get('pass') else 'FAIL'}" for r in runs)


def machine_item(machine: dict[str, Any]) -> str:
    if not machine:
        return ""
    words = f"{machine.get('cpus', '?')} CPUs, {machine.get('memory_gb', '?')} GB, Python {machine.get('python', '?')}"
    return f"<li><b>Machine</b> {escape(words)}</li>"


def config_block(config: dict[str, Any]) -> str:
    if not config:
        return ""
    rows = "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(orjson.dumps(v).decode())}</dd>"
                   for k, v in sorted(config.items()))
    return f'<details><summary>Every knob of this run</summary><dl class="config">{rows}</dl></details>'


def verdict_block(run: dict[str, Any]) -> str:
    verdict = run.get("verdict") or {}
    passed = bool(verdict.get("pass"))
    failures = verdict.get("failures") or []
    items = "".join(f"<li>{escape(failure_words(f))}</li>" for f in failures)
    listing = f"<ul>{items}</ul>" if items else ("<p>Every rule held.</p>" if passed else "<p>No rule named.</p>")
    word = "PASS" if passed else "FAIL"
    return (f'<div class="verdict {word.lower()}"><span class="who">{escape(target_name(run))}</span>'
            f'<span class="word">{word}</span>{listing}</div>')


def failure_words(failure: dict[str, Any]) -> str:
    """One failed rule in words: "Chat delivery p99 during uploads 412 ms > 100 ms"."""
    rule = str(failure.get("rule") or "")
    action, phase = failure.get("action"), failure.get("phase")
    value, limit = failure.get("value"), failure.get("limit")
    detail = str(failure.get("detail") or rule)
    if action and detail.startswith(str(action)):
        detail = ACTION_NAMES.get(str(action), str(action)) + detail[len(str(action)):]
    detail = detail[:1].upper() + detail[1:]
    if not action or value is None or limit is None or not isinstance(value, int | float):
        return detail
    if rule.startswith("p99"):
        metric, unit = "p99", " ms"
    elif "error" in rule:
        metric, unit = "errors", ""
    else:
        return detail
    subject = f"{ACTION_NAMES.get(str(action), str(action))} {metric} {PHASE_WORDS.get(str(phase), str(phase))}"
    text = f"{subject} {number(value)}{unit} {'>' if value > limit else '≥'} {number(limit)}{unit}"
    if rule == "p99_regression":
        text += " (the larger of 1.5 times and +10 ms of its p99 before uploads)"
    return text


def number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def comparison_block(comparison: dict[str, Any]) -> str:
    rows = []
    for action in ordered(comparison):
        c = comparison[action]
        rows.append(f'<tr><th scope="row">{escape(ACTION_NAMES.get(action, action))}</th>'
                    f"<td>{number(c.get('platform_p99'))}</td><td>{number(c.get('naive_p99'))}</td>"
                    f"<td>{number(c.get('ratio'))}{'&times;' if c.get('ratio') is not None else ''}</td></tr>")
    return ('<section aria-labelledby="comparison"><h2 id="comparison">Platform against the naive baseline</h2>'
            '<table class="compact"><caption>p99 of each light action during uploads (ms); '
            "ratio = naive / platform</caption>"
            '<thead><tr><th scope="col">Action</th><th scope="col">Platform p99</th>'
            '<th scope="col">Naive p99</th><th scope="col">Ratio</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></section>")


def ordered(keys: Iterable[str]) -> list[str]:
    known = set(keys)
    return [a for a in ACTIONS if a in known] + sorted(known - set(ACTIONS))


# --- plots --------------------------------------------------------------------------------------


def figure(plot: svgplot.Plot, alt: str, caption: str) -> str:
    uri = svgplot.data_uri(svgplot.render_svg(plot))
    return (f'<figure><img src="{uri}" alt="{escape(alt)}" width="{plot.width}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def upload_spans(run: dict[str, Any]) -> list[svgplot.Span]:
    spans = []
    during = (run.get("phases") or {}).get("during")
    if during:
        spans.append(svgplot.Span(float(during[0]), float(during[1]), "uploads phase", "#9AA5B1", 0.22))
    for upload in run.get("uploads") or []:
        if upload.get("started") is not None and upload.get("last_byte") is not None:
            spans.append(svgplot.Span(float(upload["started"]), float(upload["last_byte"]), "upload sending",
                                      "#E69F00", 0.22))
    return spans


def spans_words(run: dict[str, Any]) -> str:
    during = (run.get("phases") or {}).get("during")
    uploads = [u for u in run.get("uploads") or [] if u.get("started") is not None and u.get("last_byte") is not None]
    words = f"uploads phase shaded from {during[0]:.0f} s to {during[1]:.0f} s" if during else "no uploads phase"
    if uploads:
        windows = ", ".join(f"{seconds(u.get('started'))} to {seconds(u['last_byte'])} s" for u in uploads)
        words += f"; {len(uploads)} upload windows shaded ({windows})"
    return words


def latency_section(runs: Sequence[dict[str, Any]], grid: str) -> list[str]:
    actions = ordered({a for run in runs for a in (run.get("samples") or {})})
    out = ['<section aria-labelledby="latency"><h2 id="latency">Light actions: latency over time</h2>',
           '<p class="note">Every sample as a point (failed ones as crosses), the rolling p99 as a line, '
           f"the {LIMIT_MS:g} ms limit dashed, on a log scale shared by the runs side by side.</p>"]
    for action in actions:
        name = ACTION_NAMES.get(action, action)
        latencies = [float(s[1]) for run in runs for s in (run.get("samples") or {}).get(action, [])]
        positive = [v for v in latencies if v > 0] + [LIMIT_MS]
        y_range = (max(min(positive) / 1.5, 0.01), max(positive) * 1.5)
        out.append(f"<h3>{escape(name)}</h3><div class=\"{grid}\">")
        for run in runs:
            out.append(latency_figure(run, action, name, y_range))
        out.append("</div>")
    out.append("</section>")
    return out


def latency_figure(run: dict[str, Any], action: str, name: str, y_range: tuple[float, float]) -> str:
    samples = sorted((run.get("samples") or {}).get(action, []), key=lambda s: float(s[0]))
    shown = thin(samples, MAX_POINTS)
    ok = [(float(t), max(float(ms), y_range[0])) for t, ms, good in shown if good]
    failed = [(float(t), max(float(ms), y_range[0])) for t, ms, good in shown if not good]
    duration = run_end(run)
    window = max(2.0, duration / 25)
    p99 = rolling_p99([(float(t), float(ms)) for t, ms, _ in samples], window, duration)
    who = target_name(run)
    plot = svgplot.Plot(
        title=f"{name}, {who}", x_label="seconds since start", y_label="latency (ms, log scale)",
        series=[svgplot.Series("sample", ok, "points", svgplot.PALETTE[0]),
                svgplot.Series("failed", failed, "crosses", "#B00020"),
                svgplot.Series(f"rolling p99 ({window:.0f} s)", p99, "line", "#000000")],
        spans=upload_spans(run), rules=[svgplot.Rule(LIMIT_MS, f"{LIMIT_MS:g} ms limit")],
        log_y=True, x_range=(0.0, duration), y_range=y_range)
    phases = (run.get("actions") or {}).get(action, {})
    by_phase = "; ".join(f"p99 {PHASE_WORDS.get(p, p)} {number(phases[p].get('p99'))} ms"
                         for p in PHASES if p in phases)
    errors = sum(1 for s in samples if not s[2])
    drawn = f"{len(shown)} of {len(samples)}" if len(shown) < len(samples) else f"{len(samples)}"
    alt = (f"{name} latency over time on the {who.lower()}: {drawn} samples drawn, {errors} failed, "
           f"highest {number(max((float(s[1]) for s in samples), default=0))} ms; {by_phase}; {spans_words(run)}.")
    return figure(plot, alt, f"{who}: {len(samples)} samples, {errors} failed")


def thin(samples: Sequence[Sequence[Any]], limit: int) -> list[Sequence[Any]]:
    """At most about ``limit`` samples, evenly spread in time, keeping every failure and the slowest 1%."""
    if len(samples) <= limit:
        return list(samples)
    slow_cut = sorted(float(s[1]) for s in samples)[int(len(samples) * 0.99)]
    stride = math.ceil(len(samples) / limit)
    return [s for i, s in enumerate(samples) if i % stride == 0 or not s[2] or float(s[1]) >= slow_cut]


def rolling_p99(points: Sequence[tuple[float, float]], window: float, end: float) -> list[tuple[float, float]]:
    """p99 (nearest rank, as the runner's figures) of the samples in the trailing ``window`` seconds,
    every ``window / 4``."""
    out: list[tuple[float, float]] = []
    if not points:
        return out
    step = window / 4
    t = points[0][0] + step
    low = 0
    high = 0
    while t <= end + step:
        while high < len(points) and points[high][0] <= t:
            high += 1
        while low < high and points[low][0] < t - window:
            low += 1
        if high > low:
            values = sorted(ms for _, ms in points[low:high])
            out.append((min(t, end), values[round(0.99 * (len(values) - 1))]))
        t += step
    return out


def run_end(run: dict[str, Any]) -> float:
    ends = [float(v[1]) for v in (run.get("phases") or {}).values() if v]
    ends += [float(s[0]) for samples in (run.get("samples") or {}).values() for s in samples]
    ends += [float(p["t"]) for p in (run.get("box") or {}).get("series", [])]
    return max(ends, default=1.0) or 1.0


def box_section(runs: Sequence[dict[str, Any]], grid: str) -> list[str]:
    out = ['<section aria-labelledby="box"><h2 id="box">The box</h2>']
    for heading, build in (("CPU per role", cpu_figure), ("Memory per role", memory_figure),
                           ("Disk and network", io_figure)):
        out.append(f'<h3>{heading}</h3><div class="{grid}">')
        out.extend(build(run) for run in runs)
        out.append("</div>")
    out.append("</section>")
    return out


def role_series(series: Sequence[dict[str, Any]], key: str) -> list[svgplot.Series]:
    roles = sorted({role for point in series for role in point.get(key, {})})
    return [svgplot.Series(role, [(float(p["t"]), float(p[key][role])) for p in series if role in p.get(key, {})],
                           "line", svgplot.PALETTE[i % len(svgplot.PALETTE)]) for i, role in enumerate(roles)]


def peaks_words(lines: Sequence[svgplot.Series], unit: str) -> str:
    return ", ".join(f"{s.label} peaks at {number(max((y for _, y in s.points), default=0))} {unit}" for s in lines)


def cpu_figure(run: dict[str, Any]) -> str:
    series = (run.get("box") or {}).get("series", [])
    lines = role_series(series, "cpu")
    who = target_name(run)
    plot = svgplot.Plot(f"CPU per role, {who}", "seconds since start", "% of one core", lines,
                        upload_spans(run), x_range=(0.0, run_end(run)))
    alt = (f"CPU per role over time on the {who.lower()}, percent of one core, {len(series)} readings: "
           f"{peaks_words(lines, '%') or 'no readings'}; {spans_words(run)}.")
    return figure(plot, alt, f"{who}: CPU per role")


def memory_figure(run: dict[str, Any]) -> str:
    series = (run.get("box") or {}).get("series", [])
    lines = role_series(series, "rss_mb")
    who = target_name(run)
    plot = svgplot.Plot(f"Memory per role, {who}", "seconds since start", "resident memory (MB)", lines,
                        upload_spans(run), x_range=(0.0, run_end(run)))
    alt = (f"Resident memory per role over time on the {who.lower()}, in MB: "
           f"{peaks_words(lines, 'MB') or 'no readings'}; {spans_words(run)}.")
    return figure(plot, alt, f"{who}: memory per role")


def io_figure(run: dict[str, Any]) -> str:
    series = (run.get("box") or {}).get("series", [])
    keys = (("disk_write_mb_s", "disk write"), ("disk_read_mb_s", "disk read"), ("net_mb_s", "network"))
    lines = [svgplot.Series(label, [(float(p["t"]), float(p[key])) for p in series if p.get(key) is not None],
                            "line", svgplot.PALETTE[i]) for i, (key, label) in enumerate(keys)]
    who = target_name(run)
    plot = svgplot.Plot(f"Disk and network, {who}", "seconds since start", "MB/s", lines,
                        upload_spans(run), x_range=(0.0, run_end(run)))
    alt = (f"Disk and network throughput over time on the {who.lower()}, in MB/s: "
           f"{peaks_words(lines, 'MB/s')}; {spans_words(run)}.")
    return figure(plot, alt, f"{who}: disk and network")


# --- tables -------------------------------------------------------------------------------------


def over_limits(run: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(action, phase, column) cells the verdict names as failing, and every cell counting errors."""
    cells: set[tuple[str, str, str]] = set()
    for f in (run.get("verdict") or {}).get("failures") or []:
        rule = str(f.get("rule"))
        if f.get("action") and f.get("phase"):
            column = "p99" if rule.startswith("p99") else "errors" if "error" in rule else "count"
            cells.add((f["action"], f["phase"], column))
    for action, phases in (run.get("actions") or {}).items():
        for phase, figures in phases.items():
            if figures.get("errors"):
                cells.add((action, phase, "errors"))
    return cells


def phase_table(run: dict[str, Any]) -> str:
    actions = run.get("actions") or {}
    marked = over_limits(run)
    columns = ("count", "p50", "p99", "max", "errors")
    rows = []
    for action in ordered(actions):
        phases = [p for p in PHASES if p in actions[action]]
        for i, phase in enumerate(phases):
            head = (f'<th scope="rowgroup" rowspan="{len(phases)}">{escape(ACTION_NAMES.get(action, action))}</th>'
                    if i == 0 else "")
            cells = []
            for column in columns:
                over = (action, phase, column) in marked
                label = OVER if over else ""
                cells.append(f'<td{" class=over" if over else ""}>{number(actions[action][phase].get(column))}'
                             f"{label}</td>")
            rows.append(f'<tr>{head}<th scope="row">{phase}</th>{"".join(cells)}</tr>')
    return (f'<div class="scroll"><table><caption>{escape(target_name(run))}</caption><thead><tr>'
            '<th scope="col">Action</th><th scope="col">Phase</th>'
            + "".join(f'<th scope="col">{c}</th>' for c in columns)
            + f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def uploads_table(run: dict[str, Any]) -> str:
    rows = []
    for u in run.get("uploads") or []:
        last = u.get("last_byte")
        good = None if u.get("good_enough") is None or last is None else u["good_enough"] - last
        upgraded = None if u.get("upgraded") is None or last is None else u["upgraded"] - last
        late = bool(u.get("ok")) and (good is None or good > GOOD_ENOUGH_LIMIT_S)
        result = "complete" if u.get("ok") else f"failed: {u.get('error') or 'unknown error'}"
        sending = "—" if u.get("started") is None else f"{seconds(u['started'])}&ndash;{seconds(last)}"
        rows.append(
            f'<tr><th scope="row">{escape(str(u.get("user")))}</th><td>{number(u.get("bytes", 0) / 1e6)}</td>'
            f"<td>{number(u.get('throughput_mbps'))}</td><td>{sending}</td>"
            f'<td{" class=over" if late else ""}>{seconds(good)}{OVER if late else ""}</td><td>{seconds(upgraded)}</td>'
            f'<td class="text{" over" if not u.get("ok") else ""}">{escape(result)}</td></tr>')
    if not rows:
        return f"<p>{escape(target_name(run))}: no uploads.</p>"
    return (f'<div class="scroll"><table><caption>{escape(target_name(run))}</caption><thead><tr>'
            '<th scope="col">User</th><th scope="col">MB</th><th scope="col">Mbit/s</th>'
            '<th scope="col">Sending (s)</th><th scope="col">Good enough</th><th scope="col">Upgraded</th>'
            f'<th scope="col">Result</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def seconds(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        sys.stderr.write("usage: python -m loadtests.crash.report RESULT.json OUT.html\n")
        return 2
    result = orjson.loads(Path(args[0]).read_bytes())
    Path(args[1]).write_text(render_html(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
