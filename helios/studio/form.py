"""The app's form values mapped to an engine request, and timelines to editor rows and back.

Only mapping lives here: the engine is the one validator (`Engine.start`), so the form adds no rules of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from helios.errors import BadInput
from helios.limits import FPS, FRAMES_PER_SEGMENT, Limits, parse_steps
from helios.lora.file import LoraFile
from helios.media import read_image, read_video
from helios.request import Continuation, GenerationRequest, GenerationSettings
from helios.timeline import PromptTimeline, TimelineEntry

RESOLUTIONS = {
    "384x640": (384, 640), "320x576": (320, 576), "256x448": (256, 448), "192x320": (192, 320), "128x192": (128, 192),
    "64x128": (64, 128),
}
"""The last is the tiny preview's default on a CPU: its frames are noise, and a third of the pixels decode in about
a third of the time (1.2-1.7 s a segment on 2 cores instead of 5)."""
STEP_PRESETS = ("1,1,1", "2,2,2", "3,3,3")
UNITS = {"seconds": "second", "segments": "segment"}


@dataclass(frozen=True)
class Form:
    """The page's inputs by name: handlers and the ZeroGPU time budget read these, never positions."""

    rows: list
    unit: str
    crossfade: int
    image: str | None
    video: str | None
    segments: int
    steps: str
    seed: int
    resolution: str


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def whole(value, what: str) -> int:
    """A form number as an int; NaN, infinities, fractions and non-numbers are refused, naming the field."""
    try:
        number = float(value)
        if number.is_integer():
            return int(value) if isinstance(value, int) else int(number)
    except (TypeError, ValueError, OverflowError):
        pass
    raise BadInput(f"{what} must be a whole number (got {_cell(value)[:40]!r}).")


def timeline_from_rows(rows, unit: str, crossfade, adapters: tuple[str, ...] = ()) -> PromptTimeline:
    """Blank rows are ignored; anything else must be a start number and a prompt, then a strength (or nothing: the
    row before's) for each of `adapters`, the LoRA adapters' columns."""
    entries = []
    for n, row in enumerate(rows or [], 1):
        cells = [_cell(v) for v in (list(row) + [""] * (2 + len(adapters)))[:2 + len(adapters)]]
        start, prompt = cells[:2]
        if not start and not prompt:
            continue
        try:
            number = float(start) if start else 0.0
        except ValueError:
            raise BadInput(f"Timeline row {n}: start must be a number, not {start!r}.") from None
        lora = []
        for name, cell in zip(adapters, cells[2:]):
            try:
                lora += [(name, float(cell))] if cell else []
            except ValueError:
                raise BadInput(
                    f"Timeline row {n}: the strength of LoRA {name} must be a number, not {cell!r}."
                ) from None
        entries.append(TimelineEntry(int(number) if number.is_integer() else number, prompt, UNITS.get(unit, "second"),
                                     lora=tuple(lora)))
    return PromptTimeline(tuple(entries), whole(crossfade, "Crossfade"))


def rows_from_timeline(timeline: PromptTimeline, adapters: tuple[str, ...] = ()) -> tuple[list[list], str, int]:
    """The editor's rows; a timeline naming an adapter the page has no column for is refused."""
    units = {e.unit for e in timeline.entries}
    unit = "segments" if units == {"segment"} else "seconds"
    unknown = [name for name in timeline.adapters if name not in adapters]
    if unknown:
        loaded = f"loaded: {', '.join(adapters)}" if adapters else "none is loaded"
        raise BadInput(f"The timeline names LoRA {unknown[0]!r}, which the app has not loaded ({loaded}): start it "
                       "with --lora.")
    rows = [
        [e.start if e.unit == UNITS[unit] else round(e.segment * FRAMES_PER_SEGMENT / FPS, 2), e.prompt,
         *(dict(e.lora).get(name, "") for name in adapters)]
        for e in timeline.entries
    ]
    return rows, unit, timeline.crossfade


def parse_resolution(text: str) -> tuple[int, int]:
    if text not in RESOLUTIONS:
        raise BadInput(f"Resolution {text!r} is not offered: choose one of {', '.join(RESOLUTIONS)}.")
    return RESOLUTIONS[text]


def task_of(image, video) -> str:
    if image and video:
        return "Both an image and a video are given: remove one (an image starts a video, a video is continued)."
    if video:
        return "Mode: **video-to-video** (continues the uploaded video)"
    if image:
        return "Mode: **image-to-video** (starts from the uploaded image)"
    return "Mode: **text-to-video**"


def build_request(form: Form, after: Continuation | None = None, limits: Limits = Limits(),
                  loras: tuple[LoraFile, ...] = ()) -> GenerationRequest:
    """The request the form describes, with the app's LoRA adapters; `after` continues a finished run (its uploads are
    then not read). A video is read only up to the frames `limits` allow, so an upload cannot ask for more memory
    than a request may."""
    height, width = parse_resolution(form.resolution)
    settings = GenerationSettings(
        height=height, width=width, num_frames=whole(form.segments, "Segments") * FRAMES_PER_SEGMENT,
        pyramid_steps=parse_steps(form.steps), seed=whole(form.seed or 0, "The seed"),
    )
    image = read_image(form.image, (height, width)) if form.image and after is None else None
    video = read_video(form.video, (height, width), limits.max_context_frames) if form.video and after is None else None
    timeline = timeline_from_rows(form.rows, form.unit, form.crossfade, tuple(f.name for f in loras))
    return GenerationRequest(timeline, settings, image=image, video=video, after=after, loras=loras)
