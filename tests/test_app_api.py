"""The app's API endpoints through gradio_client, against `python app.py` on the tiny preview model."""

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request

import imageio_ffmpeg
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.app


def form(prompt="a paper boat on a pond", segments=2, image=None, video=None, rows=None):
    rows = rows if rows is not None else [[0, prompt]]
    return (
        {"headers": ["start", "prompt"], "data": rows},
        "seconds",
        1,
        image,
        video,
        segments,
        "1,1,1",
        5,
        "64x128",
        False,
    )


@pytest.fixture
def client(app_url):
    return Client(app_url, verbose=False)


def test_generate_streams_and_offers_the_full_mp4(client):
    job = client.submit(*form(segments=2), api_name="/generate")
    updates = list(job)
    final = job.result()
    assert len(updates) > 2, "segments and steps should arrive as separate updates"
    metrics, plot, download, seed = final
    assert seed == 5
    plotted = [u[1] for u in updates if isinstance(u[1], dict) and "data" in u[1]][-1]
    assert plotted["columns"] == ["segment", "FPS", "run"]
    ours = [row for row in plotted["data"] if row[2] == "this run"]
    assert [row[0] for row in ours] == ["1", "2"], "segments are categories"
    assert all(fps > 0 for _, fps, _ in ours), "a point per segment, its measured FPS"
    assert [row[1] for row in plotted["data"] if row[2] == "real time (24 FPS)"] == [24.0, 24.0], "the real-time line"
    assert "done" in metrics and "FPS" in metrics and "first frame ready" in metrics
    frames, _ = imageio_ffmpeg.count_frames_and_secs(download)
    assert frames == 65


def test_the_live_stream_is_the_runs_clips_as_one_fragmented_mp4(client, app_url, tmp_path):
    """The live player's channel (helios/studio/live_stream.py), fetched as the page fetches it, after the run: both
    segments' clips, which play as the run's video; a name the app did not give is not found."""
    metrics, *_ = client.predict(*form(segments=2), api_name="/generate")
    live = metrics.split('data-live="')[1].split('"')[0]
    assert len(live.rsplit("/", 1)[1]) >= 32, "named as unguessably as a session token"
    with urllib.request.urlopen(app_url + live, timeout=30) as response:
        assert response.headers["Content-Type"] == "video/mp4"
        stream = response.read()
    boxes, at = [], 0
    while at < len(stream):
        size, kind = int.from_bytes(stream[at:at + 4], "big"), stream[at + 4:at + 8].decode()
        boxes.append((at, kind))
        at += size
    starts = [at for at, kind in boxes if kind == "ftyp"]
    assert at == len(stream) and len(starts) == 2 and starts[0] == 0, "two whole MP4 files, one after the other"
    frames = []
    for clip, (start, end) in enumerate(zip(starts, [*starts[1:], len(stream)])):
        (tmp_path / f"{clip}.mp4").write_bytes(stream[start:end])
        frames.append(imageio_ffmpeg.count_frames_and_secs(str(tmp_path / f"{clip}.mp4"))[0])
    assert frames == [33, 32], "each segment's clip, whole, in order"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(app_url + live[:-4] + "AAAA", timeout=30)
    assert missing.value.code == 404 and "No such live stream" in missing.value.read().decode()


def test_continue_extends_the_last_video_as_one_longer_run(client):
    client.predict(*form(segments=1), api_name="/generate")
    *_, download, _ = client.predict(*form(segments=1), api_name="/continue")
    assert imageio_ffmpeg.count_frames_and_secs(download)[0] == 65, "2 segments, trimmed to 4k+1 as one run of 2"


