"""The three Helios checkpoints share one architecture and differ in how they sample; this names each way."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ModelUnavailable


@dataclass(frozen=True)
class Flavour:
    name: str
    pyramid: bool
    distilled: bool = False
    cfg_zero_star: bool = False
    default_pyramid_steps: tuple[int, ...] = ()
    default_steps: int = 50
    default_guidance: float = 1.0

    @property
    def size_multiple(self) -> int:
        """Height and width must survive the VAE (8x), the patch (2x) and each pyramid halving."""
        stages = len(self.default_pyramid_steps) if self.pyramid else 1
        return 16 * 2 ** (stages - 1)


DISTILLED = Flavour("distilled", pyramid=True, distilled=True, default_pyramid_steps=(2, 2, 2))
MID = Flavour("mid", pyramid=True, cfg_zero_star=True, default_pyramid_steps=(20, 20, 20), default_guidance=5.0)
BASE = Flavour("base", pyramid=False, default_steps=50, default_guidance=5.0)


def flavour_from_index(index: dict) -> Flavour:
    """Read the flavour off a diffusers `model_index.json`."""
    cls = index.get("_class_name")
    if cls == "HeliosPipeline":
        return BASE
    if cls == "HeliosPyramidPipeline":
        if index.get("is_distilled"):
            return DISTILLED
        return MID
    raise ModelUnavailable(
        f"model_index.json names {cls!r}, not a Helios pipeline: point --model at a Helios checkpoint."
    )
