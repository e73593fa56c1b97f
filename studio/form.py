"""Turning the app's form values into an engine request, and timelines into editor rows and back."""

from __future__ import annotations

import math

from helios.errors import BadInput
from helios.media import read_image, read_video
from helios.request import GenerationRequest, GenerationSettings
from helios.timeline import FRAMES_PER_SEGMENT, PromptTimeline, TimelineEntry

RESOLUTIONS = {"384x640": (384, 640), "320x576": (320, 576), "256x448": (256, 448), "192x320": (192, 320), "128x192": (128, 192)}
STEP_PRESETS = ("1,1,1", "2,2,2", "3,3,3")
UNITS = {"seconds": "second", "segments": "segment"}
MAX_SEGMENTS = 60
MAX_CONTEXT_FRAMES = 33 * 60


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def timeline_from_rows(rows, unit: str, crossfade) -> PromptTimeline:
    """Blank rows are ignored; anything else must be a start number and a prompt."""
    entries = []
    for n, row in enumerate(rows or [], 1):
        start, prompt = (_cell(v) for v in (list(row) + ["", ""])[:2])
        if not start and not prompt:
            continue
        try:
            number = float(start) if start else 0.0
        except ValueError:
            raise BadInput(f"Timeline row {n}: start must be a number, not {start!r}.") from None
        entries.append(TimelineEntry(int(number) if number.is_integer() else number, prompt, UNITS.get(unit, "second")))
    return PromptTimeline(tuple(entries), int(crossfade))


def rows_from_timeline(timeline: PromptTimeline) -> tuple[list[list], str, int]:
    units = {e.unit for e in timeline.entries}
    unit = "segments" if units == {"segment"} else "seconds"
    rows = [[e.start if e.unit == UNITS[unit] else round(e.segment * FRAMES_PER_SEGMENT / 24, 2), e.prompt] for e in timeline.entries]
    return rows, unit, timeline.crossfade


def parse_steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(x) for x in str(text).split(","))
    except ValueError:
        raise BadInput(f"Steps per stage are whole numbers separated by commas, like 2,2,2 (got {text!r}).") from None
    return steps


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


def build_request(rows, unit, crossfade, image_path, video_path, segments, steps, seed, resolution, negative="") -> GenerationRequest:
    timeline = timeline_from_rows(rows, unit, crossfade)
    height, width = parse_resolution(resolution)
    if not isinstance(segments, (int, float)) or not 1 <= int(segments) <= MAX_SEGMENTS:
        raise BadInput(f"Length must be 1 to {MAX_SEGMENTS} segments ({MAX_SEGMENTS * FRAMES_PER_SEGMENT / 24:.0f} s); continue the video for more.")
    if image_path and video_path:
        raise BadInput("Give an image or a video, not both: an image starts a video, a video is continued.")
    settings = GenerationSettings(
        height=height, width=width, num_frames=int(segments) * FRAMES_PER_SEGMENT, pyramid_steps=parse_steps(steps),
        seed=int(seed), negative_prompt=negative or "",
    )
    image = read_image(image_path) if image_path else None
    video = read_video(video_path, max_frames=MAX_CONTEXT_FRAMES) if video_path else None
    request = GenerationRequest(timeline, settings, image=image, video=video)
    timeline.check(settings.num_segments)
    return request
