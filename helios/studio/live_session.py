"""A live, endless stream steered while it plays: a chain of endless runs, each going on until it is paused or
stopped, the next resuming from the exact state the last ended in (`Run.continuation`), so a session paused and
resumed is frame for frame the one run its steer log describes. Gradio-free: the Live tab renders what it yields.

What it holds stays bounded for hours: the FPS of the last `WINDOW` segments beside running totals, and a recording
of the most recent clips within its disk quota (the stream itself never stops for the disk).
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Callable, Iterator

from helios.errors import BadInput
from helios.limits import FPS, FRAMES_PER_SEGMENT
from helios.lora.file import check_strength
from helios.media import encode_clip, join_videos
from helios.recipe import recipe_for, sidecar
from helios.request import GenerationRequest
from helios.run import Run
from helios.segment import Segment, StepProgress
from helios.timeline import PromptTimeline, Strengths

WINDOW = 120
"""Segments whose FPS the page plots (~2.7 minutes of video); totals cover the whole session."""


class LiveState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass
class Steer:
    """A prompt sent while the stream plays: where it landed and how long until its first frame was out."""

    prompt: str
    crossfade: int
    pressed: float
    lora: Strengths = ()
    segment: int | None = None
    latency_s: float | None = None


@dataclass
class LiveStats:
    segments: int = 0
    frames: int = 0
    generating_s: float = 0.0
    window: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    """(segment, FPS, when it was out) of the last WINDOW segments."""
    leg_started: float = 0.0

    def add(self, segment: Segment) -> None:
        self.segments += 1
        self.frames += len(segment.frames)
        self.generating_s += segment.timings.total_s
        self.window.append((segment.index + 1, segment.fps, time.perf_counter()))

    @property
    def fps(self) -> float:
        """Frames made per second of generating, over the whole session (a segment's decode overlaps the next one's
        denoising, so this is below the rate segments come out)."""
        return self.frames / self.generating_s if self.generating_s else 0.0

    @property
    def recent_fps(self) -> float:
        """The rate frames came out in this leg's part of the window, as a viewer receives them (a segment's own FPS
        until a second is out)."""
        leg = [out for *_, out in self.window if out >= self.leg_started]
        if len(leg) < 2:
            return self.window[-1][1] if self.window else 0.0
        return FRAMES_PER_SEGMENT * (len(leg) - 1) / (leg[-1] - leg[0]) if leg[-1] > leg[0] else 0.0


@dataclass(frozen=True)
class LiveUpdate:
    """What the page shows after an event: `clip` is the segment just encoded, for the live player."""

    clip: Path | None = None
    progress: StepProgress | None = None
    note: str = ""


class LiveSession:
    """One browser session's stream. `steer`, `pause` and `stop` work from any thread while a leg runs; a leg is
    `updates()`, iterated by the handler that started or resumed it."""

    def __init__(self, make_run: Callable[[GenerationRequest], Run], request: GenerationRequest, root: Path,
                 disk_quota: int):
        """`request` is validated here (BadInput names the first problem): an endless request."""
        self.make_run = make_run
        self.request = dataclasses.replace(request, endless=True)
        self.run = make_run(self.request)
        self.workdir = root / f"helios-live-{secrets.token_urlsafe(24)}"
        self.workdir.mkdir(mode=0o700, parents=True)
        self.disk_quota = disk_quota
        self.clips: deque[Path] = deque()
        self.dropped = 0
        """Clips removed from the start of the recording to keep it within the quota."""
        self.state = LiveState.PAUSED
        self.stats = LiveStats()
        self.steers: list[Steer] = []
        self.note = ""
        self.leg_start = 0
        """The first segment of the leg playing: the player's time 0."""
        self._lock = threading.Lock()

    @property
    def timeline(self) -> PromptTimeline:
        """The steer log as a timeline: what Generate imports to make the session again, frame for frame."""
        return self.run.timeline

    @property
    def next_segment(self) -> int:
        """The segment a steer sent now lands on, at the latest (one may already be denoising)."""
        done = self.run.continuation.next_segment if self.run.continuation else 0
        return done + (1 if self.state == LiveState.RUNNING else 0)

    def steer(self, prompt: str | None, crossfade: int, lora: Strengths = ()) -> int:
        """The prompt (None: the one playing or already sent) and adapter strengths from the next segment to start;
        returns the segment it is expected to land on."""
        if self.state != LiveState.RUNNING:
            raise BadInput("Nothing is playing: start the live stream (or resume it), then steer.")
        if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
            raise BadInput("The prompt is empty: write what the stream should show next.")
        self.run.steer(prompt.strip() if prompt else None, crossfade, lora)
        with self._lock:
            self.steers.append(Steer(self.run.next_prompt, crossfade, time.perf_counter(), lora))
        return self.next_segment

    def fade(self, adapter: str, strength: float, crossfade: int) -> int:
        """A LoRA adapter's strength from the next segment on, the prompt kept."""
        return self.steer(None, crossfade, ((adapter, check_strength(strength, f"LoRA {adapter}")),))

    def pause(self) -> bool:
        """Pauses at the next segment boundary; False if nothing was playing."""
        if self.state != LiveState.RUNNING:
            return False
        self.run.pause()
        return True

    def stop(self) -> bool:
        """Ends the stream after the current denoising step; the recording stays downloadable."""
        was = self.state
        self.state = LiveState.STOPPED
        if was == LiveState.RUNNING:
            self.run.cancel()
        return was != LiveState.STOPPED

    def resume(self) -> None:
        """Makes the next leg, which goes on from the exact state the last one ended in; `updates()` runs it."""
        if self.state == LiveState.RUNNING:
            raise BadInput("The live stream is already playing.")
        if self.state == LiveState.STOPPED:
            raise BadInput("The live stream was stopped: start a new one.")
        if self.run.continuation is not None:
            after = dataclasses.replace(self.request, timeline=self.run.timeline, after=self.run.continuation,
                                        image=None, video=None)
            self.run = self.make_run(after)

    def updates(self, should_pause: Callable[[], str] = lambda: "") -> Iterator[LiveUpdate]:
        """One leg, until paused or stopped; `should_pause` says why the stream must pause now (someone waits for the
        GPU, a ZeroGPU call's time is up), or "" to go on. A consumer that goes away pauses the stream."""
        self.state, self.note = LiveState.RUNNING, ""
        self.leg_start = self.run.request.first_segment
        self.stats.leg_started = time.perf_counter()
        try:
            for event in self.run:
                if isinstance(event, StepProgress):
                    yield LiveUpdate(progress=event)
                    continue
                clip = self._record(event)
                self._landed(event.index)
                self.stats.add(event)
                why = should_pause()
                if why and not self.run.pausing:
                    self.note = why
                    self.run.pause()
                yield LiveUpdate(clip=clip, note=self.note)
        finally:
            self.run.pause()
            if self.state == LiveState.RUNNING:
                self.state = LiveState.STOPPED if self.run.cancelled else LiveState.PAUSED

    def _landed(self, index: int) -> None:
        """Steers whose prompt this segment is the first to carry: where each landed and how long it took."""
        entries = {e.segment: e for e in self.run.timeline.entries}
        with self._lock:
            for steer in self.steers:
                entry = entries.get(index)
                if steer.segment is None and entry is not None and entry.prompt == steer.prompt:
                    steer.segment, steer.latency_s = index, time.perf_counter() - steer.pressed

    def _record(self, segment: Segment) -> Path:
        clip = encode_clip(segment.frames, self.workdir / f"segment-{segment.index:06d}.mp4")
        self.clips.append(clip)
        while len(self.clips) > 1 and sum(c.stat().st_size for c in self.clips) > self.disk_quota:
            self.clips.popleft().unlink(missing_ok=True)
            self.dropped += 1
        return clip

    def recording(self) -> Path:
        """Everything recorded so far as one playable MP4 (the most recent minutes past the quota), its recipe
        beside it and in its metadata: the steer log as the timeline."""
        clips = list(self.clips)
        if not clips:
            raise BadInput("Nothing is recorded yet: the first segment is still being made.")
        first = int(clips[0].stem.rsplit("-", 1)[1])
        segments = first + len(clips)
        settings = dataclasses.replace(self.request.settings, num_frames=segments * FRAMES_PER_SEGMENT)
        request = dataclasses.replace(self.request, timeline=self.timeline, settings=settings, after=None,
                                      endless=False)
        timings = dict(segments=self.stats.segments, frames=self.stats.frames, fps=round(self.stats.fps, 2),
                       recorded_from_segment=first + 1, recorded_from_s=round(first * FRAMES_PER_SEGMENT / FPS, 1))
        recipe = recipe_for(self.run.engine.model, request, timings, engine="ours").to_json()
        out = self.workdir / f"live-{segments:06d}.mp4"
        join_videos(clips, out, recipe)
        sidecar(out).write_text(recipe, encoding="utf-8")
        for old in self.workdir.glob("live-*.*"):
            if old.stem != out.stem:
                old.unlink(missing_ok=True)
        return out

    @property
    def recording_note(self) -> str:
        if not self.dropped:
            return ""
        kept_s = len(self.clips) * FRAMES_PER_SEGMENT / FPS
        return f"the recording keeps the most recent {kept_s / 60:.1f} minutes (its disk quota)"

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