@pytest.mark.parametrize(
    "args, message",
    [
        (form(rows=[]), "timeline is empty"),
        (form(rows=[[0, "   "]]), "empty prompt"),
        (form(rows=[[0, "a"], [9999, "b"]]), "only 2 segments"),
        (form(segments=500), "greater than maximum value 60"),
    ],
)
def test_bad_requests_get_a_message_and_the_app_keeps_serving(client, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/generate")
    *_, download, _ = client.predict(*form(segments=1), api_name="/generate")
    assert imageio_ffmpeg.count_frames_and_secs(download)[0] == 33


def test_unreadable_uploads_are_named(client, tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"this is not an image")
    with pytest.raises(AppError, match="image could not be read: upload a PNG"):
        client.predict(*form(image=handle_file(str(fake))), api_name="/generate")
    short = tmp_path / "short.txt"
    short.write_text("not a video either")
    with pytest.raises(AppError, match="not a video"):
        client.predict(*form(video=handle_file(str(short))), api_name="/generate")


def test_oversized_upload_is_refused_with_the_limit(client, tmp_path):
    big = tmp_path / "huge.png"
    big.write_bytes(b"\0" * 3_000_000)
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        client.predict(*form(image=handle_file(str(big))), api_name="/generate")


def test_a_session_adds_a_lora_adapter_and_bad_or_oversized_ones_are_refused_in_words(app_url, tmp_path):
    import torch
    from safetensors.torch import save_file

    from benchmarks.random_lora import write_lora
    from helios.model_cache import load_model

    client = Client(app_url, verbose=False)
    style = write_lora(tmp_path / "style.safetensors", load_model("tiny").transformer)
    said = client.predict([handle_file(str(style))], 0.5, api_name="/loras")
    assert said.startswith("Added for this session: `style` at 0.5")
    *_, download, _ = client.predict(*form(segments=1), api_name="/generate")
    tag = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format_tags=comment", "-of", "json", download],
                         capture_output=True, text=True)
    recipe = json.loads(json.loads(tag.stdout)["format"]["tags"]["comment"])
    assert [(a["file"], a["strength"]) for a in recipe["loras"]] == [("style.safetensors", 0.5)]
    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(AppError) as refused:
        client.predict([handle_file(str(tmp_path / "weights.safetensors"))], 1.0, api_name="/loras")
    assert "no LoRA weight" in str(refused.value)
    assert_in_our_words(str(refused.value))
    save_file({"big": torch.zeros(1_000_000)}, str(tmp_path / "big.safetensors"))
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        client.predict([handle_file(str(tmp_path / "big.safetensors"))], 1.0, api_name="/loras")


def test_continue_before_any_video_says_so(app_url):
    with pytest.raises(AppError, match="Nothing to continue yet"):
        Client(app_url, verbose=False).predict(*form(), api_name="/continue")


def test_stop_twice_and_stop_when_idle_are_harmless(client):
    client.predict(api_name="/stop")
    job = client.submit(*form(segments=20), api_name="/generate")
    for update in job:
        if "<th>frames</th><td>33</td>" in str(update[0]):
            break
    client.predict(api_name="/stop")
    client.predict(api_name="/stop")
    metrics, _, download, _ = job.result()
    assert "stopped" in metrics
    frames, _ = imageio_ffmpeg.count_frames_and_secs(download)
    assert 33 <= frames < 20 * 33, "what was made before the stop stays downloadable"


def test_apply_timeline_while_running_changes_the_prompt_of_later_segments(client):
    job = client.submit(*form(prompt="a quiet harbour", segments=6), api_name="/generate")
    for update in job:
        if "<th>frames</th><td>33</td>" in str(update[0]):
            break
    new_rows = {"headers": ["start", "prompt"], "data": [[0, "a quiet harbour"], [1, "a harbour on fire"]]}
    client.predict(new_rows, "segments", 0, api_name="/apply_timeline")
    metrics = job.result()[0]
    assert "done" in metrics and "a harbour on fire (100%)" in metrics


