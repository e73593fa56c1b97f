"""The app's knobs, in one place. Free of the engine, so `app.py` reads the defaults for its flags without importing
it (a bad flag is answered in seconds)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class StudioSettings:
    idle_release_s: float = 1800.0
    """A session idle this long is released with its files: API clients never send an unload."""
    disk_cap_bytes: int = 4 * 2**30
    """The runs' files together stay under this, the least recently used removed first."""
    runs_kept: int = 8
    """Runs a session keeps in its history; older ones are deleted with their files (the disk cap may go sooner)."""
    queue_size: int = 32
    """Requests that may wait for the GPU, which runs one at a time."""
    live_streams_kept: int = 64
    """Live streams kept after their run, for a page that reconnects: twice the queue's length."""
    session_states: int = 64
    """Gradio keeps a copy of the page's configuration per session it has seen (160 KiB measured, more as outputs
    update) up to 10,000, and API clients never close theirs (a 300-run soak grew 0.27 MiB a run); runs live in
    `Sessions`, so the last 64 are enough: twice the queue's length."""
    cache_sweep: tuple[int, int] = (3600, 6 * 3600)
    """Every hour Gradio deletes the files it cached for the page (uploads, clips, videos) over 6 hours old."""
    monitoring: bool = False
    """Gradio 6 serves event counts and durations at /monitoring/summary to anyone by default; `--monitoring` asks."""
    live_recording_bytes: int = 512 * 2**20
    """A live session's recording keeps its most recent clips within this (~20 minutes at 384x640); the stream
    itself never stops for the disk."""
    live_yield_s: float = 180.0
    """With someone else's run waiting for the GPU, a live stream pauses (resumable) after this long."""
    live_leg_s: float = 110.0
    """On ZeroGPU, where one GPU call has a time limit, a live stream pauses after this long; Resume goes on."""
    analytics_events: int = 256
    """Gradio keeps the timings of its last 10,000 events for the monitoring page whether or not it is served: a
    300-run soak through the API grew 6 MiB over its last 250 runs with them (tests/results/README.md); with
    monitoring off the last 256 are kept."""
    loras: tuple = ()
    """The LoRA adapters the app loaded (`--lora`, `helios.lora.file.LoraFile`s): every request carries them, at
    the strengths the timeline gives (the editor has a column per adapter, Live a fader each)."""
    run_history: bool = False
    """Gradio 6 saves every call in the browser to replay from /gradio_api/runs; ours point at files released with
    the session (30 idle minutes), and the page keeps its own history with each run's recipe, so it is off."""

    @property
    def adapters(self) -> tuple[str, ...]:
        """The LoRA adapters' names, in the editor's column order."""
        return tuple(f.name for f in self.loras)
