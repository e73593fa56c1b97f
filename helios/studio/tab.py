"""What every tab of the page is built from, and the one place where errors become words (`in_words`).

A tab is a module with `build(page) -> its components`: it lays out its components, defines its handlers (each with
the docstring the API and MCP show) and wires them. Tabs built earlier lend theirs through `Page` (Compare reads the
Generate tab's uploads, length and resolution)."""

from __future__ import annotations

import functools
import html
import inspect
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr

from helios.engine import Engine
from helios.errors import HeliosError
from helios.limits import Limits

from .live_stream import LiveStreams
from .sessions import Sessions

if TYPE_CHECKING:
    from .generate_tab import GenerateTab

GPU = dict(concurrency_id="gpu", concurrency_limit=1)
"""Every run shares the one GPU queue: one at a time, in order."""
QUIET = dict(concurrency_limit=None, api_visibility="private", show_progress="hidden")
"""A page-only event that needs no GPU and shows no spinner."""


@dataclass
class Page:
    engine: Engine
    sessions: Sessions
    live: LiveStreams
    ready: threading.Event
    demo: gr.Blocks
    default_resolution: str
    generate: GenerateTab | None = None
    """The Generate tab's components, once it is built."""
    adapters_changed: tuple = ()
    """The events after which a session's uploaded LoRA adapters have changed (the Generate tab's): a tab that shows
    them chains its update on."""

    @property
    def limits(self) -> Limits:
        return self.engine.options.limits


def user_error(exc: Exception) -> gr.Error:
    """Gradio renders toasts as HTML and our messages may quote user text: escaped, so they are only ever text."""
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, HeliosError):
        return gr.Error(html.escape(str(exc), quote=False), print_exception=False)
    return gr.Error(f"Generation failed unexpectedly ({type(exc).__name__}): {html.escape(str(exc), quote=False)}")


def in_words(handler):
    """A page handler whose every failure reaches the user as one escaped line, never a traceback: our errors in
    their own words, anything else named as unexpected."""
    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def streamed(*args, **kwargs):
            try:
                yield from handler(*args, **kwargs)
            except Exception as exc:
                raise user_error(exc) from None
        return streamed

    @functools.wraps(handler)
    def answered(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except Exception as exc:
            raise user_error(exc) from None
    return answered
