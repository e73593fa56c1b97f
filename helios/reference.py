"""diffusers' own pipeline on a loaded model's components, as one side of a comparison: the correctness oracle our
engine is tested against (tests/test_parity.py), run on the same weights with no second copy of them. It is called as
`HeliosPyramidPipeline.__call__` / `HeliosPipeline.__call__` of diffusers 0.42.1 take a request, takes one prompt, and
hands out the whole video once it is decoded."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from PIL import Image

from .errors import BadInput
from .loading import HeliosModel
from .request import GenerationRequest

ENGINES = ("ours", "diffusers")


def check_reference_request(request: GenerationRequest) -> None:
    """What diffusers' pipeline cannot take, refused before anything runs."""
    if len(request.timeline.prompts) != 1:
        raise BadInput("diffusers' pipeline takes one prompt: give the diffusers side a single-prompt timeline.")
    if request.after is not None:
        raise BadInput("diffusers' pipeline cannot continue a run: continue with our engine.")


def reference_frames(model: HeliosModel, request: GenerationRequest) -> np.ndarray:
    """The request's frames (T, H, W, 3) uint8 from diffusers' pipeline, on the model's own modules."""
    from diffusers import HeliosPipeline, HeliosPyramidPipeline

    check_reference_request(request)
    flavour, s = model.flavour, request.settings
    parts = dict(tokenizer=model.tokenizer, text_encoder=model.text_encoder, vae=model.vae, scheduler=model.scheduler,
                 transformer=model.transformer)
    if flavour.pyramid:
        pipe = HeliosPyramidPipeline(**parts, is_cfg_zero_star=flavour.cfg_zero_star, is_distilled=flavour.distilled)
    else:
        pipe = HeliosPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(
        prompt=request.timeline.prompts[0], negative_prompt=s.negative_prompt or None, height=s.height, width=s.width,
        num_frames=s.num_frames, generator=torch.Generator(model.device).manual_seed(s.seed), output_type="np",
        guidance_scale=flavour.default_guidance if s.guidance_scale is None else s.guidance_scale,
        history_sizes=list(s.history_sizes),
    )
    if flavour.pyramid:
        steps = s.pyramid_steps or flavour.default_pyramid_steps
        kwargs.update(pyramid_num_inference_steps_list=list(steps), is_amplify_first_chunk=flavour.distilled)
    else:
        kwargs["num_inference_steps"] = s.num_inference_steps or flavour.default_steps
    if request.image is not None:
        kwargs["image"] = request.image
    if request.video is not None:
        kwargs["video"] = [Image.fromarray(f) for f in request.video]
    with torch.inference_mode(), _contiguous_output(model.transformer):
        video = pipe(**kwargs).frames[0]
    return (np.asarray(video) * 255).round().astype(np.uint8)


@contextlib.contextmanager
def _contiguous_output(transformer):
    """diffusers 0.42.1's CFG-Zero* calls .view() on the transformer's output, which is not contiguous on every
    device: the same values, contiguous, for the pipeline's call only."""
    forward, own = transformer.forward, "forward" in vars(transformer)

    def contiguous(*args, **kwargs):
        out = forward(*args, **kwargs)
        return (out[0].contiguous(), *out[1:]) if isinstance(out, tuple) else out

    transformer.forward = contiguous
    try:
        yield
    finally:
        if own:
            transformer.forward = forward
        else:
            del transformer.forward
