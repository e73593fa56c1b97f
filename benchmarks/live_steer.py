"""`python -m benchmarks.live_steer [--rates 24,16] [--minutes 10] [--steer-every 8] [--out FILE]`: the Live tab in
headless Chromium with the app's engine replaced by a frame source at each rate (tests/frame_source_app.py), at
384x640, played for the minutes given while a prompt is steered with Enter every few seconds: each steer's latency
from the key press to its landing segment's first frame on screen (as the page measures it), every stall (no progress
for 300 ms while playing and not paused), the playback rate the page chose and the media buffer's length. One JSON
line per rate. Issue 43's targets: a median steer latency of at most 1.5 segments of generation time + 0.5 s, and no
stall."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.json_lines import emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_browser import opened  # noqa: E402

from conftest import served_app  # noqa: E402
from helios.limits import FRAMES_PER_SEGMENT  # noqa: E402

WATCH = """() => {
  const rec = window.watch = {stalls: [], rates: [], buffered: [], last: {time: -1, at: Date.now()}};
  setInterval(() => {
    const v = document.querySelector('#live-player video'), now = Date.now();
    if (!v) return;
    if (v.paused || v.ended || v.currentTime !== rec.last.time) { rec.last = {time: v.currentTime, at: now}; return; }
    if (now - rec.last.at > 300) { rec.stalls.push(v.currentTime); rec.last = {time: v.currentTime, at: Infinity}; }
  }, 5);
  setInterval(() => {
    const v = document.querySelector('#live-player video');
    if (!v || !v.buffered.length) return;
    rec.rates.push(v.playbackRate);
    rec.buffered.push(v.buffered.end(v.buffered.length - 1) - v.buffered.start(0));
  }, 1000);
}"""


def measure(url: str, rate: int, minutes: float, steer_every: float) -> dict:
    with opened(url) as page:
        page.get_by_label("Resolution (height x width)").click()
        page.get_by_role("option", name="384x640").click()
        page.get_by_role("tab", name="Live").click()
        prompt = page.locator("#live-prompt textarea, #live-prompt input").first
        prompt.fill(f"colour bands at {rate} fps")
        page.evaluate(WATCH)
        page.click("#live-start")
        page.wait_for_function("() => /running.* [1-9][0-9]* segments/.test("
                               "document.querySelector('#live-metrics')?.innerText)", timeout=120_000)
        end, n = time.monotonic() + minutes * 60, 0
        while time.monotonic() < end:
            time.sleep(steer_every)
            n += 1
            prompt.fill(f"steer {n} at {rate} fps")
            prompt.press("Enter")
        page.click("#live-stop")
        time.sleep(3)
        steers = page.evaluate("() => window.heliosSteers")
        watch = page.evaluate("() => window.watch")
    latencies = [s["latencyS"] for s in steers]
    segment_s = FRAMES_PER_SEGMENT / rate
    return {"rate_fps": rate, "minutes": minutes, "steers": n, "on_screen": len(latencies),
            "latency_s": [round(x, 2) for x in latencies],
            "median_latency_s": round(statistics.median(latencies), 2) if latencies else None,
            "target_s": round(1.5 * segment_s + 0.5, 2), "stalls_at_s": watch["stalls"],
            "playback_rates": sorted(set(watch["rates"])),
            "most_buffered_s": round(max(watch["buffered"], default=0), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="24,16")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--steer-every", type=float, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp(prefix="live-steer-")) / "app.log"
    with served_app("tests/frame_source_app.py", log) as url:
        for rate in (int(r) for r in args.rates.split(",")):
            emit(measure(url, rate, args.minutes, args.steer_every), args.out)


if __name__ == "__main__":
    main()
