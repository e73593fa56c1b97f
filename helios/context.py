"""The context a request starts from, as latents: the first-frame anchor (None for text-to-video) and the history the
first segment sees. Mirrors what `HeliosPyramidPipeline.__call__` of diffusers 0.42.1 builds before its first chunk,
with the same random draws in the same order, so one seed gives the reference's frames."""

from __future__ import annotations

import functools

import torch
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from PIL import Image

from .limits import FRAMES_PER_SEGMENT, SPATIAL_COMPRESSION
from .loading import HeliosModel
from .request import GenerationRequest
from .vae_passes import encode_pixels

IMAGE_NOISE_SIGMA = (0.111, 0.135)
"""diffusers' `image_noise_sigma_min` / `_max`: the noise blended into the first frame's latents."""
VIDEO_NOISE_SIGMA = (0.111, 0.135)
"""diffusers' `video_noise_sigma_min` / `_max`: into the held-still image's and a continued video's latents."""


class ContextLatents:
    """Encodes a request's image or video with the model's VAE, in wide passes."""

    def __init__(self, model: HeliosModel, latents_per_pass: int):
        self.model = model
        self.latents_per_pass = latents_per_pass
        self.video_processor = VideoProcessor(vae_scale_factor=SPATIAL_COMPRESSION)

    @functools.cached_property
    def latent_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The VAE's per-channel latent mean and 1/std, shaped to broadcast over (B, C, T, H, W)."""
        cfg, vae = self.model.vae.config, self.model.vae
        shape = (1, cfg.z_dim, 1, 1, 1)
        mean = torch.tensor(cfg.latents_mean).view(shape).to(self.model.device, vae.dtype)
        return mean, 1.0 / torch.tensor(cfg.latents_std).view(shape).to(self.model.device, vae.dtype)

    def prepare(self, request: GenerationRequest, generator: torch.Generator):
        """The anchor (None for text-to-video) and the initial history latents."""
        s = request.settings
        c = self.model.transformer.config.in_channels
        history = torch.zeros(
            1, c, sum(s.history_sizes), s.height // SPATIAL_COMPRESSION, s.width // SPATIAL_COMPRESSION,
            device=self.model.device,
        )
        if request.image is not None:
            prefix, fake = self.image_latents(request.image, s.height, s.width, generator)
            return prefix, torch.cat([history[:, :, :-1], fake], dim=2)
        if request.video is not None:
            prefix, video_latents = self.video_latents(request.video, s.height, s.width, generator)
            keep = history.shape[2] - video_latents.shape[2]
            history = torch.cat([history[:, :, :keep], video_latents], dim=2) if keep > 0 else video_latents
            return prefix, history[:, :, -sum(s.history_sizes):]
        return None, history

    def image_latents(self, image, height: int, width: int, generator: torch.Generator):
        """The image's latents and those of the image held still for a segment (its last latent stands in for
        history), both noised: `HeliosPyramidPipeline.prepare_image_latents` and the noise its `__call__` adds."""
        pixels = self.video_processor.preprocess(image, height=height, width=width)
        latents = self._encode(pixels.unsqueeze(2), generator)
        still = pixels.unsqueeze(2).repeat(1, 1, FRAMES_PER_SEGMENT, 1, 1)
        fake = self._encode(still, generator)[:, :, -1:]
        return self._noisy(latents, generator, IMAGE_NOISE_SIGMA), self._noisy(fake, generator, VIDEO_NOISE_SIGMA)

    def video_latents(self, frames, height: int, width: int, generator: torch.Generator):
        """The first frame's latents and the latents of the video's last whole segments, noised per frame:
        `HeliosPyramidPipeline.prepare_video_latents` and the noise its `__call__` adds."""
        video = self._video_pixels(frames, height, width)
        chunks = video.shape[2] // FRAMES_PER_SEGMENT
        start = video.shape[2] - chunks * FRAMES_PER_SEGMENT
        prefix = self._encode(video[:, :, :1], generator)
        latents = [
            self._encode(video[:, :, start + i * FRAMES_PER_SEGMENT: start + (i + 1) * FRAMES_PER_SEGMENT], generator)
            for i in range(chunks)
        ]
        prefix = self._noisy(prefix, generator, IMAGE_NOISE_SIGMA)
        noisy = [self._noisy(chunk, generator, VIDEO_NOISE_SIGMA, per_frame=True) for chunk in latents]
        return prefix, torch.cat(noisy, dim=2)

    def _video_pixels(self, frames, height: int, width: int) -> torch.Tensor:
        """(T, H, W, 3) uint8 to (1, 3, T, H, W) in [-1, 1]. Frames already at the size (the readers scale uploads
        to it) are sent as uint8 and scaled on the GPU with the processor's own arithmetic: the same values, without
        a PIL round trip per frame on the CPU (0.35 s for 66 frames)."""
        if frames.shape[1:3] != (height, width):
            return self.video_processor.preprocess_video(
                [Image.fromarray(f) for f in frames], height=height, width=width
            )
        pixels = torch.from_numpy(frames).to(self.model.device).permute(3, 0, 1, 2).unsqueeze(0).float()
        return (pixels / 255.0) * 2.0 - 1.0

    def _encode(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mean, inv_std = self.latent_stats
        pixels = pixels.to(self.model.device, self.model.vae.dtype)
        latents = encode_pixels(self.model.vae, pixels, self.latents_per_pass).sample(generator=generator)
        return ((latents - mean) * inv_std).float()

    def _noisy(self, latents: torch.Tensor, generator: torch.Generator, sigma_range: tuple[float, float],
               per_frame: bool = False) -> torch.Tensor:
        """Blend conditioning latents with a little noise, drawn as the reference draws it."""
        lo, hi = sigma_range
        device = self.model.device
        count = latents.shape[2] if per_frame else 1
        sigma = torch.rand(count, device=device, generator=generator) * (hi - lo) + lo
        if per_frame:
            sigma = sigma.view(1, 1, count, 1, 1)
        return sigma * randn_tensor(latents.shape, generator=generator, device=device) + (1 - sigma) * latents
