"""`python -m benchmarks.stream_encode`: seconds to encode one streamed 384x640 segment (33 frames) on this machine's
CPU: the live clip the app makes now, against the two encodes it made before (a clip at the final MP4's setting plus
the growing MP4 itself). Frames are video-like: a moving gradient with texture, not noise (noise defeats any codec).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from helios.limits import FPS, FRAMES_PER_SEGMENT
from helios.media import MP4_PARAMS, _h264_writer, encode_clip, join_videos


def segment(k: int, height=384, width=640) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = np.random.default_rng(0).integers(0, 24, (height, width, 1), dtype=np.uint8)
    frames = []
    for t in range(k * FRAMES_PER_SEGMENT, (k + 1) * FRAMES_PER_SEGMENT):
        r = (x + 4 * t) % 256
        g = (y + 2 * t) % 256
        b = 128 + 100 * np.sin((x + y + 6 * t) / 40)
        frames.append(np.stack([r, g, b], -1).astype(np.uint8) + texture)
    return np.stack(frames)


def encode(frames: np.ndarray, path: Path, params: list[str], quality) -> None:
    writer = _h264_writer(path, frames.shape[2], frames.shape[1], FPS, params, quality)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame).tobytes())
    writer.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10)
    args = parser.parse_args(argv)
    segments = [segment(k) for k in range(args.segments)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        for k, frames in enumerate(segments):
            encode(frames, tmp / f"before-{k}.ts", ["-f", "mpegts"], 8)
            encode(frames, tmp / f"before-{k}.mp4", MP4_PARAMS, 8)
        before = (time.perf_counter() - start) / args.segments
        start = time.perf_counter()
        clips = [encode_clip(frames, tmp / f"live-{k}.mp4") for k, frames in enumerate(segments)]
        live = (time.perf_counter() - start) / args.segments
        start = time.perf_counter()
        video = join_videos(clips, tmp / "joined.mp4")
        join = time.perf_counter() - start
        result = dict(
            cpu_cores=os.cpu_count(), segment="33 frames of 384x640",
            before_two_encodes_s_per_segment=round(before, 3), live_one_encode_s_per_segment=round(live, 3),
            speedup=round(before / live, 2), join_s=round(join, 3),
            source_fps_the_encoder_keeps_up_with=round(FRAMES_PER_SEGMENT / live, 1),
            kib_per_segment_before=round(sum((tmp / f"before-{k}.ts").stat().st_size for k in range(args.segments)) / args.segments / 1024),
            kib_per_segment_live=round(sum(c.stat().st_size for c in clips) / args.segments / 1024),
            mp4_kib=round(video.stat().st_size / 1024),
        )
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
