"""The Gradio page: a banner over the tabs, each built by its own module. A new tab is a module with
`build(page)` and a line in `TABS`."""

from __future__ import annotations

import html
import threading
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from helios.engine import Engine

from . import compare_tab, generate_tab, live_tab
from .live_stream import LiveStreams
from .models import ModelChoices
from .sessions import Sessions
from .settings import StudioSettings
from .tab import Page

TABS = (generate_tab, live_tab, compare_tab)
"""In page order; a tab may use the components of those before it."""
CSS = """
.metrics-table th { text-align: left; padding-right: 1em; font-weight: 600; }
.banner { padding: .6em 1em; border-radius: 8px; background: #fef3c7; color: #78350f; }
.live-player video { width: 100%; max-height: 480px; background: #000; border-radius: 8px; }
"""
WARMING_UP = (
    "Warming up with one short run (on a GPU: compiling the blocks, or beginning their build on a first start, and "
    "capturing CUDA graphs); requests wait until it is done."
)


def build_demo(
    engine: Engine, banner: str, default_resolution: str, ready: threading.Event | None = None,
    settings: StudioSettings = StudioSettings(), live: LiveStreams | None = None, choices: ModelChoices | None = None,
) -> gr.Blocks:
    """`ready`, if given, is set once the engine has warmed up: until then the banner says so and requests wait.
    `live` holds the runs' live streams; whoever serves the page mounts its route (`LiveStreams.mount`). `choices`:
    the models a comparison may run on (by default the engine's own and the catalog's)."""
    if ready is None:
        ready = threading.Event()
        ready.set()
    sessions = Sessions(engine, ready, settings, root=Path(get_upload_folder()) / "helios-runs", choices=choices)
    with gr.Blocks(title="Helios Studio", delete_cache=settings.cache_sweep) as demo:
        gr.Markdown("# Helios Studio\nReal-time, minute-long video with Helios, streamed while it is generated.")
        shown = gr.HTML(_banner_state(banner, ready)[0])
        page = Page(engine, sessions, live or LiveStreams(settings.live_streams_kept), ready, demo, default_resolution)
        with gr.Tabs():
            for tab in TABS:
                tab.build(page)
        demo.unload(_forgetting(sessions))
        if not ready.is_set():
            timer = gr.Timer(1.0)
            timer.tick(lambda: _banner_state(banner, ready), None, [shown, timer], api_visibility="private")
    return demo


def _forgetting(sessions: Sessions):
    """A closed page releases its session's runs and files."""
    def forget(request: gr.Request) -> None:
        sessions.forget(request.session_hash)
    return forget


def _banner_state(banner: str, ready: threading.Event):
    text = banner if ready.is_set() else f"{WARMING_UP} {banner}"
    return f'<div class="banner" id="banner">{html.escape(text)}</div>', gr.Timer(active=not ready.is_set())
