"""`python -m benchmarks.live_latency [--mode smooth|live] [--rates 30,60] [--out FILE]`: how long after a segment is
made it is in the live player's buffer, in headless Chromium, with the app's engine replaced by a frame source at
each rate (tests/frame_source_app.py), 10 segments at 384x640; also every stall. One JSON line per rate."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.json_lines import emit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_browser import CHROMIUM, FLAGS, RECORD_LIVE, edit_cell  # noqa: E402

from conftest import served_app  # noqa: E402


def measure(url: str, rate: int, mode: str, segments: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#generate")
        page.evaluate(RECORD_LIVE)
        page.locator("#playback label").filter(has_text=mode).click()
        edit_cell(page, 1, f"colour bands at {rate} fps")
        page.get_by_label("Resolution (height x width)").click()
        page.get_by_role("option", name="384x640").click()
        page.get_by_label("Length (segments of 33 frames)", exact=False).first.fill(str(segments))
        page.keyboard.press("Enter")
        page.click("#generate")
        page.wait_for_function("() => document.querySelector('#metrics').innerText.includes('done')", timeout=300_000)
        page.wait_for_function(f"() => window.live.arrivals.length >= {segments}", timeout=60_000)
        made = [int(t) for t in page.locator("#metrics .metrics").get_attribute("data-made").split(",")]
        live = page.evaluate("() => window.live")
        browser.close()
    late = [round((arrived - at) / 1000, 3) for arrived, at in zip(live["arrivals"], made)]
    return {"rate_fps": rate, "mode": mode, "late_s": late, "median_s": statistics.median(late), "last_s": late[-1],
            "max_s": max(late), "stalls_at_s": live["stalls"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["smooth", "live"], default="smooth")
    parser.add_argument("--rates", default="30,60")
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--label", default="", help="what was measured, written into each line")
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp(prefix="live-latency-")) / "app.log"
    with served_app("tests/frame_source_app.py", log) as url:
        for rate in (int(r) for r in args.rates.split(",")):
            emit({"label": args.label, **measure(url, rate, args.mode, args.segments)}, args.out)


if __name__ == "__main__":
    main()
