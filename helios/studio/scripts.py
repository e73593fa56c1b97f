"""The page's scripts, kept as JavaScript in js/ and handed to Gradio as the functions it runs."""

from __future__ import annotations

import json
from pathlib import Path

from .playback import ENDLESS_KEEP_S, ENDLESS_MARGIN_S, MARGIN, SEGMENT_S

SCRIPTS = Path(__file__).parent / "js"


def script(name: str) -> str:
    """A script of js/ as the function Gradio runs, its heading comment left out."""
    lines = (SCRIPTS / name).read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.startswith("//"))


def page_script() -> str:
    """What the page installs when it loads (`launch(js=...)` takes one function): the scripts in js/, the smooth
    playback given the segment length and its margin."""
    playback = json.dumps({"segmentS": SEGMENT_S, "margin": MARGIN})
    players = json.dumps([["#live", "#metrics"], ["#live-player", "#live-metrics"]])
    endless = json.dumps({"keepS": ENDLESS_KEEP_S, "segmentS": SEGMENT_S, "marginS": ENDLESS_MARGIN_S})
    return (f"() => {{ ({script('first_frame.js')})(); ({script('smooth_playback.js')})({playback}); "
            f"({script('live_player.js')})({players}); ({script('endless_playback.js')})({endless}); }}")
