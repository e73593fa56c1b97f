"""Draws the app's example images, renders its example clip and writes its example timelines.

Run `python assets/make_assets.py` to rebuild them; everything here is made by this code, nothing is copied.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from helios.media import VideoWriter
from helios.timeline import PromptTimeline, TimelineEntry

HERE = Path(__file__).resolve().parent
W, H = 640, 384


def sunrise() -> Image.Image:
    y = np.linspace(0, 1, H)[:, None, None]
    sky = (1 - y) * np.array([255, 170, 90]) + y * np.array([60, 80, 160])
    img = Image.fromarray(np.broadcast_to(sky, (H, W, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    draw.ellipse((W / 2 - 60, H * 0.55 - 60, W / 2 + 60, H * 0.55 + 60), fill=(255, 225, 120))
    draw.rectangle((0, H * 0.6, W, H), fill=(20, 60, 110))
    for i in range(12):
        yy = H * 0.62 + i * 12
        draw.line((W / 2 - 80 + i * 5, yy, W / 2 + 80 - i * 5, yy), fill=(255, 200, 110), width=2)
    return img


def skyline() -> Image.Image:
    rng = np.random.default_rng(3)
    img = Image.new("RGB", (W, H), (25, 20, 60))
    draw = ImageDraw.Draw(img)
    for _ in range(80):
        draw.point((int(rng.integers(0, W)), int(rng.integers(0, H // 2))), fill=(240, 240, 200))
    x = 0
    while x < W:
        bw, bh = int(rng.integers(30, 80)), int(rng.integers(80, 300))
        draw.rectangle((x, H - bh, x + bw, H), fill=(40, 40, 55))
        for wy in range(H - bh + 10, H - 10, 18):
            for wx in range(x + 6, x + bw - 8, 14):
                if rng.random() < 0.45:
                    draw.rectangle((wx, wy, wx + 6, wy + 8), fill=(255, 210, 100))
        x += bw + int(rng.integers(2, 10))
    return img


def orbit_clip(frames: int = 48, size: tuple[int, int] = (192, 320)) -> np.ndarray:
    h, w = size
    out = []
    for t in range(frames):
        img = Image.new("RGB", (w, h), (15, 25, 45))
        draw = ImageDraw.Draw(img)
        draw.ellipse((w / 2 - 30, h / 2 - 30, w / 2 + 30, h / 2 + 30), fill=(250, 190, 60))
        a = 2 * math.pi * t / frames
        cx, cy = w / 2 + 100 * math.cos(a), h / 2 + 55 * math.sin(a)
        draw.ellipse((cx - 14, cy - 14, cx + 14, cy + 14), fill=(80, 160, 255))
        out.append(np.asarray(img))
    return np.stack(out)


def main() -> None:
    (HERE / "images").mkdir(exist_ok=True)
    (HERE / "clips").mkdir(exist_ok=True)
    (HERE / "timelines").mkdir(exist_ok=True)
    sunrise().save(HERE / "images" / "sunrise.png")
    skyline().save(HERE / "images" / "skyline.png")
    with VideoWriter(HERE / "clips" / "orbit.mp4") as writer:
        writer.add(orbit_clip())
    storm = PromptTimeline(
        (
            TimelineEntry(0, "A calm sea at sunrise, gentle waves, warm light, cinematic wide shot", "second"),
            TimelineEntry(4, "Dark clouds gather over the sea, the wind picks up, waves grow", "second"),
            TimelineEntry(8, "A violent storm at sea, lightning, huge waves crashing, rain", "second"),
        ),
        crossfade=2,
    )
    (HERE / "timelines" / "sea-storm.json").write_text(storm.to_json() + "\n")
    seasons = PromptTimeline(
        (
            TimelineEntry(0, "A lone oak tree on a hill in spring, fresh green leaves, flowers"),
            TimelineEntry(2, "The same oak tree in summer, full green canopy, bright sun"),
            TimelineEntry(4, "The same oak tree in autumn, orange and red leaves falling"),
            TimelineEntry(6, "The same oak tree in winter, bare branches covered in snow"),
        ),
        crossfade=1,
    )
    (HERE / "timelines" / "seasons.csv").write_text(seasons.to_csv())


if __name__ == "__main__":
    main()