def test_two_users_at_once_are_queued_not_refused(app_url):
    results = {}

    def user(name):
        results[name] = Client(app_url, verbose=False).predict(*form(segments=1), api_name="/generate")

    threads = [threading.Thread(target=user, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(results) == ["a", "b"]
    for _metrics, _plot, download, _seed in results.values():
        assert imageio_ffmpeg.count_frames_and_secs(download)[0] == 33


FORM_FIELDS = ("rows", "unit", "crossfade", "image", "video", "segments", "steps", "seed", "resolution", "randomize")
MALFORMED = {
    "rows": [
        None,
        "text",
        5,
        [],
        {"headers": ["start", "prompt"]},
        {"data": "x"},
        {"data": [["x", "y", "z"]]},
        {"data": [[None, None]]},
        {"data": [[1e300, "a"]]},
        {"data": [["nan", "a"]]},
    ],
    "unit": [5, "years", ""],
    "crossfade": [None, "x", -1, 1e30, 0.5, [1]],
    "image": [
        "/etc/passwd",
        "http://example.com/a.png",
        5,
        {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},
    ],
    "video": [
        "/etc/passwd",
        "http://example.com/a.mp4",
        5,
        {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},
        {"path": "/tmp/gradio/../../etc/passwd", "meta": {"_type": "gradio.FileData"}},
        {"url": "http://example.com/a.mp4", "meta": {"_type": "gradio.FileData"}},
    ],
    "segments": [None, "x", -1, 0, 1e30, 2.5, [2]],
    "steps": [None, 5, "", "a,b,c", "1,1", "0,1,1", "1e9,1,1", "1.5,1,1", "51,1,1"],
    "seed": ["x", -1, 2**70, 1e30, [1]],
    "resolution": [None, 5, "99x99"],
}
WALK = [("/generate", field, value) for field, values in MALFORMED.items() for value in values]
WALK += [("/continue", "rows", 5), ("/continue", "seed", "x"), ("/continue", "video", "/etc/passwd")]


def assert_in_our_words(message: str) -> None:
    assert message.strip(), "an empty error"
    for generic in ("upstream Gradio app", "unexpectedly", "Traceback", "&#", "<"):
        assert generic not in message, message


@pytest.mark.parametrize("endpoint, field, value", WALK, ids=[f"{e}-{f}-{v!r}"[:60] for e, f, v in WALK])
def test_every_malformed_argument_is_refused_in_words(client, endpoint, field, value):
    args = list(form(segments=1))
    args[FORM_FIELDS.index(field)] = value
    with pytest.raises(AppError) as refused:
        client.predict(*args, api_name=endpoint)
    assert_in_our_words(str(refused.value))


@pytest.mark.parametrize("args", [
    (None, "seconds", 1), ("x", "seconds", 1), ({"data": [[0, "a"]]}, 5, 1), ({"data": [[0, "a"]]}, "seconds", "x"),
])
def test_apply_timeline_refuses_malformed_arguments_in_words(client, args):
    with pytest.raises(AppError) as refused:
        client.predict(*args, api_name="/apply_timeline")
    assert_in_our_words(str(refused.value))


def test_stop_reaches_an_api_clients_queued_run(app_url):
    """No button click announces an API client's run: the Stop finds it in the queue and it never starts."""
    busy, waiting = Client(app_url, verbose=False), Client(app_url, verbose=False)
    running = busy.submit(*form(segments=20), api_name="/generate")
    for update in running:
        if "<th>frames</th><td>33</td>" in str(update[0]):
            break
    queued = waiting.submit(*form(segments=1), api_name="/generate")
    deadline = time.time() + 30
    while queued.status().code.name != "IN_QUEUE" and time.time() < deadline:
        time.sleep(0.1)
    waiting.predict(api_name="/stop")
    busy.predict(api_name="/stop")
    assert "stopped" in running.result()[0]
    with pytest.raises(AppError, match="Stopped before it started"):
        queued.result()


def test_the_sessions_runs_can_be_listed_replayed_downloaded_and_loaded_back(client):
    client.predict(*form(prompt="a red kite", segments=1), api_name="/generate")
    client.predict(*form(prompt="a blue kite", segments=2), api_name="/generate")
    table = client.predict(api_name="/history")
    assert [row[1] for row in table["data"]] == ["a blue kite", "a red kite"]
    video, files = client.predict(2, api_name="/play_run")
    assert imageio_ffmpeg.count_frames_and_secs(video["video"] if isinstance(video, dict) else video)[0] == 33
    recipe = next(f for f in files if f.endswith(".json"))
    assert json.loads(open(recipe).read())["timeline"]["entries"][0]["prompt"] == "a red kite"
    rows, unit, crossfade, segments, steps, seed, resolution = client.predict(2, api_name="/load_run")
    assert rows["data"][0][1] == "a red kite" and segments == 1 and steps == "1,1,1" and resolution == "64x128"
    with pytest.raises(AppError, match="There is no run 9 in this session: it has 2"):
        client.predict(9, api_name="/play_run")
    with pytest.raises(AppError) as refused:
        client.predict("x", api_name="/load_run")
    assert_in_our_words(str(refused.value))


def test_the_api_offers_the_pages_actions_and_nothing_else(client):
    named = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert named == {
        "/generate",
        "/continue",
        "/stop",
        "/apply_timeline",
        "/loras",
        "/history",
        "/play_run",
        "/load_run",
        "/compare",
        "/live_start",
        "/live_resume",
        "/live_steer",
        "/live_pad",
        "/live_lora",
        "/live_pause",
        "/live_stop",
        "/live_download",
    }


def test_agents_find_generate_continue_and_compare_as_described_mcp_tools(app_url):
    """Gradio's own MCP server, beside the unchanged API: each tool says what it does and what each parameter is."""
    with urllib.request.urlopen(app_url + "gradio_api/mcp/schema", timeout=30) as response:
        tools = {tool["name"]: tool for tool in json.load(response)}
    assert {"generate", "continue_video", "compare"} <= tools.keys()
    for name in ("generate", "continue_video", "compare"):
        properties = tools[name]["inputSchema"]["properties"]
        assert tools[name]["description"] and len(properties) >= 10, name
        assert all(p.get("description") for p in properties.values()), f"{name}: a parameter without words"
    assert tools["generate"]["inputSchema"]["properties"]["segments"]["type"] in ("number", "integer")


def compare_args(steps_b="1,1,1", seed_b=3, **changes):
    rows = {"headers": ["start", "prompt"], "data": [[0, "a paper boat"]]}
    args = dict(
        rows_a=rows,
        crossfade_a=1,
        steps_a="1,1,1",
        seed_a=3,
        rows_b=rows,
        crossfade_b=1,
        steps_b=steps_b,
        seed_b=seed_b,
        unit="seconds",
        image=None,
        video=None,
        segments=1,
        resolution="64x128",
    )
    models = {
        k: changes.pop(k)
        for k in ("checkpoint_a", "form_a", "engine_a", "checkpoint_b", "form_b", "engine_b")
        if k in changes
    }
    if models:  # the trailing inputs, as a client that names them passes them all
        args.update(
            {
                **dict(
                    checkpoint_a="the loaded model",
                    form_a="bf16",
                    engine_a="ours",
                    checkpoint_b="the loaded model",
                    form_b="bf16",
                    engine_b="ours",
                ),
                **models,
            }
        )
    return list({**args, **changes}.values())


def test_compare_gives_both_videos_their_difference_and_recipes(client):
    live_a, live_b, metrics, plot, a, b, measures, per_segment, difference, files = client.predict(
        *compare_args(), api_name="/compare"
    )
    assert per_segment["data"][0][:3] == [1, "identical", 1.0], "the same settings twice make the same frames"
    assert [imageio_ffmpeg.count_frames_and_secs(v)[0] for v in (a, b, difference)] == [33, 33, 33]
    assert [row[0] for row in measures["data"]] == [
        "checkpoint", "weights (memory tier)", "engine", "load and warm-up first (s)", "FPS", "first frame ready (s)",
        "peak GPU memory (GiB)", "frames", "worst flicker at a boundary", "brightness drift by the end",
        "sharpness by the end (first = 1)"]
    assert sorted(f.rsplit(".", 1)[1] for f in files) == ["json", "json", "mp4", "mp4"]
    assert {row[2] for row in plot["data"]} == {"A", "B", "real time (24 FPS)"}


def test_compare_takes_each_sides_checkpoint_weights_and_engine_as_trailing_inputs(client):
    sides = ["the loaded model", "FP8", "ours", "tiny-mid", "bf16", "diffusers"]
    *_, measures, per_segment, difference, files = client.predict(*compare_args(), *sides, api_name="/compare")
    rows = {row[0]: row[1:3] for row in measures["data"]}
    assert rows["weights (memory tier)"] == ["cpu+fp8", "cpu"] and rows["engine"] == ["ours", "diffusers"]
    assert rows["checkpoint"][1].startswith("tiny-mid")
    assert len(per_segment["data"]) == 1 and difference


COMPARE_WALK = [
    ("checkpoint_b", "../etc"),
    ("form_a", "fp4"),
    ("engine_b", 7),
    ("rows_a", 5),
    ("crossfade_b", 1e30),
    ("steps_b", "0,1,1"),
    ("seed_a", 2**70),
    ("seed_b", "x"),
    ("video", "/etc/passwd"),
    ("segments", None),
    ("resolution", "99x99"),
    ("rows_b", {"data": [[0, " "]]}),
]


@pytest.mark.parametrize("field, value", COMPARE_WALK, ids=[f"{f}-{v!r}"[:40] for f, v in COMPARE_WALK])
def test_compare_refuses_malformed_arguments_in_words(client, field, value):
    with pytest.raises(AppError) as refused:
        client.predict(*compare_args(**{field: value}), api_name="/compare")
    assert_in_our_words(str(refused.value))


def as_the_app_encodes(frames, folder):
    """The app's MP4 is each segment encoded once as a live clip, the clips joined without re-encoding."""
    from helios.limits import FRAMES_PER_SEGMENT
    from helios.media import encode_clip, join_videos, video_frames

    clips = [
        encode_clip(frames[i : i + FRAMES_PER_SEGMENT], folder / f"{i}.ts")
        for i in range(0, len(frames), FRAMES_PER_SEGMENT)
    ]
    return np.stack(list(video_frames(join_videos(clips, folder / "as-the-app.mp4"))))


@pytest.mark.parametrize("task", ["text", "image", "video", "timeline"])
def test_an_app_runs_recipe_makes_its_frames_again_through_the_cli(
    client, task, tmp_path, sample_image, video_file, cli
):
    """The MP4 the app offers carries its recipe; the CLI reads it back (with the same upload) and makes the same
    frames: encoded as the app encodes them, they are the app's MP4 to the pixel."""
    from helios.media import video_frames

    image = tmp_path / "start.png"
    sample_image.save(image)
    context = {"image": ["--image", str(image)], "video": ["--video", str(video_file)]}.get(task, [])
    rows = [[0, "a harbour"], [1, "a storm"]] if task == "timeline" else None
    args = form(segments=2 if rows else 1, rows=rows, image=handle_file(str(image)) if task == "image" else None,
                video=handle_file(str(video_file)) if task == "video" else None)
    *_, download, _ = client.predict(*args, api_name="/generate")
    tag = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format_tags=comment", "-of", "json", download],
                         capture_output=True, text=True)
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.loads(tag.stdout)["format"]["tags"]["comment"])
    assert (json.loads(recipe.read_text())["context"] or {}).get("kind") == {"image": "image", "video": "video"}.get(
        task
    )
    again = tmp_path / "again.npy"
    made = cli("--recipe", recipe, *context, "--out", again)
    assert made.returncode == 0, made.stderr
    assert np.array_equal(as_the_app_encodes(np.load(again), tmp_path), np.stack(list(video_frames(download))))


