"""The Live tab: an endless stream from text, or from the Generate tab's image or video, at its resolution, steps and
seed, that runs until Stop and is steered while it plays: a prompt box (Enter), nine prompt pads (a click, or the keys
1-9 when not typing), pause and resume at a segment boundary, a log of what was steered when that exports as a
timeline Generate makes again frame for frame, and a recording that downloads as a playable MP4 at any moment."""

from __future__ import annotations

import html
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from helios.limits import FPS, MAX_PROMPT_TOKENS

from . import live_faders
from .form import Form, whole
from .generate_tab import RUNS
from .gpu import on_gpu
from .live_session import WINDOW, LiveSession, LiveState, LiveUpdate
from .metrics import REAL_TIME
from .tab import GPU, QUIET, Page, in_words
from .worded import Crossfade

PADS = 9
LOG_COLUMNS = ["segment", "prompt", "LoRA", "crossfade", "steer latency (s)"]
LOG_SHOWN = 50
"""The page shows the last 50 steers; the export holds them all."""


@dataclass
class LiveTab:
    prompt: gr.Textbox
    crossfade: gr.Slider
    pads: gr.Dataframe
    pad_buttons: list[gr.Button]
    faders: live_faders.Faders
    start: gr.Button
    pause: gr.Button
    resume: gr.Button
    stop: gr.Button
    download: gr.Button
    export: gr.Button
    metrics: gr.HTML
    status: gr.Markdown
    fps_plot: gr.LinePlot
    log: gr.Dataframe
    files: gr.File

    @property
    def outputs(self) -> list:
        return [self.metrics, self.status, self.fps_plot, self.log]


def build(page: Page) -> LiveTab:
    with gr.Tab("Live", id="live", elem_id="live-tab"):
        tab = _lay_out(page)
        live = Playing(page, tab)
        gr.api(live.live_pad, api_name="live_pad", concurrency_limit=None)
        gr.api(live.live_lora, api_name="live_lora", concurrency_limit=None)
    shared = page.generate
    context = [shared.image, shared.video, shared.resolution, shared.steps, shared.seed]
    start = on_gpu(live.live_start, page.limits, seconds=page.sessions.settings.live_leg_s)
    resume = on_gpu(live.live_resume, page.limits, seconds=page.sessions.settings.live_leg_s)
    tab.start.click(start, [tab.prompt, tab.crossfade, tab.pads, *context], tab.outputs, **GPU, api_name="live_start")
    tab.resume.click(resume, None, tab.outputs, **GPU, api_name="live_resume")
    steer = dict(concurrency_limit=None, show_progress="hidden")
    tab.prompt.submit(live.live_steer, [tab.prompt, tab.crossfade], tab.status, **steer, api_name="live_steer")
    for n, button in enumerate(tab.pad_buttons, 1):
        button.click(live.pad(n), [tab.pads, tab.crossfade], tab.status, **steer, api_visibility="private")
    tab.pads.change(live.set_pads, tab.pads, None, **QUIET)
    live_faders.wire(tab.faders, page, live.live_lora, tab.crossfade, tab.status, **steer)
    tab.pause.click(live.live_pause, None, tab.status, **steer, api_name="live_pause")
    tab.stop.click(live.live_stop, None, tab.status, **steer, api_name="live_stop")
    tab.download.click(live.live_download, None, tab.files, concurrency_limit=None, api_name="live_download")
    tab.export.click(live.export, None, tab.files, concurrency_limit=None, api_visibility="private")
    return tab


