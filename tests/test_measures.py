"""The paper's measures on synthetic videos whose flicker, drift and likeness are known by construction."""

import numpy as np
import pytest

from helios.measures import LUMA, drift, frame_stats, segment_ssim, ssim, transition_flicker

SEGMENTS = [33, 33, 33]


def moving_texture(frames: int = 99, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A random texture sliding one pixel to the right a frame, wrapping round: every step changes the video alike,
    and every frame has the same colours."""
    texture = np.random.default_rng(seed).integers(40, 200, (height, width, 3)).astype(np.float32)
    return np.stack([np.roll(texture, t, axis=1) for t in range(frames)])


def moving_waves(frames: int = 99, height: int = 48, width: int = 64) -> np.ndarray:
    """Smooth colour waves drifting a pixel a frame: like a video, each step changes it a little (~3 levels)."""
    t, y, x = np.meshgrid(np.arange(frames), np.arange(height), np.arange(width), indexing="ij")
    channels = [
        120 + 40 * np.sin(2 * np.pi * (x - t) / width + c) + 30 * np.cos(2 * np.pi * y / height) for c in range(3)
    ]
    return np.stack(channels, axis=-1).astype(np.float32)


def as_video(frames: np.ndarray) -> np.ndarray:
    return np.clip(frames, 0, 255).round().astype(np.uint8)


def test_a_smooth_video_has_no_transition_flicker_and_a_jump_where_segments_meet_is_found():
    smooth = moving_waves()
    ratios = transition_flicker(frame_stats(as_video(smooth)), SEGMENTS)
    assert len(ratios) == 2 and all(0.8 < r < 1.25 for r in ratios), ratios
    jumped = smooth.copy()
    jumped[66:] += 15  # the third segment starts 15 levels brighter: a jump at the second boundary only
    ratios = transition_flicker(frame_stats(as_video(jumped)), SEGMENTS)
    assert 0.8 < ratios[0] < 1.25 and ratios[1] > 3, ratios


def test_drift_reads_the_brightness_colour_and_blur_put_in_each_segment():
    video = moving_texture()
    video[33:66] += 10  # segment 2: 10 levels brighter on every channel
    video[66:, :, :, 0] += 20  # segment 3: redder by 20
    blurred = video[66:].copy()
    for axis in (1, 2):  # and blurred with a 3-tap box
        blurred = (np.roll(blurred, 1, axis) + blurred + np.roll(blurred, -1, axis)) / 3
    video[66:] = blurred
    first, brighter, redder = drift(frame_stats(as_video(video)), SEGMENTS)
    assert first.colour == 0 and first.brightness == 0 and first.sharpness == 1
    assert brighter.brightness == pytest.approx(10, abs=0.3) and brighter.colour == pytest.approx(10 * 3**0.5, abs=0.5)
    assert brighter.sharpness == pytest.approx(1, abs=0.05)
    assert redder.brightness == pytest.approx(20 * LUMA[0], abs=0.5) and redder.colour == pytest.approx(20, abs=1)
    assert redder.sharpness < 0.5, "a 3-tap blur removes most of the texture's high frequencies"


def naive_ssim(a: np.ndarray, b: np.ndarray, k: int = 7) -> float:
    x, y = (f.astype(np.float64) @ LUMA.astype(np.float64) for f in (a, b))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(x.shape[0] - k + 1):
        for j in range(x.shape[1] - k + 1):
            wx, wy = x[i:i + k, j:j + k].ravel(), y[i:i + k, j:j + k].ravel()
            cov = np.cov(wx, wy)
            values.append(((2 * wx.mean() * wy.mean() + c1) * (2 * cov[0, 1] + c2))
                          / ((wx.mean() ** 2 + wy.mean() ** 2 + c1) * (cov[0, 0] + cov[1, 1] + c2)))
    return float(np.mean(values))


def test_ssim_is_the_windowed_definition_and_orders_likeness():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    noisy = as_video(a + rng.normal(0, 20, a.shape))
    assert ssim(a, noisy) == pytest.approx(naive_ssim(a, noisy), rel=1e-9)
    assert ssim(a, a) == pytest.approx(1.0)
    unrelated = rng.integers(0, 256, a.shape, dtype=np.uint8)
    assert ssim(a, unrelated) < 0.1 < ssim(a, noisy) < 1.0
    assert ssim(a, noisy) == pytest.approx(ssim(noisy, a))


def test_segment_ssim_finds_the_segment_that_differs():
    video = as_video(moving_texture())
    other = video.copy()
    other[33:66] = as_video(other[33:66] + np.random.default_rng(1).normal(0, 25, other[33:66].shape))
    same, changed, same_again = segment_ssim(iter(video), iter(other), SEGMENTS)
    assert same == pytest.approx(1.0) and same_again == pytest.approx(1.0) and changed < 0.9
