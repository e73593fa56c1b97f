"""A prompt suite's report as one static HTML file beside its videos: per prompt the configurations' players side by
side and their measures, then the configurations against each other in a table and in plots (inline SVG), so it
opens from the folder in any browser, with no server and nothing fetched."""

from __future__ import annotations

import html
import json
import math
import statistics
from pathlib import Path

from .recipe import Recipe, sidecar

COLOURS = ("#f97316", "#4f46e5", "#059669", "#dc2626", "#0891b2", "#a16207", "#7c3aed", "#475569")
SHOWN = ("overall_fps", "first_frame_s", "peak_gpu_gib", "flicker_max", "flicker_mean", "drift_colour",
         "drift_brightness", "drift_sharpness")
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #111827; }
table { border-collapse: collapse; margin: .5em 0 1.5em; } th, td { padding: .25em .8em; border-bottom: 1px solid
#e5e7eb; }
th { text-align: left; } td { text-align: right; } td.text { text-align: left; }
.players { display: flex; gap: 1em; flex-wrap: wrap; } figure { margin: 0; } video { width: 320px; background: #000; }
svg text { font-size: 11px; fill: #374151; }
"""


def write_report(path: Path, prompts: list[tuple[str, str]], configs: list, rows: list[dict]) -> None:
    names = [c.name for c in configs]
    shown = SHOWN + tuple(k for k in ("psnr_vs_baseline", "ssim_vs_baseline") if rows and k in rows[0])
    parts = [f"<!doctype html><meta charset='utf-8'><title>Helios suite</title><style>{STYLE}</style>",
             "<h1>Helios suite</h1>", "<h2>Configurations</h2>",
             _table(["configuration", "flags"], [[c.name, c.flags or "(the common flags)"] for c in configs], text=2)]
    parts += ["<h2>Against each other (mean over prompts)</h2>", _table(["configuration", *shown], [
        [name, *(_mean([r[k] for r in rows if r["config"] == name]) for k in shown)] for name in names], text=1)]
    series = {
        name: [Recipe.read(sidecar(path.parent / r["file"])) for r in rows if r["config"] == name] for name in names
    }
    parts += [
        _plot(
            "Flicker at each segment boundary (1 = like any other step), mean over prompts",
            "boundary",
            {n: _mean_series([r.measures.get("flicker", []) for r in rs]) for n, rs in series.items()},
        ),
        _plot(
            "Brightness drift from the first segment (levels), mean over prompts",
            "segment",
            {
                n: _mean_series([[d["brightness"] for d in r.measures.get("drift", [])] for r in rs])
                for n, rs in series.items()
            },
        ),
        _plot(
            "Sharpness against the first segment (1 = as sharp), mean over prompts",
            "segment",
            {
                n: _mean_series([[d["sharpness"] for d in r.measures.get("drift", [])] for r in rs])
                for n, rs in series.items()
            },
        ),
        _plot(
            "FPS per segment, mean over prompts",
            "segment",
            {n: _mean_series([[s["fps"] for s in r.timings["segments"]] for r in rs]) for n, rs in series.items()},
        ),
    ]
    for pid, prompt in prompts:
        mine = [r for r in rows if r["prompt_id"] == pid]
        players = "".join(
            f"<figure><video src='{html.escape(r['file'])}' controls loop muted preload='metadata'></video>"
            f"<figcaption>{html.escape(r['config'])}</figcaption></figure>"
            for r in mine
        )
        parts += [f"<h2>{html.escape(pid)}: {html.escape(prompt)}</h2>", f"<div class='players'>{players}</div>",
                  _table(["configuration", *shown], [[r["config"], *(r[k] for k in shown)] for r in mine], text=1)]
    parts.append("<p>Every video's recipe is the .json beside it: <code>python -m helios generate --recipe FILE.json "
                 "--out again.mp4</code> makes it again.</p>")
    path.write_text("\n".join(parts), encoding="utf-8")


def _mean(values: list):
    numbers = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return round(statistics.fmean(numbers), 3) if numbers else None


def _mean_series(series: list[list[float]]) -> list[float]:
    longest = max((len(s) for s in series), default=0)
    return [_mean([s[i] for s in series if i < len(s)]) for i in range(longest)]


def _table(headers: list[str], rows: list[list], text: int) -> str:
    """`text`: how many leading columns are words, aligned left."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='text'>{html.escape(str(v))}</td>"
            if i < text
            else f"<td>{'-' if v is None else html.escape(str(v))}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _plot(title: str, x_label: str, series: dict[str, list], width: int = 560, height: int = 220) -> str:
    """A line per configuration over x = 1, 2, ...; an empty plot says so."""
    points = [v for values in series.values() for v in values if v is not None]
    if not points:
        return f"<h3>{html.escape(title)}</h3><p>Nothing to plot: every video has a single segment.</p>"
    low, high = min(points + [0.0]), max(points)
    high = high if high > low else low + 1
    longest = max(len(v) for v in series.values())
    left, bottom, top, right = 48, 28, 10, 10

    def x(i: int) -> float:
        return left + (width - left - right) * (i / max(longest - 1, 1))

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - low) / (high - low))

    lines = []
    for colour, (name, values) in zip(COLOURS * 4, series.items()):
        coords = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values) if v is not None)
        lines.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{coords}'/>"
                     f"<text x='{width - right - 4}' y='{top + 12 * (1 + len(lines))}' text-anchor='end' "
                     f"fill='{colour}'>{html.escape(name)}</text>")
    axes = (
        f"<line x1='{left}' y1='{height - bottom}' x2='{width - right}' y2='{height - bottom}' stroke='#9ca3af'/>"
        f"<text x='{left - 6}' y='{y(high) + 4:.1f}' text-anchor='end'>{high:.3g}</text>"
        f"<text x='{left - 6}' y='{y(low) + 4:.1f}' text-anchor='end'>{low:.3g}</text>"
        f"<text x='{(width + left) / 2}' y='{height - 6}' text-anchor='middle'>{html.escape(x_label)} "
        f"1-{longest}</text>"
    )
    data = html.escape(json.dumps(series))
    return (f"<h3>{html.escape(title)}</h3><svg width='{width}' height='{height}' data-series='{data}' "
            f"xmlns='http://www.w3.org/2000/svg'>{axes}{''.join(lines)}</svg>")