def _lay_out(page: Page) -> LiveTab:
    gr.Markdown(
        "An endless stream you steer while it plays: from text, or the **Generate** tab's image or video, at its "
        "resolution, steps and seed. Type a prompt and press Enter, or press a pad (keys 1-9 when not typing); each "
        "lands at the next segment, cross-faded. Pause keeps the exact state; the log exports as a timeline that "
        "Generate makes again, frame for frame."
    )
    c: dict = {}
    with gr.Row():
        with gr.Column(scale=6):
            gr.HTML('<div class="live-player"><video autoplay muted playsinline controls></video></div>',
                    elem_id="live-player")
            with gr.Row():
                c["start"] = gr.Button("Start", variant="primary", elem_id="live-start")
                c["pause"] = gr.Button("Pause", elem_id="live-pause")
                c["resume"] = gr.Button("Resume", elem_id="live-resume")
                c["stop"] = gr.Button("Stop", variant="stop", elem_id="live-stop")
                gr.Button("Jump to live", elem_id="live-jump")
            gr.HTML("", elem_id="live-rate")
            c["metrics"] = gr.HTML("<div class='metrics'>Press Start to begin.</div>", elem_id="live-metrics")
            c["status"] = gr.Markdown("", elem_id="live-status")
            gr.HTML("", elem_id="live-on-screen")
            c["fps_plot"] = gr.LinePlot(
                x="segment", y="FPS", color="run", color_map={"live": "#4f46e5", REAL_TIME: "#9ca3af"},
                title=f"FPS, the last {WINDOW} segments", x_title="segment", y_title="frames per second", height=200,
                elem_id="live-fps-plot",
            )
        with gr.Column(scale=5):
            c["prompt"] = gr.Textbox(
                label=f"Prompt (Enter applies it from the next segment; at most {MAX_PROMPT_TOKENS} tokens)",
                value="A red fox trotting through fresh snow in a sunlit pine forest, cinematic", elem_id="live-prompt",
            )
            c["crossfade"] = Crossfade(0, 6, value=2, step=1, label="Crossfade (segments)", elem_id="live-crossfade")
            c["pads"] = gr.Dataframe(
                value=[[""] for _ in range(PADS)], headers=["pad prompt"], datatype=["str"], type="array",
                interactive=True, column_count=1, row_count=PADS, label="Prompt pads 1-9", elem_id="live-pads",
            )
            with gr.Row():
                c["pad_buttons"] = [gr.Button(str(n), size="sm", min_width=40, elem_id=f"live-pad-{n}")
                                    for n in range(1, PADS + 1)]
            c["faders"] = live_faders.lay_out(page)
            c["log"] = gr.Dataframe(headers=LOG_COLUMNS, interactive=False, label="Steered", elem_id="live-log")
            with gr.Row():
                c["download"] = gr.Button("Download so far", elem_id="live-download")
                c["export"] = gr.Button("Export the log as a timeline", elem_id="live-export")
            c["files"] = gr.File(label="Recording and recipe, or timeline", file_count="multiple", interactive=False,
                                 elem_id="live-files")
    return LiveTab(**c)


