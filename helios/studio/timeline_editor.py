"""The timeline editor's buttons: rows added, removed and sorted in the page, timelines imported from a file or an
example and exported, none of them an API endpoint."""

from __future__ import annotations

from .layout import EXAMPLE_TIMELINES, Layout


def wire_timeline_editor(page: Layout, load_timeline, export) -> None:
    timeline = [page.rows, page.unit, page.crossfade]
    page.add_row.click(add_row, page.rows, page.rows, api_visibility="private")
    page.remove_row.click(remove_row, page.rows, page.rows, api_visibility="private")
    page.sort_rows.click(sort_rows, page.rows, page.rows, api_visibility="private")
    covered = [*timeline, page.segments]
    page.import_file.upload(load_timeline, [page.import_file, page.segments], covered, api_visibility="private")
    page.example_pick.change(
        lambda name, segments: load_timeline(EXAMPLE_TIMELINES.get(name), segments), [page.example_pick, page.segments],
        covered, api_visibility="private",
    )
    page.export_json.click(lambda r, u, c: export(r, u, c, "json"), timeline, page.exported, api_visibility="private")
    page.export_csv.click(lambda r, u, c: export(r, u, c, "csv"), timeline, page.exported, api_visibility="private")


def add_row(rows):
    rows = [list(r) for r in rows or []]
    last = float(rows[-1][0]) if rows and str(rows[-1][0]).strip() else -2.0
    return rows + [[last + 2, ""]]


def remove_row(rows):
    rows = [list(r) for r in rows or []]
    return rows[:-1] if len(rows) > 1 else [[0, ""]]


def sort_rows(rows):
    def key(row):
        try:
            return float(row[0])
        except (TypeError, ValueError):
            return float("inf")

    return sorted((list(r) for r in rows or []), key=key)
