"""The caller's handle on a running generation: cancel it, swap its timeline, watch its steps. Thread-safe."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from .errors import Cancelled
from .timeline import PromptTimeline


@dataclass(frozen=True)
class StepProgress:
    segment: int
    segments: int
    step: int
    steps: int


class GenerationControl:
    def __init__(self, on_step: Callable[[StepProgress], None] | None = None):
        self._cancel = threading.Event()
        self._abandoned = threading.Event()
        self._lock = threading.Lock()
        self._timeline: PromptTimeline | None = None
        self.on_step = on_step

    def cancel(self) -> None:
        self._cancel.set()

    def cancel_quietly(self) -> None:
        """Stop the work without marking the run as stopped by the user (the caller went away or finished)."""
        self._abandoned.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def set_timeline(self, timeline: PromptTimeline) -> None:
        """Takes effect at the next segment boundary."""
        with self._lock:
            self._timeline = timeline

    def timeline(self, default: PromptTimeline) -> PromptTimeline:
        with self._lock:
            return self._timeline or default

    def step(self, progress: StepProgress) -> None:
        """Called by the engine between denoising steps; raises Cancelled once `cancel` was called."""
        if self.on_step is not None:
            self.on_step(progress)
        if self._cancel.is_set() or self._abandoned.is_set():
            raise Cancelled("Generation stopped.")