class Playing:
    """The tab's handlers; each acts on the caller's own session. Their docstrings are what API and MCP clients read."""

    def __init__(self, page: Page, tab: LiveTab):
        self.page, self.tab, self.sessions = page, tab, page.sessions
        self.settings = page.sessions.settings

    @in_words
    def live_start(self, prompt: str, crossfade: float, pads: list[list], image: str | None, video: str | None,
                   resolution: str, steps: str, seed: int, request: gr.Request):
        """Start an endless live stream in this session; it runs until live_stop (or live_pause), steered meanwhile.

        Args:
            prompt: what the stream shows first.
            crossfade: over how many segments each later prompt fades in (0 to 6).
            pads: up to 9 prompts for the pads, as rows of [prompt] (live_pad plays them).
            image: an image to start from, or none.
            video: a video to continue, or none.
            resolution: "HEIGHTxWIDTH", like "384x640".
            steps: denoising steps per pyramid stage, like "1,1,1" (real time on an H100).
            seed: the random seed; the exported log with this seed makes the same frames.
        """
        form = Form([[0, prompt]], "segments", crossfade, image, video, 1, steps, seed, resolution)
        session = self.sessions.live_start(request.session_hash, form, _pad_prompts(pads))
        yield from self._stream(request.session_hash, session)

    @in_words
    def live_resume(self, request: gr.Request):
        """Resume this session's paused live stream from the exact state it paused in."""
        session = self.sessions.live(request.session_hash)
        session.resume()
        yield from self._stream(request.session_hash, session)

    @in_words
    def live_steer(self, prompt: str, crossfade: float, request: gr.Request) -> str:
        """Steer this session's live stream: the prompt from the next segment on, cross-faded.

        Args:
            prompt: what the stream shows next.
            crossfade: over how many segments it fades in (0 to 6).
        """
        session = self.sessions.live(request.session_hash)
        return _landing(prompt, session.steer(prompt, whole(crossfade, "Crossfade")))

    @in_words
    def live_pad(self, number: int, crossfade: float, request: gr.Request) -> str:
        """Steer this session's live stream with one of its prompt pads.

        Args:
            number: the pad, 1 to 9.
            crossfade: over how many segments it fades in (0 to 6).
        """
        prompt = self.sessions.live_pad(request.session_hash, number)
        return self.live_steer(prompt, crossfade, request)

    @in_words
    def live_lora(self, adapter: str, strength: float, crossfade: float, request: gr.Request) -> str:
        """Fade one of the LoRA adapters (the app's, or this session's uploads) to a strength from the next segment
        on, the prompt kept.

        Args:
            adapter: the adapter's name (its file's stem).
            strength: from -2 to 2; 0 turns it off.
            crossfade: over how many segments it fades (0 to 6).
        """
        session = self.sessions.live(request.session_hash)
        segment = session.fade(adapter, strength, whole(crossfade, "Crossfade"))
        return f"LoRA {adapter} goes to {strength:g} from segment {segment + 1}."

    def pad(self, number: int):
        """A pad button's handler: the pad's prompt as the table shows it now (its edit may not have reached the
        session's copy, which API clients steer with, yet)."""
        @in_words
        def press(pads: list[list], crossfade: float, request: gr.Request) -> str:
            prompt = self.sessions.live_pad(request.session_hash, number, _pad_prompts(pads))
            return self.live_steer(prompt, crossfade, request)
        return press

    def set_pads(self, pads: list[list], request: gr.Request) -> None:
        self.sessions.live_pads(request.session_hash, _pad_prompts(pads))

    @in_words
    def live_pause(self, request: gr.Request) -> str:
        """Pause this session's live stream at the next segment boundary, keeping its exact state."""
        if self.sessions.live(request.session_hash).pause():
            return "Pausing at the next segment boundary; Resume goes on from exactly there."
        return "Nothing is playing: there is nothing to pause."

    @in_words
    def live_stop(self, request: gr.Request) -> str:
        """Stop this session's live stream; the recording so far stays downloadable."""
        if self.sessions.live(request.session_hash).stop():
            return "Stopped; the recording so far stays downloadable."
        return "The live stream was already stopped."

    @in_words
    def live_download(self, request: gr.Request) -> list[str]:
        """The recording so far as a playable MP4, and its recipe (the steer log as its timeline)."""
        video = self.sessions.live(request.session_hash).recording()
        return [str(video), str(video.with_suffix(".json"))]

    @in_words
    def export(self, request: gr.Request) -> list[str]:
        out = Path(tempfile.mkdtemp(prefix="helios-live-log-")) / "live-timeline.json"
        out.write_text(self.sessions.live(request.session_hash).timeline.to_json(), encoding="utf-8")
        return [str(out)]

    def _stream(self, owner: str, session: LiveSession):
        stream = self.page.live.open()
        waiting = _Waiting(self.page, owner, self.settings.live_yield_s)
        leg_end = time.monotonic() + self.settings.live_leg_s if self.page.engine.model.capabilities.zero_gpu else None

        def should_pause() -> str:
            if leg_end is not None and time.monotonic() > leg_end:
                return "ZeroGPU lends the GPU one call at a time: paused at the call's limit; Resume goes on."
            return waiting.verdict()

        try:
            for update in session.updates(should_pause):
                if update.clip:
                    stream.add(update.clip)
                self.sessions.touch(owner)
                yield self._shown(session, update, stream.url, waiting.note())
        finally:
            stream.end()
        yield self._shown(session, LiveUpdate(note=session.note), stream.url, "")

    def _shown(self, session: LiveSession, update: LiveUpdate, url: str, waiting: str) -> dict:
        tab, stats = self.tab, session.stats
        rtf = stats.recent_fps / FPS
        notes = " ".join(n for n in (update.note, waiting, session.recording_note) if n)
        landed = [s.segment for s in session.steers if s.segment is not None]
        data = (f'data-live="{html.escape(url)}" data-state="{session.state}" data-rtf="{rtf:.3f}" '
                f'data-segments="{stats.segments}" data-leg-start="{session.leg_start}" '
                f'data-landed-count="{len(landed)}" data-landed="{",".join(map(str, landed[-LOG_SHOWN:]))}"')
        step = update.progress
        doing = f", denoising segment {step.segment + 1}" if step and session.state == LiveState.RUNNING else ""
        metrics = (f"<div class='metrics' {data}>{session.state}{doing}: {stats.segments} segments, "
                   f"{stats.frames} frames, {stats.fps:.1f} FPS overall, {stats.recent_fps:.1f} FPS recently "
                   f"({rtf:.2f}x real time){' — ' + html.escape(notes) if notes else ''}</div>")
        out = {tab.metrics: metrics}
        if update.clip or update.progress is None:
            out[tab.fps_plot] = _window(session)
            out[tab.log] = [[s.segment + 1 if s.segment is not None else "next", s.prompt,
                             ", ".join(f"{name}={value:g}" for name, value in s.lora), s.crossfade,
                             round(s.latency_s, 2) if s.latency_s is not None else None]
                            for s in session.steers[-LOG_SHOWN:]]
        return out


