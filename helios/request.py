"""What to generate: the settings a user chooses and the context (image or video) that picks the task."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .timeline import FRAMES_PER_SEGMENT, PromptTimeline


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
    max_sequence_length: int = 512

    @property
    def num_segments(self) -> int:
        return max(1, -(-max(self.num_frames, 1) // FRAMES_PER_SEGMENT))

    @property
    def output_frames(self) -> int:
        """The reference trims the decoded frames to 4k+1; so do we."""
        raw = self.num_segments * FRAMES_PER_SEGMENT
        return (raw - 1) // 4 * 4 + 1


@dataclass(frozen=True)
class GenerationRequest:
    timeline: PromptTimeline
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    image: Image.Image | None = None
    video: np.ndarray | None = None

    @property
    def task(self) -> str:
        if self.video is not None:
            return "video-to-video"
        if self.image is not None:
            return "image-to-video"
        return "text-to-video"
