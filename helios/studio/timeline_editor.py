"""The timeline editor, in the Generate tab: rows added, removed and sorted in the page, timelines imported from a
file or an example and exported; none of them an API endpoint."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import gradio as gr

from helios.limits import Limits
from helios.timeline import read_timeline

from .form import rows_from_timeline, timeline_from_rows
from .tab import in_words
from .worded import TimelineRows

if TYPE_CHECKING:
    from .generate_tab import GenerateTab
    from .sessions import Sessions

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


def timeline_rows(adapters: tuple[str, ...], first_prompt: str, label: str, elem_id: str,
                  value: list | None = None) -> TimelineRows:
    """A prompt timeline's rows: start, prompt, and a strength per LoRA adapter (blank: the row before's)."""
    n = len(adapters)
    return TimelineRows(
        value=value or [[0, first_prompt, *([""] * n)]], headers=["start", "prompt", *(f"lora:{a}" for a in adapters)],
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


def with_adapters(rows, adapters: tuple[str, ...], kept: int) -> list[list]:
    """The rows with a strength column per adapter: the first `kept` adapters' columns as they were, the others
    blank (a session's uploads replace its earlier ones)."""
    width = 2 + kept
    return [(list(r) + [""] * width)[:width] + [""] * (len(adapters) - kept) for r in rows or [[0, ""]]]


def widened(rows, sessions: Sessions, session: str, label: str, elem_id: str) -> TimelineRows:
    """A timeline table shown again with a strength column per adapter the session has now (its uploads' blank)."""
    adapters = sessions.adapters(session)
    value = with_adapters(rows, adapters, len(sessions.settings.adapters))
    return timeline_rows(adapters, "", label, elem_id, value)


def wire(editor: TimelineEditor, tab: GenerateTab, limits: Limits, adapters_of: Callable[[str], tuple[str, ...]]
         ) -> None:
    """`adapters_of(session)`: the adapters whose strength columns the session's rows carry."""
    timeline = [tab.rows, tab.unit, tab.crossfade]
    private = dict(api_visibility="private")
    editor.add_row.click(add_row, tab.rows, tab.rows, **private)
    editor.remove_row.click(remove_row, tab.rows, tab.rows, **private)
    editor.sort_rows.click(sort_rows, tab.rows, tab.rows, **private)
    covered = [*timeline, tab.segments]

    @in_words
    def load(path, segments, request: gr.Request):
        """The timeline's rows, and a length that covers it (never shorter than the one set)."""
        if not path:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        timeline = read_timeline(path)
        covering = min(timeline.covering_segments, limits.max_segments)
        length = max(covering, segments if isinstance(segments, (int, float)) else 1)
        return *rows_from_timeline(timeline, adapters_of(request.session_hash)), length

    def pick(name, segments, request: gr.Request):
        return load(EXAMPLE_TIMELINES.get(name), segments, request)

    def exporter(kind: str):
        def export_kind(rows, unit, crossfade, request: gr.Request) -> str:
            return export(rows, unit, crossfade, kind, adapters_of(request.session_hash))
        return export_kind

    editor.import_file.upload(load, [editor.import_file, tab.segments], covered, **private)
    editor.example_pick.change(pick, [editor.example_pick, tab.segments], covered, **private)
    editor.export_json.click(exporter("json"), timeline, editor.exported, **private)
    editor.export_csv.click(exporter("csv"), timeline, editor.exported, **private)


@in_words
def export(rows, unit, crossfade, kind: str, adapters: tuple[str, ...] = ()) -> str:
    timeline = timeline_from_rows(rows, unit, crossfade, adapters)
    timeline.check()
    out = Path(tempfile.mkdtemp(prefix="helios-timeline-")) / f"timeline.{kind}"
    out.write_text(timeline.to_json() if kind == "json" else timeline.to_csv(), encoding="utf-8")
    return str(out)


def add_row(rows):
    """A row 2 after the last, as wide as the others (a strength column per adapter)."""
    rows = [list(r) for r in rows or []]
    last = float(rows[-1][0]) if rows and str(rows[-1][0]).strip() else -2.0
    return rows + [[last + 2, "", *([""] * _strengths(rows))]]


def remove_row(rows):
    rows = [list(r) for r in rows or []]
    return rows[:-1] if len(rows) > 1 else [[0, "", *([""] * _strengths(rows))]]


def _strengths(rows: list[list]) -> int:
    return max(len(rows[0]) - 2, 0) if rows else 0


def sort_rows(rows):
    def key(row):
        try:
            return float(row[0])
        except (TypeError, ValueError):
            return float("inf")

    return sorted((list(r) for r in rows or []), key=key)
