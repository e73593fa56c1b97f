"""Uploads are bounded by the request, not by their own resolution: a huge image or video is resized as it is read."""

import imageio_ffmpeg
import numpy as np
from PIL import Image

from helios.media import read_image, read_video


def write_video(path, frames, height, width):
    writer = imageio_ffmpeg.write_frames(
        str(path), (width, height), fps=24, macro_block_size=1, ffmpeg_log_level="error"
    )
    writer.send(None)
    for t in range(frames):
        writer.send(np.full((height, width, 3), 40 + t, np.uint8).tobytes())
    writer.close()
    return path


def test_a_1080p_video_is_decoded_at_the_request_size(tmp_path):
    video = read_video(write_video(tmp_path / "big.mp4", 40, 1080, 1920), size=(128, 192))
    assert video.shape == (40, 128, 192, 3)
    assert abs(int(video[10].mean()) - 50) <= 3, "the frames are the video's, scaled"


def test_a_video_no_larger_than_the_request_keeps_its_pixels(tmp_path):
    assert read_video(write_video(tmp_path / "small.mp4", 34, 96, 160), size=(128, 192)).shape == (34, 96, 160, 3)


def test_a_huge_image_is_resized_as_the_pipeline_would(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "big.png")
    image = read_image(tmp_path / "big.png", size=(128, 192))
    expected = Image.fromarray(pixels).resize((192, 128), Image.Resampling.LANCZOS)
    assert image.size == (192, 128) and np.array_equal(np.asarray(image), np.asarray(expected))
