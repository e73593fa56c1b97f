"""One generation: validated, then iterated for one ordered stream of events. The engine below it only denoises and
decodes; the run owns the threads, the one-run-at-a-time turn, stops, live edits, ranks and freeing memory.

Denoising runs on the engine's denoise thread and decoding on the model's decode thread (on the decode stream), while
the caller's thread hands out events, so segment k is decoded and handed out while segment k+1 is being denoised. The
worker queues k+1 on the GPU only once k's decode is queued: at most one segment ahead, and the decode stream's higher
priority lets k reach the user first. Step progress travels on the same queue, so the caller sees everything in the
order it happened.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from .denoise import SamplingPlan
from .engine import Denoised, Engine
from .errors import BadInput, Cancelled, OutOfMemory
from .limits import FRAMES_PER_SEGMENT, output_frames
from .loading import on_device
from .parallel.ranks import DONE, tensors_on
from .request import Continuation, GenerationRequest, GenerationSettings
from .segment import Segment, SegmentTimings, StepProgress
from .timeline import Mix, PromptTimeline, Strengths

_END = object()


class Turns:
    """What the runs of one engine share: one run at a time (the scheduler and the GPU are shared), and one long-lived
    denoise thread. PyTorch keeps cuDNN's autotuned plans per thread, and a fresh thread tunes the VAE again (+1.3 s
    before an image run's first step, H100). Decoding has the model's own thread (loading.decode_thread), where the
    load already tuned it."""

    _of: weakref.WeakKeyDictionary[Engine, Turns] = weakref.WeakKeyDictionary()
    _made = threading.Lock()

    def __init__(self, device: torch.device):
        self.thread = ThreadPoolExecutor(
            1, thread_name_prefix="helios-denoise", initializer=on_device, initargs=(device,)
        )
        self._busy = threading.Lock()

    @classmethod
    def of(cls, engine: Engine) -> Turns:
        with cls._made:
            if engine not in cls._of:
                cls._of[engine] = cls(engine.model.device)
            return cls._of[engine]

    @contextlib.contextmanager
    def turn(self):
        if not self._busy.acquire(blocking=False):
            raise BadInput("The engine is busy with another generation: wait for it to finish.")
        try:
            yield self.thread
        finally:
            self._busy.release()


def free_memory(device: torch.device) -> None:
    """After an out-of-memory: what the allocator caches goes back to the GPU; graphs and weights stay."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


@dataclass
class _Queued:
    """A denoised segment waiting for its decode; `queued` is set once the decode is on the GPU's queue."""

    denoised: Denoised
    queued: threading.Event = field(default_factory=threading.Event)


