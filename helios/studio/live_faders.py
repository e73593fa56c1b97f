"""The Live tab's LoRA faders: one per adapter the app loaded, and hidden ones shown for a session's uploads (the
first `SESSION_FADERS`; the `live_lora` endpoint fades any adapter). Each fades its adapter from the next segment on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gradio as gr

from helios.errors import HeliosError
from helios.lora.file import MAX_STRENGTH

from .tab import QUIET, Page, in_words

SESSION_FADERS = 4


@dataclass
class Faders:
    own: list[gr.Slider]
    """One per adapter the app loaded (`--lora`)."""
    uploaded: list[gr.Slider]
    """For the session's uploads, hidden until there are some."""


def lay_out(page: Page) -> Faders:
    own = [gr.Slider(-MAX_STRENGTH, MAX_STRENGTH, value=f.strength, step=0.05, label=f"LoRA {f.name}",
                     elem_id=f"live-lora-{f.name}") for f in page.sessions.settings.loras]
    uploaded = [gr.Slider(-MAX_STRENGTH, MAX_STRENGTH, step=0.05, visible=False, elem_id=f"live-session-lora-{n}")
                for n in range(SESSION_FADERS)]
    return Faders(own, uploaded)


def wire(faders: Faders, page: Page, fade: Callable, crossfade: gr.Slider, status: gr.Markdown, **steer) -> None:
    """`fade(adapter, strength, crossfade, request)`: the tab's `live_lora`."""
    sessions = page.sessions

    def uploads(session: str):
        return sessions.loras(session)[len(sessions.settings.loras):]

    def fading(name_of: Callable[[str], str]):
        @in_words
        def moved(strength: float, fade_over: float, request: gr.Request) -> str:
            return fade(name_of(request.session_hash), strength, fade_over, request)
        return moved

    def nth_upload(n: int) -> Callable[[str], str]:
        def name(session: str) -> str:
            mine = uploads(session)
            if n >= len(mine):
                raise HeliosError("That adapter is no longer loaded for this session: upload it again.")
            return mine[n].name
        return name

    def show(request: gr.Request) -> list[gr.Slider]:
        shown = [gr.Slider(visible=True, label=f"LoRA {f.name} (this session's)", value=f.strength)
                 for f in uploads(request.session_hash)[:SESSION_FADERS]]
        return shown + [gr.Slider(visible=False)] * (SESSION_FADERS - len(shown))

    names = [lambda session, name=f.name: name for f in sessions.settings.loras]
    names += [nth_upload(n) for n in range(SESSION_FADERS)]
    for name_of, slider in zip(names, [*faders.own, *faders.uploaded]):
        slider.release(fading(name_of), [slider, crossfade], status, **steer, api_visibility="private")
    for changed in page.adapters_changed:
        changed.then(show, None, faders.uploaded, **QUIET)
