"""This session's runs, in the Generate tab: the last few with what each asked for and measured, to play again,
download with its recipe, or load back into the form."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from helios.errors import HeliosError

from . import history
from .streamed_run import StreamedRun
from .tab import Page, in_words
from .worded import RunNumber


@dataclass
class HistoryPanel:
    table: gr.Dataframe
    run_pick: gr.Number
    play_run: gr.Button
    load_run: gr.Button
    run_video: gr.Video
    run_files: gr.File


def lay_out() -> HistoryPanel:
    c: dict = {}
    with gr.Accordion("This session's runs", open=False):
        c["table"] = gr.Dataframe(headers=history.COLUMNS, interactive=False, elem_id="history", wrap=True)
        with gr.Row():
            c["run_pick"] = RunNumber(value=1, precision=0, minimum=1, label="Run", elem_id="run-pick")
            c["play_run"] = gr.Button("Play and download", size="sm", elem_id="play-run")
            c["load_run"] = gr.Button("Load its settings", size="sm", elem_id="load-run")
        c["run_video"] = gr.Video(label="Run", interactive=False, elem_id="run-video")
        c["run_files"] = gr.File(label="Its MP4 and recipe", file_count="multiple", interactive=False,
                                 elem_id="run-files")
    return HistoryPanel(**c)


def wire(panel: HistoryPanel, page: Page) -> None:
    """The table follows the runs: it is refreshed when a run's MP4 is offered, that is when the run ends."""
    handlers = Runs(page)
    tab = page.generate
    tab.download.change(handlers.runs, None, panel.table, concurrency_limit=None, api_name="history",
                        show_progress="hidden")
    panel.play_run.click(handlers.play_run, panel.run_pick, [panel.run_video, panel.run_files], concurrency_limit=None,
                         api_name="play_run")
    settings = [tab.rows, tab.unit, tab.crossfade, tab.segments, tab.steps, tab.seed, tab.resolution]
    panel.load_run.click(handlers.load_run, panel.run_pick, settings, concurrency_limit=None, api_name="load_run")


def refresh_when(component: gr.components.Component, page: Page) -> None:
    """Another tab's run ended (its files were offered): the table shows it."""
    component.change(Runs(page).runs, None, page.generate.history.table, concurrency_limit=None,
                     api_visibility="private", show_progress="hidden")


class Runs:
    def __init__(self, page: Page):
        self.sessions = page.sessions

    def runs(self, request: gr.Request):
        """This session's runs, newest first: prompt, steps, seed, length, resolution, FPS, first frame, status."""
        return [history.summary(n, run) for n, run in enumerate(self.sessions.history(request.session_hash), 1)]

    @in_words
    def play_run(self, number: int, request: gr.Request):
        """One of this session's runs: its video and its files (the MP4 and its recipe).

        Args:
            number: the run's number in this session's table of runs (1 is the newest).
        """
        run = self._picked(number, request.session_hash)
        if run.video is None:
            raise HeliosError("That run has no video yet: it is still generating, or stopped before its first segment.")
        return str(run.video), [str(f) for f in history.files(run)]

    @in_words
    def load_run(self, number: int, request: gr.Request):
        """The settings one of this session's runs was made with, to run again or change.

        Args:
            number: the run's number in this session's table of runs (1 is the newest).
        """
        session = request.session_hash
        return history.form_values(self._picked(number, session), self.sessions.adapters(session))

    def _picked(self, number, session: str) -> StreamedRun:
        runs = self.sessions.history(session)
        if not isinstance(number, (int, float)) or number != int(number) or not 1 <= number <= len(runs):
            raise HeliosError(f"There is no run {number} in this session: it has {len(runs)}, numbered in the table.")
        return runs[int(number) - 1]
