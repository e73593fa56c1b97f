"""The app in headless Chromium, as a person uses it: edit the timeline, generate, watch it stream, stop."""

import contextlib
import json
from pathlib import Path

import pytest

playwright = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need playwright (requirements-test.txt)"
)

pytestmark = [pytest.mark.app, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
]


@contextlib.contextmanager
def opened(url: str):
    """The page in a fresh headless Chromium, ready for a click on Generate."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run scripts/system-deps.sh --test")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#generate")
        yield page
        browser.close()


@pytest.fixture
def page(app_url):
    with opened(app_url) as page:
        yield page


@pytest.fixture(scope="module")
def frame_source(serve_app, tmp_path_factory):
    """The app with a frame source for its engine (tests/frame_source_app.py): segments at the rate a prompt names."""
    with serve_app("tests/frame_source_app.py", tmp_path_factory.mktemp("frame-source") / "app.log") as url:
        yield url


def edit_cell(page, index: int, text: str, table: str = "#timeline") -> None:
    """Types only once the cell's editor has the focus: keys pressed before it opens are lost."""
    page.locator(f"{table} [role=gridcell]").nth(index).dblclick()
    page.wait_for_function(
        f"() => document.activeElement.closest('{table}') && ['INPUT', "
        "'TEXTAREA'].includes(document.activeElement.tagName)"
    )
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def metrics(page) -> str:
    return page.locator("#metrics").inner_text()


def test_stream_plays_before_the_run_ends_and_stop_keeps_the_result(page):
    banner = page.locator("#banner").inner_text()
    assert "No GPU found" in banner and "tiny random-weight preview" in banner
    assert banner.count("frames are noise") == banner.count("Model:") == banner.count("CPU") == 1, "each fact once"
    edit_cell(page, 1, "a lighthouse on a cliff at dusk")
    page.click("#add-row")
    page.wait_for_function("() => document.querySelectorAll('#timeline [role=gridcell]').length === 4")
    edit_cell(page, 3, "the lighthouse in a storm")
    grid = page.locator("#timeline [role=grid]").inner_text()
    assert "a lighthouse on a cliff at dusk" in grid and "the lighthouse in a storm" in grid

    page.locator("#playback label").filter(has_text="live").click()
    page.click("#generate")
    page.wait_for_function(
        "() => { const v = document.querySelector('#live video'); return v && v.currentTime > 0; }", timeout=180_000
    )
    assert "generating" in metrics(page), "the video must play while the run is still going"
    page.wait_for_function(  # the clip can reach the player before the page update that counts it
        r"() => /first frame ready\s*[0-9]/.test(document.querySelector('#metrics')?.innerText)", timeout=30_000
    )
    assert "FPS" in metrics(page)
    page.wait_for_function(
        "() => document.querySelector('#on-screen')?.innerText.includes('after the click')", timeout=30_000
    )
    on_screen = float(page.locator("#on-screen").inner_text().split("on screen")[1].split()[0])
    ready = float(metrics(page).split("first frame ready")[1].split()[0])
    assert on_screen >= ready - 0.05, "the browser's clock starts at the click, before the run starts"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-streaming.png"), full_page=True)

    page.click("#stop")
    page.wait_for_selector("text=Stopping after the current denoising step", timeout=30_000)
    page.wait_for_function("() => document.querySelector('#metrics')?.innerText.includes('stopped')", timeout=120_000)
    page.wait_for_selector("#download a", timeout=30_000)
    assert ".mp4" in page.locator("#download").inner_text()
    assert page.locator("#fps-plot canvas, #fps-plot svg").count() > 0, "the FPS plot is drawn"
    frames = int(metrics(page).split("frames")[1].split()[0])
    assert 33 <= frames < 4 * 33

    page.click("#stop")
    page.wait_for_selector("text=Nothing is running", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "app-stopped.png"), full_page=True)


