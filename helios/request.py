"""What to generate: the settings a user chooses and the context that picks the task (nothing, an image, a video,
or an earlier run to carry on from)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from .limits import FRAMES_PER_SEGMENT, output_frames
from .lora.file import LoraFile
from .timeline import PromptTimeline


@dataclass(frozen=True)
class GenerationSettings:
    """`None` means: the loaded flavour's own default (steps, guidance)."""

    height: int = 384
    width: int = 640
    num_frames: int = 132
    pyramid_steps: tuple[int, ...] | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    negative_prompt: str = ""
    seed: int = 0
    history_sizes: tuple[int, int, int] = (16, 2, 1)

    @property
    def num_segments(self) -> int:
        return max(1, -(-max(self.num_frames, 1) // FRAMES_PER_SEGMENT))

    @property
    def output_frames(self) -> int:
        return output_frames(self.num_segments)


@dataclass(frozen=True)
class Continuation:
    """Where a run stopped, exactly: continuing from it gives the frames one longer run would have given.

    `held_frames` were decoded but trimmed away (the video is cut to 4k+1 frames); a continuation shows them first.
    """

    model: str
    next_segment: int
    frames_shown: int
    held_frames: np.ndarray
    prefix: torch.Tensor | None
    history: torch.Tensor
    generator_state: torch.Tensor
    height: int
    width: int
    history_sizes: tuple[int, int, int]


@dataclass(frozen=True)
class GenerationRequest:
    timeline: PromptTimeline
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    image: Image.Image | None = None
    video: np.ndarray | None = None
    after: Continuation | None = None
    loras: tuple[LoraFile, ...] = ()
    """LoRA adapters, each at its file's strength wherever the timeline sets none."""
    endless: bool = False
    """A live stream: segments go on until the run is paused or stopped (`settings.num_frames` is not used), and
    every frame is shown (no trim to 4k+1)."""

    @property
    def task(self) -> str:
        if self.after is not None:
            return "continue-run"
        if self.video is not None:
            return "video-to-video"
        if self.image is not None:
            return "image-to-video"
        return "text-to-video"

    @property
    def first_segment(self) -> int:
        return self.after.next_segment if self.after else 0

    @property
    def total_segments(self) -> int | None:
        """The video's segments once this request is done, the continued ones included: the timeline spans them.
        None for an endless request."""
        return None if self.endless else self.first_segment + self.settings.num_segments