class RunBase:
    """What every kind of run is to its callers (the app, the CLI, suites): validated at creation, iterated once for
    `StepProgress` and `Segment` events, stopped from any thread. `Run` is ours; `reference.ReferenceRun` is diffusers'
    pipeline behind the same face."""

    engine_name: str
    continuation: Continuation | None = None
    """Where a next run picks up (`GenerationRequest(after=...)`), after each segment handed out."""

    def __init__(self, engine: Engine, request: GenerationRequest):
        """Validates the request (BadInput names the first problem); nothing runs until it is iterated."""
        self.engine = engine
        self.request = request
        self.plan: SamplingPlan = engine.plan(request)
        self._cancel = threading.Event()
        self._abandon = threading.Event()
        self._events: queue.Queue = queue.Queue()
        self._started = False

    @property
    def total_segments(self) -> int:
        return self.request.total_segments

    def cancel(self) -> None:
        """Stop after the current denoising step; what was handed out stays valid."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def set_timeline(self, timeline: PromptTimeline) -> None:
        raise NotImplementedError

    def segments(self) -> Iterator[Segment]:
        return (event for event in self if isinstance(event, Segment))

    def __iter__(self) -> Iterator[StepProgress | Segment]:
        raise NotImplementedError

    @contextlib.contextmanager
    def _working(self, work: Callable[[], object]) -> Iterator[Future]:
        """`work` on the engine's denoise thread, in this run's turn; leaving the block abandons it and waits until
        it has let go of the GPU (the next run's turn starts only then)."""
        if self._started:
            raise RuntimeError("a run is iterated once")
        self._started = True
        with Turns.of(self.engine).turn() as thread:
            worker = thread.submit(work)
            try:
                yield worker
            finally:
                self._abandon.set()
                while not worker.done():
                    self._release_waiting_worker()
                self._events = queue.Queue()

    def _release_waiting_worker(self) -> None:
        try:
            item = self._events.get(timeout=0.1)
        except queue.Empty:
            return
        if isinstance(item, _Queued):
            item.queued.set()


class Run(RunBase):
    """Our engine's run; `set_timeline`, `steer` and `pause` work from any thread while it runs."""

    engine_name = "ours"

    def __init__(self, engine: Engine, request: GenerationRequest):
        super().__init__(engine, request)
        self.continuation = request.after
        self._timeline = request.timeline
        self._lock = threading.Lock()
        self._steer: tuple[str, int | None, Strengths] | None = None
        self._pause = threading.Event()

    def steer(self, prompt: str | None, crossfade: int | None = None, lora: Strengths = ()) -> None:
        """The prompt (None: the one playing or already sent) and adapter strengths from the next segment to start,
        cross-faded over `crossfade` segments (the timeline's if None); the timeline records where it landed. A
        second steer before that segment replaces the first's prompt and adds its strengths to the first's."""
        with self._lock:
            pending = self._steer or (self._timeline.entries[-1].prompt, None, ())
        prompt = pending[0] if prompt is None else prompt
        lora = tuple({**dict(pending[2]), **dict(lora)}.items())
        changed = self.timeline.changed_at(self.timeline.last_segment + 1, prompt, crossfade, lora)
        self.engine.check_timeline(changed, None, [f.name for f in self.request.loras])
        with self._lock:
            self._steer = (prompt, crossfade, lora)

    @property
    def next_prompt(self) -> str:
        """The prompt of the next segment to start, a steer not yet landed included."""
        with self._lock:
            return self._steer[0] if self._steer else self._timeline.entries[-1].prompt

    def pause(self) -> None:
        """End at the next segment boundary: the segment being made is finished and handed out, and `continuation`
        goes on from exactly there."""
        self._pause.set()

    @property
    def pausing(self) -> bool:
        return self._pause.is_set()

    def set_timeline(self, timeline: PromptTimeline) -> None:
        """Takes effect from the next segment to start."""
        self.engine.check_timeline(timeline, self.total_segments, [f.name for f in self.request.loras])
        with self._lock:
            self._timeline = timeline

    @property
    def timeline(self) -> PromptTimeline:
        with self._lock:
            return self._timeline

    def _on_step(self, progress: StepProgress) -> None:
        """The engine reports each denoising step here; raises Cancelled once every rank is to stop."""
        self._events.put(progress)
        if self.engine.model.ranks.stop(self._cancel.is_set() or self._abandon.is_set()):
            raise Cancelled("Generation stopped.")

    def _cue_at(self, segment: int) -> tuple[Mix, dict[str, float]]:
        """The live timeline's mix and strengths as the segment starts, a steer folded in, rank 0's on every rank;
        every rank ends here when the run is paused."""
        with self._lock:
            if self._steer is not None:
                self._timeline = self._timeline.changed_at(segment, *self._steer)
                self._steer = None
            cue = self._timeline.mix(segment), self._timeline.strengths(segment)
        cue, paused = self.engine.model.ranks.share((cue, self._pause.is_set()))
        if paused:
            raise Cancelled("Paused at a segment boundary.")
        return cue

    def _denoised(self) -> Iterator[Denoised]:
        return self.engine.denoise(self.request, self.plan, self._cue_at, self._on_step)

    def __iter__(self) -> Iterator[StepProgress | Segment]:
        out_of_memory = False
        with self._working(self._denoise):
            try:
                yield from self._hand_out()
            except torch.OutOfMemoryError:
                out_of_memory = True  # the error's frames hold the run's tensors: it must not outlive this block
        if out_of_memory:
            free_memory(self.engine.model.device)
            done = self.continuation.next_segment if self.continuation else 0
            of = f" of {self.total_segments}" if self.total_segments is not None else ""
            raise OutOfMemory(
                f"The GPU ran out of memory in segment {done + 1}{of}: the run was stopped and its memory freed; try a "
                "smaller resolution, or start the app with a tier that keeps less on the GPU "
                "(--memory)."
            )

    def _denoise(self) -> None:
        try:
            self.engine.model.ranks.send(self.request)
            with torch.inference_mode():
                for denoised in self._denoised():
                    item = _Queued(denoised)
                    self._events.put(item)
                    while not item.queued.wait(0.1) and not self._abandon.is_set():
                        pass
        except Cancelled:
            pass
        except BaseException as exc:  # raised again in the caller's thread
            self.engine.model.ranks.fail(exc)  # followers waiting for this rank in a collective end now
            self._events.put(exc)
        self._events.put(_END)

    def _hand_out(self) -> Iterator[StepProgress | Segment]:
        after = self.request.after
        shown = after.frames_shown if after else 0
        held = after.held_frames if after else None
        total = self.total_segments
        frames_left = output_frames(total) - shown if total is not None else None
        while (event := self._events.get()) is not _END:
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, StepProgress):
                yield event
                continue
            try:
                decoded = self.engine.model.decode_thread.submit(
                    self.engine.decode, event.denoised.latents, event.denoised.watch).result()
            finally:
                event.queued.set()
            event = event.denoised
            denoise_s, decode_s = event.watch.seconds()
            frames = decoded.numpy() if held is None else np.concatenate([held, decoded.numpy()])
            held = frames[:0]
            if frames_left is not None:
                frames, held = frames[:frames_left], frames[frames_left:]
                frames_left -= len(frames)
            segment = Segment(
                event.index, self.total_segments, frames, shown, event.prompts,
                SegmentTimings(denoise_s, decode_s, denoise_s + decode_s),
            )
            shown += len(frames)
            s = self.request.settings
            self.continuation = Continuation(
                model=self.engine.model.label, next_segment=event.index + 1, frames_shown=shown, held_frames=held,
                prefix=event.prefix, history=event.history, generator_state=event.generator_state,
                height=s.height, width=s.width, history_sizes=s.history_sizes,
            )
            yield segment


def warm_up(engine: Engine, height: int, width: int) -> None:
    """One short run at this size: compiles the blocks, captures the CUDA graphs (every segment and step preset of a
    size uses the same shapes) and autotunes the VAE, so the first user's run is already at full speed."""
    flavour = engine.model.flavour
    stages = len(flavour.default_pyramid_steps) if flavour.pyramid else 0
    settings = GenerationSettings(
        height=height, width=width, num_frames=FRAMES_PER_SEGMENT, pyramid_steps=(1,) * stages or None,
        num_inference_steps=2,
    )
    for _ in Run(engine, GenerationRequest(PromptTimeline.single("warm-up"), settings)).segments():
        pass


def follow(engine: Engine) -> None:
    """A follower rank's whole life (parallel/ranks.py): run each request the leader sends, in step with it, until
    the leader is done."""
    me = engine.model.ranks
    while (request := me.share(None)) != DONE:
        run = Run(engine, tensors_on(engine.model.device, request))
        try:
            with torch.inference_mode():
                for _ in run._denoised():
                    pass
        except Cancelled:
            pass
        except BaseException as exc:
            me.fail(exc)
            raise