RECORD_PLAYBACK = """(length) => {
  const rec = window.rec = {t0: null, released: null, heldPlaying: 0, heldPlays: 0, arrivals: [], stalls: [], said: []};
  const SEGMENT_S = 33 / 24;
  const held = () => /^(starts in|waiting)/.test((document.querySelector('#playback-status') || {}).textContent || '');
  document.addEventListener('click', (e) => { if (e.target.closest('#generate')) rec.t0 = performance.now(); }, true);
  document.addEventListener('playing', (e) => { if (rec.t0 !== null && rec.released === null && held()) rec.heldPlays
  += 1; }, true);
  let last = {time: -1, at: 0};
  setInterval(() => {
    const v = document.querySelector('#live video'), now = performance.now();
    const status = (document.querySelector('#playback-status') || {}).textContent || '';
    if (status && rec.said[rec.said.length - 1] !== status) rec.said.push(status);
    if (!v || rec.t0 === null) return;
    const n = v.buffered.length ? Math.floor(v.buffered.end(v.buffered.length - 1) / SEGMENT_S + 0.1) : 0;
    while (rec.arrivals.length < n) rec.arrivals.push(now);
    const holding = status.startsWith('starts in');
    if (holding && !v.paused) rec.heldPlaying += 1;
    if (rec.released === null && !holding && rec.said.some(s => s.startsWith('starts in'))) rec.released = now;
    if (rec.released === null || v.paused || v.ended || v.currentTime !== last.time) { last = {time: v.currentTime,
    at: now}; return; }
    if (now - last.at > 300 && v.currentTime < length - 0.2) {
      rec.stalls.push(v.currentTime);
      last = {time: v.currentTime, at: Infinity};
    }
  }, 50);
}"""
"""Records, in the page: the click, each segment's arrival in the player's buffer, what the player did while held
(ticks it was not paused, times it began playing), when it let go, its words, and every stall after that (no progress
for 300 ms before the end)."""


def test_below_real_time_smooth_playback_waits_then_plays_through_without_a_stall(frame_source):
    """Issue 22's target: a source at 14 FPS, 10 segments: no stall, and a start within 15% + 1 s of the earliest
    start from which the whole video plays through."""
    with opened(frame_source) as page:
        page.evaluate(RECORD_PLAYBACK, 10 * 33 / 24)
        edit_cell(page, 1, "colour bands at 14 fps")
        page.get_by_label("Length (segments of 33 frames)", exact=False).first.fill("10")
        page.keyboard.press("Enter")
        page.click("#generate")
        page.wait_for_function("() => document.querySelector('#metrics')?.innerText.includes('done')", timeout=300_000)
        page.wait_for_function(
            "() => { const v = document.querySelector('#live video'); return v && v.ended; }", timeout=60_000
        )
        rec = page.evaluate("() => window.rec")
        rtf = float(page.locator("#metrics .metrics").get_attribute("data-rtf"))
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "app-smooth-playback.png"), full_page=True)
    assert 0.5 < rtf < 0.65, f"a 14 FPS source runs at 0.58x real time ({rtf}x)"
    assert any(s.startswith("starts in") and "real time" in s for s in rec["said"]), rec["said"]
    assert rec["released"] is not None and rec["heldPlaying"] == rec["heldPlays"] == 0, f"played while held: {rec}"
    assert rec["stalls"] == [], f"playback paused for data at {rec['stalls']} s"
    assert len(rec["arrivals"]) == 10
    earliest = max(at - i * 33 / 24 * 1000 for i, at in enumerate(rec["arrivals"])) - rec["t0"]
    started = rec["released"] - rec["t0"]
    print(
        f"smooth playback: started {started / 1000:.1f} s after the click; earliest stall-free start "
        f"{earliest / 1000:.1f} s"
    )
    assert started <= 1.15 * earliest + 1000, "issue 22's target: within 15% + 1 s of the earliest stall-free start"


def test_bad_request_shows_words_not_a_trace(page):
    edit_cell(page, 1, " ")
    page.click("#generate")
    page.wait_for_selector("text=empty prompt", timeout=60_000)
    assert "Traceback" not in page.content()


def test_a_run_from_history_loads_back_into_the_form(page):
    edit_cell(page, 1, "a blue kite over a beach")
    page.get_by_label("Seed", exact=True).fill("42")
    page.click("#generate")
    page.wait_for_selector("#download a", timeout=180_000)
    edit_cell(page, 1, "something else entirely")
    page.get_by_label("Seed", exact=True).fill("7")
    page.get_by_text("This session's runs").click()
    page.wait_for_function(
        "() => document.querySelector('#history')?.innerText.includes('a blue kite')", timeout=30_000
    )
    page.click("#load-run")
    page.wait_for_function(
        "() => document.querySelector('#timeline [role=grid]')?.innerText.includes('a blue kite over a beach')",
        timeout=30_000,
    )
    assert page.get_by_label("Seed", exact=True).input_value() == "42"


def playing(page, selector: str) -> float:
    return page.evaluate(f"() => document.querySelector('{selector} video').currentTime")


