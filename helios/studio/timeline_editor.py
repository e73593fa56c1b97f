"""The timeline editor, in the Generate tab: rows added, removed and sorted in the page, timelines imported from a
file or an example and exported; none of them an API endpoint."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from helios.limits import Limits
from helios.timeline import read_timeline

from .form import rows_from_timeline, timeline_from_rows
from .tab import in_words
from .worded import TimelineRows

if TYPE_CHECKING:
    from .generate_tab import GenerateTab

EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "timelines"
EXAMPLE_TIMELINES = {p.name: p for p in sorted(EXAMPLES.glob("*")) if p.suffix in (".json", ".csv")}


@dataclass
class TimelineEditor:
    add_row: gr.Button
    remove_row: gr.Button
    sort_rows: gr.Button
    import_file: gr.File
    example_pick: gr.Dropdown
    export_json: gr.Button
    export_csv: gr.Button
    exported: gr.File


def timeline_rows(adapters: tuple[str, ...], first_prompt: str, label: str, elem_id: str) -> TimelineRows:
    """A prompt timeline's rows: start, prompt, and a strength per LoRA adapter (blank: the row before's)."""
    n = len(adapters)
    return TimelineRows(
        value=[[0, first_prompt, *([""] * n)]], headers=["start", "prompt", *(f"lora:{a}" for a in adapters)],
        datatype=["number", "str", *(["str"] * n)], type="array", interactive=True, column_count=2 + n,
        label=label + (" and a strength per LoRA adapter (blank: the row before's)" if n else ""), elem_id=elem_id,
        wrap=True, column_widths=["16%", f"{84 - 12 * n}%", *(["12%"] * n)],
    )


def lay_out_buttons() -> dict:
    with gr.Row():
        return dict(add_row=gr.Button("Add row", size="sm", elem_id="add-row"),
                    remove_row=gr.Button("Remove last row", size="sm"),
                    sort_rows=gr.Button("Sort by start", size="sm"))


def lay_out_files() -> dict:
    c: dict = {}
    with gr.Accordion("Import / export timeline", open=False):
        c["import_file"] = gr.File(label="Import .json or .csv", file_types=[".json", ".csv"], type="filepath")
        c["example_pick"] = gr.Dropdown(list(EXAMPLE_TIMELINES), label="Example timelines", value=None)
        with gr.Row():
            c["export_json"] = gr.Button("Export JSON", size="sm")
            c["export_csv"] = gr.Button("Export CSV", size="sm")
        c["exported"] = gr.File(label="Exported timeline", interactive=False)
    return c


def wire(editor: TimelineEditor, tab: GenerateTab, limits: Limits, adapters: tuple[str, ...]) -> None:
    timeline = [tab.rows, tab.unit, tab.crossfade]
    private = dict(api_visibility="private")
    editor.add_row.click(lambda rows: add_row(rows, len(adapters)), tab.rows, tab.rows, **private)
    editor.remove_row.click(lambda rows: remove_row(rows, len(adapters)), tab.rows, tab.rows, **private)
    editor.sort_rows.click(sort_rows, tab.rows, tab.rows, **private)
    covered = [*timeline, tab.segments]

    @in_words
    def load(path, segments):
        """The timeline's rows, and a length that covers it (never shorter than the one set)."""
        if not path:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        timeline = read_timeline(path)
        covering = min(timeline.covering_segments, limits.max_segments)
        length = max(covering, segments if isinstance(segments, (int, float)) else 1)
        return *rows_from_timeline(timeline, adapters), length

    editor.import_file.upload(load, [editor.import_file, tab.segments], covered, **private)
    editor.example_pick.change(lambda name, segments: load(EXAMPLE_TIMELINES.get(name), segments),
                               [editor.example_pick, tab.segments], covered, **private)
    editor.export_json.click(lambda r, u, c: export(r, u, c, "json", adapters), timeline, editor.exported, **private)
    editor.export_csv.click(lambda r, u, c: export(r, u, c, "csv", adapters), timeline, editor.exported, **private)


@in_words
def export(rows, unit, crossfade, kind: str, adapters: tuple[str, ...] = ()) -> str:
    timeline = timeline_from_rows(rows, unit, crossfade, adapters)
    timeline.check()
    out = Path(tempfile.mkdtemp(prefix="helios-timeline-")) / f"timeline.{kind}"
    out.write_text(timeline.to_json() if kind == "json" else timeline.to_csv(), encoding="utf-8")
    return str(out)


def add_row(rows, adapters: int = 0):
    rows = [list(r) for r in rows or []]
    last = float(rows[-1][0]) if rows and str(rows[-1][0]).strip() else -2.0
    return rows + [[last + 2, "", *([""] * adapters)]]


def remove_row(rows, adapters: int = 0):
    rows = [list(r) for r in rows or []]
    return rows[:-1] if len(rows) > 1 else [[0, "", *([""] * adapters)]]


def sort_rows(rows):
    def key(row):
        try:
            return float(row[0])
        except (TypeError, ValueError):
            return float("inf")

    return sorted((list(r) for r in rows or []), key=key)
