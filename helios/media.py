"""Reading the user's image and video files, and writing finished videos without leaving half-written files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import BadInput, HeliosError
from .limits import FPS, MIN_CONTEXT_FRAMES, Limits

OUTPUT_SUFFIXES = (".mp4", ".npy")


def read_image(path: str | Path, size: tuple[int, int] | None = None) -> Image.Image:
    """An image larger than `size` (height, width) is resized to it at once, as the pipeline would resize it (PIL,
    Lanczos): the same pixels, and a huge upload is not held whole."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"No image file at {path}: check the path.")
    try:
        with Image.open(path) as img:
            if size and img.width * img.height > size[0] * size[1]:
                return img.convert("RGB").resize((size[1], size[0]), Image.Resampling.LANCZOS)
            img.load()
            return img.convert("RGB")
    except Image.DecompressionBombError:
        raise BadInput(
            f"{path.name} has too many pixels to read safely: scale it down below 8000x8000 and try again."
        ) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise BadInput(f"{path.name} is not an image this app can read: use a PNG, JPEG or WebP file.") from None


def read_video(
    path: str | Path, size: tuple[int, int] | None = None, max_frames: int = Limits().max_context_frames
) -> np.ndarray:
    """All frames as uint8 (T, H, W, 3); continuing a video needs at least one full segment of it. A video larger
    than `size` (height, width) is scaled to it while it is decoded (FFmpeg, Lanczos), so its memory is bounded by
    the request, not by the upload's resolution."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"No video file at {path}: check the path.")
    frames = []
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        w, h = meta["size"]
        if size and w * h > size[0] * size[1]:
            reader.close()
            h, w = size
            scale = ["-vf", f"scale={w}:{h}:flags=lanczos"]
            reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24", output_params=scale)
            next(reader)
        for raw in reader:
            frames.append(np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3))
            if len(frames) > max_frames:
                reader.close()
                raise BadInput(
                    f"{path.name} has more than {max_frames} frames ({max_frames / FPS:.0f} s): trim it and try again."
                )
    except BadInput:
        raise
    except (RuntimeError, OSError, StopIteration, KeyError, ValueError) as exc:
        if "Input #0" not in str(exc):
            raise BadInput(f"{path.name} is not a video this app can read: use an MP4, WebM or MOV file.") from None
    if not frames:
        raise BadInput(f"{path.name} has no frames: choose a video with at least {MIN_CONTEXT_FRAMES} frames.")
    if len(frames) < MIN_CONTEXT_FRAMES:
        raise BadInput(
            f"{path.name} has {len(frames)} frames; continuing a video needs at least {MIN_CONTEXT_FRAMES} "
            f"({MIN_CONTEXT_FRAMES / FPS:.1f} s at {FPS} fps)."
        )
    return np.stack(frames)


def video_frames(path: str | Path) -> Iterator[np.ndarray]:
    """A video's frames one at a time, uint8 (H, W, 3): for passes over whole videos in bounded memory."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    w, h = next(reader)["size"]
    try:
        for raw in reader:
            yield np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
    finally:
        reader.close()


def check_output_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise BadInput(f"Output {path.name} must end in .mp4 (H.264 video) or .npy (raw uint8 frames).")
    if not path.parent.is_dir():
        raise BadInput(f"The folder {path.parent} does not exist: create it or choose another output path.")
    return path


class VideoWriter:
    """Takes frames segment by segment; the file appears under its name only when `close` succeeds."""

    def __init__(self, path: str | Path, fps: int = FPS):
        self.path = check_output_path(path)
        self.fps = fps
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}-", suffix=self.path.suffix)
        os.close(fd)
        self._tmp = Path(tmp)
        self._frames: list[np.ndarray] = []
        self._ffmpeg = None
        self.count = 0

    def add(self, frames: np.ndarray) -> None:
        if self.path.suffix.lower() == ".npy":
            self._frames.append(frames)
        else:
            if self._ffmpeg is None:
                self._ffmpeg = _h264_writer(self._tmp, frames.shape[2], frames.shape[1], self.fps, MP4_PARAMS)
            for frame in frames:
                self._ffmpeg.send(np.ascontiguousarray(frame).tobytes())
        self.count += len(frames)

    def close(self, comment: str | None = None) -> Path:
        """`comment` goes into an MP4's metadata (the recipe), added by a stream copy: no second encode."""
        if self.path.suffix.lower() == ".npy":
            with open(self._tmp, "wb") as f:
                np.save(f, np.concatenate(self._frames) if self._frames else np.zeros((0, 0, 0, 3), np.uint8))
        elif self._ffmpeg is not None:
            self._ffmpeg.close()
            if comment:
                join_videos([self._tmp], self._tmp, comment)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._ffmpeg is not None:
            try:
                self._ffmpeg.close()
            except Exception:
                pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


MP4_PARAMS = ["-movflags", "+faststart"]
LIVE_PARAMS = [
    "-preset", "veryfast", "-tune", "zerolatency", "-crf", "18",
    "-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof",
]
"""For streamed segments, encoded while the next one is made: x264's fast preset without lookahead or B-frames
(each clip must be ready at once), at a quality level still visually lossless for this content, as a fragmented
MP4 that a browser's Media Source appends as it is (its own header first, so any clip can start a stream)."""


def _h264_writer(path: Path, width: int, height: int, fps: int, params: list[str], quality: int | None = 8):
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(
        str(path), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=quality,
        macro_block_size=2, ffmpeg_log_level="error", output_params=params,
    )
    writer.send(None)
    return writer


def encode_clip(frames: np.ndarray, path: str | Path, fps: int = FPS) -> Path:
    """One self-contained fragmented-MP4 H.264 clip, encoded once: streamed as it is, joined into the MP4 at the end."""
    path = Path(path)
    writer = _h264_writer(path, frames.shape[2], frames.shape[1], fps, LIVE_PARAMS, quality=None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame).tobytes())
    writer.close()
    return path


def join_videos(parts: list[Path], out: Path, comment: str | None = None) -> Path:
    """The parts (MP4 clips of one encoder setting, fragmented or not) as one MP4, their H.264 streams copied as they
    are: no second encode, no quality lost; `comment` is written into its metadata."""
    import subprocess

    import imageio_ffmpeg

    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p.resolve()}'\n" for p in parts))
    tmp = out.with_name(f".{out.name}")
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
        "-c", "copy", *(["-metadata", f"comment={comment}"] if comment else []), *MP4_PARAMS, "-f", "mp4", str(tmp),
    ]
    try:
        subprocess.run(command, check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        tmp.unlink(missing_ok=True)
        raise HeliosError(
            f"Could not assemble the video ({exc.stderr.decode(errors='replace').strip()[:200]})."
        ) from None
    finally:
        listing.unlink(missing_ok=True)
    os.replace(tmp, out)
    return out