def _window(session: LiveSession) -> pd.DataFrame:
    rows = [dict(segment=str(k), FPS=round(fps, 2), run="live") for k, fps, _ in session.stats.window]
    rows += [dict(segment=str(k), FPS=24.0, run=REAL_TIME) for k, _, _ in session.stats.window]
    return pd.DataFrame(rows, columns=["segment", "FPS", "run"])


class _Waiting:
    """Someone else's run waits in the GPU queue: the live session is told, then paused after `limit_s`."""

    def __init__(self, page: Page, owner: str, limit_s: float):
        self.page, self.owner, self.limit_s = page, owner, limit_s
        self.since: float | None = None

    def count(self) -> int:
        queues = self.page.demo._queue.event_queue_per_concurrency_id.values()
        return sum(e.session_hash != self.owner and e.fn.api_name in (*RUNS, "live_start", "live_resume")
                   for q in queues for e in list(q.queue))

    def verdict(self) -> str:
        if not self.count():
            self.since = None
            return ""
        self.since = self.since or time.monotonic()
        if time.monotonic() - self.since >= self.limit_s:
            return "paused so that the queue moves (someone is waiting for the GPU); Resume rejoins it."
        return ""

    def note(self) -> str:
        if self.since is None:
            return ""
        left = max(0, self.limit_s - (time.monotonic() - self.since))
        return f"someone is waiting for the GPU: the stream pauses in {left:.0f} s"


def _pad_prompts(pads) -> list[str]:
    rows = pads.values.tolist() if hasattr(pads, "values") else list(pads or [])
    return [str((list(r) or [""])[0] or "").strip() if isinstance(r, (list, tuple)) else str(r or "").strip()
            for r in rows][:PADS]


def _landing(prompt: str, segment: int) -> str:
    return f"**{html.escape(prompt[:80])}** lands at segment {segment + 1}, the next to start."

