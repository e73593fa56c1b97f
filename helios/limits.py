"""Helios's geometry and the limits of one request: the single place every other module reads them from."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BadInput

FPS = 24
LATENT_FRAMES = 9
"""Latent frames per segment; the VAE's 4x temporal compression makes them 33 video frames."""
FRAMES_PER_SEGMENT = (LATENT_FRAMES - 1) * 4 + 1
SPATIAL_COMPRESSION = 8



@dataclass(frozen=True)
class Limits:
    """What one request may ask for; the engine refuses more before any work starts. Those who host the app change
    them with its flags (`--max-segments`, `--max-steps`); the page shows them where they apply."""

    max_segments: int = 60
    """Per request (82 s of video); a longer video is made by continuing it."""
    max_steps: int = 50
    """Per pyramid stage, and for the Base model's single schedule: past it a request holds the GPU for minutes."""

    @property
    def max_context_frames(self) -> int:
        """An uploaded video is VAE-encoded whole before the first segment: this bounds that work and its memory."""
        return FRAMES_PER_SEGMENT * self.max_segments


MAX_PROMPT_TOKENS = 512
"""UMT5 tokens per prompt, as the reference pipelines encode it; longer prompts are cut there."""
MIN_CONTEXT_FRAMES = FRAMES_PER_SEGMENT
MAX_UPLOAD = "200mb"
MAX_SEED = 2**63 - 1
"""The largest seed a torch generator takes."""


def output_frames(segments: int) -> int:
    """The reference trims a video of whole segments to 4k+1 frames; so do we."""
    return (segments * FRAMES_PER_SEGMENT - 1) // 4 * 4 + 1


def parse_steps(text: str) -> tuple[int, ...]:
    """'2,2,2' -> (2, 2, 2): the one reader of the steps format, for the CLI, the app and the benchmark."""
    try:
        return tuple(int(x) for x in str(text).replace(" ", "").split(","))
    except ValueError:
        raise BadInput(f"Steps per stage are whole numbers separated by commas, like 2,2,2 (got {text!r}).") from None