def test_compare_two_settings_side_by_side_in_sync(page):
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare", state="visible", timeout=60_000)
    page.get_by_label("Seed B").fill("1", timeout=60_000)
    page.wait_for_function(
        "() => document.querySelector('#compare-plan')?.innerText.includes('loaded and warm')", timeout=30_000
    )
    page.locator("#compare-form-b").get_by_text("FP8").click()
    page.wait_for_function(  # said before the run: B's FP8 form is made from the loaded weights (or warm already)
        "() => /FP8, our engine: (copied from the loaded|loaded and "
        "warm)/.test(document.querySelector('#compare-plan')?.innerText)",
        timeout=30_000,
    )
    page.click("#compare")
    page.wait_for_function(
        "() => { const v = document.querySelector('#compare-live-a video'); return v && v.currentTime > 0; }",
        timeout=180_000,
    )
    assert "Run A" in page.locator("#compare-metrics").inner_text()
    page.wait_for_function("() => document.querySelector('#compare-psnr')?.innerText.includes('1')", timeout=300_000)
    page.wait_for_selector("#compare-a video")
    page.wait_for_selector("#compare-b video")
    page.wait_for_selector("#compare-difference video")
    table = page.locator("#compare-table").inner_text()
    assert "FPS" in table and "first frame" in table and "peak GPU memory" in table and "cpu+fp8" in table
    for plot in ("#compare-plot", "#compare-flicker-plot", "#compare-drift-plot"):  # drawn at the end
        page.wait_for_selector(f"{plot} canvas, {plot} svg", timeout=30_000)
    page.click("#play-both")
    page.wait_for_function(
        "() => ['#compare-a', '#compare-b'].every(s => document.querySelector(s + ' video').currentTime > 0.3)",
        timeout=30_000,
    )
    a, b = page.evaluate(
        "() => ['#compare-a', '#compare-b'].map(s => document.querySelector(s + ' video').currentTime)"
    )  # read together: two reads apart were 0.6 s apart on a loaded machine
    assert abs(a - b) < 0.25, (a, b)
    assert page.locator("#compare-files a").count() == 4, "both MP4s and both recipes"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-compare.png"), full_page=True)


def test_an_example_timeline_sets_a_length_that_covers_it(page):
    page.get_by_text("Import / export timeline").click()
    page.get_by_label("Example timelines").click()
    page.get_by_role("option", name="seasons.csv").click()
    page.wait_for_function(
        "() => document.querySelector('#timeline [role=grid]')?.innerText.includes('winter')", timeout=30_000
    )
    length = page.get_by_label("Length (segments of 33 frames)", exact=False).first
    page.wait_for_function(
        "() => [...document.querySelectorAll('input[type=number]')].some(i => i.value === '9')", timeout=10_000
    )
    assert length.input_value() == "9", "winter starts at segment 6, faded in over 2 more"


def test_an_uploaded_adapter_gets_its_timeline_columns_and_its_live_fader(page, tmp_path):
    from benchmarks.random_lora import write_lora
    from helios.model_cache import load_model

    lora = write_lora(tmp_path / "grain.safetensors", load_model("tiny").transformer)
    page.get_by_text("LoRA adapters").click()
    page.locator("#lora-files input[type=file]").set_input_files(str(lora))
    page.wait_for_function("() => document.querySelector('#timeline thead')?.innerText.includes('lora:grain')",
                           timeout=30_000)
    assert "Added for this session: grain" in page.locator("#lora-status").inner_text()
    page.get_by_role("tab", name="Live").click()
    page.wait_for_selector("#live-session-lora-0", state="visible", timeout=30_000)
    assert "LoRA grain (this session's)" in page.locator("#live-session-lora-0").inner_text()
    assert not page.locator("#live-session-lora-1").is_visible()
    page.get_by_role("tab", name="Compare").click()
    for side in "ab":
        page.wait_for_function(f"() => document.querySelector('#compare-rows-{side} thead')?.innerText"
                               ".includes('lora:grain')", timeout=30_000)


RECORD_LIVE = """() => {
  const rec = window.live = {arrivals: [], stalls: [], said: [], playing: null, last: {time: -1, at: 0}};
  setInterval(() => {
    const v = document.querySelector('#live video'), now = Date.now();
    const status = (document.querySelector('#playback-status') || {}).textContent || '';
    if (status && rec.said[rec.said.length - 1] !== status) rec.said.push(status);
    if (!v) return;
    if (rec.playing === null && v.currentTime > 0) rec.playing = now;
    const n = v.buffered.length ? Math.floor(v.buffered.end(v.buffered.length - 1) * 24 / 33 + 0.1) : 0;
    while (rec.arrivals.length < n) rec.arrivals.push(now);
    if (v.paused || v.ended || v.currentTime !== rec.last.time) { rec.last = {time: v.currentTime, at: now}; return; }
    if (now - rec.last.at > 300) { rec.stalls.push(v.currentTime); rec.last = {time: v.currentTime, at: Infinity}; }
  }, 5);
}"""
"""Records, in the page: when each segment is in the live player's buffer (wall clock, as the server stamps when it
made it), when it first played, the playback line's words, and every stall (no progress for 300 ms while playing)."""


