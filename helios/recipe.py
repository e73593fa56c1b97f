"""How a video was made, written beside it as JSON (and into the MP4's metadata), so that
`python -m helios generate --recipe video.json --out again.mp4` makes it again: on the same machine and settings,
the same frames.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from .errors import BadInput
from .lora.file import LoraFile
from .request import GenerationRequest, GenerationSettings
from .timeline import PromptTimeline

PACKAGES = ("torch", "diffusers", "torchao", "transformers", "gradio")
SETTINGS = (
    "height",
    "width",
    "num_frames",
    "pyramid_steps",
    "num_inference_steps",
    "guidance_scale",
    "negative_prompt",
    "seed",
)


@dataclass(frozen=True)
class Recipe:
    model: str
    model_hash: str
    flavour: str
    placement: dict
    timeline: dict
    settings: dict
    context: dict | None
    packages: dict
    gpu: str
    timings: dict
    measures: dict = dataclasses.field(default_factory=dict)
    """Flicker at each segment boundary and each segment's drift from the first (helios/measures.py)."""
    engine: str = "ours"
    """Which made the frames: "ours", or "diffusers" (its pipeline on the same weights, helios/reference.py)."""
    loras: list = dataclasses.field(default_factory=list)
    """Each LoRA adapter's file name, sha256 and strength where the timeline sets none."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, ensure_ascii=False)

    @classmethod
    def read(cls, path: str | Path) -> "Recipe":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data or (
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInput(
                f"{path.name} is not a Helios Studio recipe ({type(exc).__name__}): give the .json written beside a "
                "video."
            ) from None

    def request(self, image=None, video=None, loras: tuple[LoraFile, ...] = ()) -> GenerationRequest:
        """The request this recipe describes; its context (an image or video) and its LoRA files must be the ones
        it was made from."""
        given = {f.sha256: f for f in loras}
        for used in self.loras:
            if used["sha256"] not in given:
                raise BadInput(
                    f"This recipe used the LoRA {used['file']} (sha256 {used['sha256'][:12]}...): pass that file with "
                    "--lora."
                )
        loras = tuple(dataclasses.replace(given[u["sha256"]], strength=u["strength"]) for u in self.loras)
        if (self.context or {}).get("kind") == "image" and image is None:
            raise BadInput("This recipe starts from an image: pass the same one with --image.")
        if (self.context or {}).get("kind") == "video" and video is None:
            raise BadInput("This recipe continues a video: pass the same one with --video.")
        given = context_of(image, video)
        if given != self.context:
            raise BadInput("The image or video given is not the one this recipe was made from (its pixels differ).")
        values = dict(self.settings)
        if values.get("pyramid_steps") is not None:
            values["pyramid_steps"] = tuple(values["pyramid_steps"])
        return GenerationRequest(
            PromptTimeline.from_json(json.dumps(self.timeline)), GenerationSettings(**values), image=image, video=video,
            loras=loras,
        )


def context_of(image, video) -> dict | None:
    """The context's kind and the SHA-256 of its pixels as the engine receives them."""
    if image is not None:
        return dict(kind="image", sha256=hashlib.sha256(np.asarray(image).tobytes()).hexdigest())
    if video is not None:
        return dict(kind="video", sha256=hashlib.sha256(np.ascontiguousarray(video).tobytes()).hexdigest())
    return None


@functools.lru_cache(maxsize=8)
def model_hash(folder: Path | None) -> str:
    """A hub snapshot's commit, or a hash of the checkpoint's configs and weight headers (read in milliseconds)."""
    if folder is None:
        return "unknown"
    if folder.parent.name == "snapshots":
        return f"revision {folder.name}"
    digest = hashlib.sha256()
    for file in sorted(folder.rglob("*")):
        if file.suffix == ".json":
            digest.update(file.read_bytes())
        elif file.suffix == ".safetensors":
            with open(file, "rb") as f:
                length = int.from_bytes(f.read(8), "little")
                digest.update(f.read(length))
    return f"sha256 {digest.hexdigest()[:16]}"


def recipe_for(model, request: GenerationRequest, timings: dict, measures: dict | None = None,
               engine: str = "ours") -> Recipe:
    fit = model.fit
    s = request.settings
    return Recipe(
        model=model.source, model_hash=model_hash(model.folder), flavour=model.flavour.name,
        placement=dict(tier=fit.tier.name, fp8=fit.tier.fp8_weights, fp8_matmul=fit.fp8_matmul,
                       switches=dataclasses.asdict(fit.placement), cuda_graphs=fit.cuda_graphs),
        timeline=json.loads(request.timeline.to_json()),
        settings={name: getattr(s, name) for name in SETTINGS},
        context=context_of(request.image, request.video),
        packages={name: _version(name) for name in PACKAGES} | {"python": platform.python_version()},
        gpu=torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else "CPU",
        timings=timings,
        measures=measures or {},
        engine=engine,
        loras=[dict(file=f.path.name, sha256=f.sha256, strength=f.strength) for f in request.loras],
    )


def segment_timings(segment) -> dict:
    t = segment.timings
    return dict(
        index=segment.index, denoise_s=round(t.denoise_s, 3), decode_s=round(t.decode_s, 3), fps=round(segment.fps, 2)
    )


def timings_of(segments: list[dict], first_frame_s: float | None, elapsed_s: float, frames: int, device,
               host_link_bytes: int | None = None) -> dict:
    """What the run measured: per segment, to the first frame, overall, the GPU's peak memory, and the streamed
    blocks' bytes over the host link."""
    return dict(
        segments=segments,
        frames=frames,
        first_frame_s=None if first_frame_s is None else round(first_frame_s, 3),
        elapsed_s=round(elapsed_s, 3),
        overall_fps=round(frames / elapsed_s, 2) if elapsed_s else None,
        peak_gpu_gib=round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        host_link_gib=None if host_link_bytes is None else round(host_link_bytes / 2**30, 2),
    )


def sidecar(video: Path) -> Path:
    return video.with_suffix(".json")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