def test_a_run_is_its_sessions_own(app_url):
    """Another client holding a run's server path can neither continue it nor get its recipe through the app."""
    ann, bob = Client(app_url, verbose=False, download_files=False), Client(app_url, verbose=False)
    result = ann.predict(*form(prompt="ann's boat", segments=1), api_name="/generate")
    video = next(r for r in result if isinstance(r, dict) and str(r.get("path", "")).endswith(".mp4"))["path"]
    assert len(video.split("helios-run-")[1].split("/")[0]) >= 32, "named as unguessably as a session token"
    for field in ("video", "image"):
        args = list(form(segments=1))
        args[FORM_FIELDS.index(field)] = {"path": video, "meta": {"_type": "gradio.FileData"}}
        with pytest.raises(AppError) as refused:
            bob.predict(*args, api_name="/generate")
        assert_in_our_words(str(refused.value))
        assert "another session's file" in str(refused.value) or "could not be read" in str(refused.value)


def test_gradios_traffic_summary_and_browser_run_history_are_off(app_url):
    """Gradio 6 serves /monitoring/summary to anyone and records runs in the browser unless told otherwise."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(app_url + "monitoring/summary", timeout=30)
    assert refused.value.code in (403, 404)
    with urllib.request.urlopen(app_url + "config", timeout=30) as response:
        assert json.loads(response.read())["run_history"] is False


def live_args(prompt="a paper boat on a pond"):
    pads = {"headers": ["pad prompt"], "data": [["a red kite"], [""], [""], [""], [""], [""], [""], [""], [""]]}
    return (prompt, 1, pads, None, None, "64x128", "1,1,1", 4)


def test_a_live_stream_is_played_steered_paused_resumed_downloaded_and_stopped_through_the_api(app_url):
    """An agent plays the Live tab: each call acts on its own session only."""
    client, stranger = Client(app_url, verbose=False), Client(app_url, verbose=False)
    job = client.submit(*live_args(), api_name="/live_start")
    seen = 0
    for update in job:
        if "running" in str(update[0]) and "2 segments" in str(update[0]):
            break
        seen += 1
    assert "lands at segment" in client.predict("a storm at sea", 1, api_name="/live_steer")
    assert "lands at segment" in client.predict(1, 0, api_name="/live_pad")
    video, recipe = client.predict(api_name="/live_download")
    assert imageio_ffmpeg.count_frames_and_secs(video)[0] % 33 == 0, "a playable MP4 of whole segments, mid-run"
    assert json.loads(open(recipe).read())["settings"]["seed"] == 4
    with pytest.raises(AppError, match="no live stream"):
        stranger.predict("a fox", 1, api_name="/live_steer")
    with pytest.raises(AppError, match="no pad 12"):
        client.predict(12, 0, api_name="/live_pad")
    assert "Pausing" in client.predict(api_name="/live_pause")
    job.result()
    resumed = client.submit(api_name="/live_resume")
    for update in resumed:
        if "running" in str(update[0]):
            break
    assert "Stopped" in client.predict(api_name="/live_stop")
    resumed.result()
    with pytest.raises(AppError, match="was stopped: start a new one"):
        client.predict(api_name="/live_resume")