@pytest.mark.parametrize("rate", [30, 60])
def test_live_stream_reaches_the_browser_segment_by_segment_and_plays_at_once(frame_source, rate):
    """From a source faster than real time, each segment reaches the live player's buffer as it is made, in order,
    and smooth playback starts with the first. How soon is a benchmark (benchmarks/live_latency.py: 0.63-0.69 s
    median at 384x640, measured alone): in the suite the browser, server, source, encoder and the other worker share
    2 cores, and a latency budget here passed or failed with the machine's load. The delays are printed and saved."""
    with opened(frame_source) as page:
        page.evaluate(RECORD_LIVE)
        edit_cell(page, 1, f"colour bands at {rate} fps")
        page.get_by_label("Length (segments of 33 frames)", exact=False).first.fill("6")
        page.keyboard.press("Enter")
        page.click("#generate")
        page.wait_for_function("() => document.querySelector('#metrics')?.innerText.includes('done')", timeout=120_000)
        page.wait_for_function("() => window.live.arrivals.length >= 6", timeout=30_000)
        page.wait_for_function("() => document.querySelector('#live video').ended", timeout=60_000)
        made = page.locator("#metrics .metrics").get_attribute("data-made").split(",")
        live = page.evaluate("() => window.live")
    late = [(arrived - int(at)) / 1000 for arrived, at in zip(live["arrivals"], made)]
    print(f"{rate} FPS source: made -> in the browser's buffer, s: {[round(s, 2) for s in late]}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"live-latency-{rate}fps.json").write_text(json.dumps(dict(late_s=late, stalls=live["stalls"])))
    assert len(made) == 6 and len(live["arrivals"]) == 6
    assert live["arrivals"] == sorted(live["arrivals"]) and all(d > 0 for d in late), "each arrives after it is made"
    assert live["said"] and live["playing"] is not None


def test_live_is_steered_by_enter_and_by_the_pad_keys_but_not_while_typing(page):
    """The Live tab: Enter in the prompt box steers; a pad's key steers unless a field has the focus; below real time
    (the tiny model at 128x192 on 2 cores) the player says its slowed rate; pause, then download so far."""
    page.get_by_label("Resolution (height x width)").click()
    page.get_by_role("option", name="128x192").click()
    page.get_by_role("tab", name="Live").click()
    edit_cell(page, 0, "a red kite over the sea", table="#live-pads")
    page.click("#live-start")
    page.wait_for_function(
        "() => /running.*[2-9] segments/.test(document.querySelector('#live-metrics')?.innerText)", timeout=120_000
    )
    page.locator("#live-prompt textarea, #live-prompt input").first.fill("a storm over the sea")
    page.locator("#live-prompt textarea, #live-prompt input").first.press("Enter")
    page.wait_for_function("() => document.querySelector('#live-status')?.innerText.includes('a storm over the sea')",
                           timeout=30_000)
    page.locator("#live-prompt textarea, #live-prompt input").first.press("1")  # typing: no pad
    page.wait_for_timeout(1000)
    assert "a red kite" not in page.locator("#live-status").inner_text()
    page.locator("#live-metrics").click()
    page.keyboard.press("1")
    page.wait_for_function("() => document.querySelector('#live-status')?.innerText.includes('a red kite')",
                           timeout=30_000)
    page.wait_for_function(  # below real time (as the page measures it) the player slows and says so
        "() => { const v = document.querySelector('#live-player video'), d = document.querySelector('#live-metrics "
        ".metrics')?.dataset || {}; return Number(d.rtf) >= 1 || (v && v.playbackRate < 1 && "
        "/x: below real time/.test(document.querySelector('#live-rate')?.innerText)); }", timeout=60_000)
    page.wait_for_function("() => /on screen .* s after the key press/.test("
                           "document.querySelector('#live-on-screen')?.innerText)", timeout=120_000)
    first = page.evaluate("() => window.heliosSteers[0]")
    assert first["segment"] >= 1 and 0 < first["latencyS"] < 120
    page.click("#live-pause")
    page.wait_for_function("() => /paused/.test(document.querySelector('#live-metrics')?.innerText)", timeout=120_000)
    page.wait_for_function(
        "() => document.querySelector('#live-log')?.innerText.includes('a storm over the sea')", timeout=30_000
    )
    page.click("#live-download")
    page.wait_for_function("() => document.querySelectorAll('#live-files a').length === 2", timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-live.png"), full_page=True)
