"""One stream on several GPUs, started by `torchrun --nproc-per-node N`: every rank holds the whole model and runs
the same denoising loop on its share of the tokens (context parallelism, see context_parallel.py); rank 0 leads.

Rank 0 alone serves the page or runs the CLI, decodes and writes the frames. The other ranks follow
(`helios.run.follow`): for each run rank 0 sends them its request (a continuation's tensors included), at each
segment's start the prompts it uses (live timeline edits), and at each denoising step whether to stop. These small
messages go over a CPU (gloo) group of their own, so the GPUs' collectives never wait for them and no step waits for the
GPU to answer.

A rank whose run fails says so in the store every rank shares (`Ranks.fail`); a watcher thread on each rank reads it,
and every other rank ends at once, the leader with the failure in words, instead of waiting in a collective for a
rank that is gone.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from ..request import GenerationRequest

DONE = "done"
"""What the leader sends when it is done: the followers' loop (`helios.run.follow`) ends."""
FAILED, SAID = "helios/failed", "helios/failure-said"
SAY_WAIT_S = 5.0
"""How long a failed follower waits for the leader to have said so before it exits (torchrun then ends the rest)."""
LEADER_GRACE_S = 3.0
"""How long a failed leader's own code has to say so and exit (the CLI does) before its watcher does it (the app
would go on serving without followers); the followers wait for that before they end."""


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process among those sharing one stream; with one (no torchrun) every method is a no-op."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    control: Any = None
    """The gloo group the leader's messages travel on."""

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def share(self, value):
        """The leader's `value` on every rank (each rank passes its own; the followers' are ignored)."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def stop(self, wanted: bool) -> bool:
        """Whether the leader wants the run to stop, on every rank, at the same step."""
        if self.size == 1:
            return wanted
        flag = torch.tensor([int(wanted)])
        dist.broadcast(flag, src=0, group=self.control)
        return bool(flag.item())

    def send(self, request: GenerationRequest) -> None:
        """The leader starts a run: the followers start the same one."""
        if self.size > 1:
            self.share(tensors_on("cpu", request))

    def fail(self, exc: BaseException) -> None:
        """This rank's run failed: the others end now rather than wait for it in a collective."""
        if self.size == 1:
            return
        store = dist.distributed_c10d._get_default_store()
        store.set(FAILED, f"{self.rank}\n{worded(exc)}")
        if not self.leader:
            _wait_for(store, SAID, SAY_WAIT_S)

    def dismiss(self) -> None:
        """The leader is done: the followers return from `follow`."""
        if self.size > 1 and self.leader:
            self.share(DONE)


@functools.cache
def ranks() -> Ranks:
    """This process's place among the ranks `torchrun` started; one rank when it started none."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return Ranks()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        dist.init_process_group("cuda:nccl,cpu:gloo" if torch.cuda.is_available() else "gloo")
    me = Ranks(dist.get_rank(), dist.get_world_size(), local_rank, dist.new_group(backend="gloo"))
    watcher = threading.Thread(target=_watch, args=(me,), name="helios-rank-watch", daemon=True)
    watcher.start()
    atexit.register(_stop_watching, watcher)
    return me


_STOP = threading.Event()


def _stop_watching(watcher: threading.Thread) -> None:
    """At a normal exit the watcher leaves its store call first: a daemon thread still in one when Python finalises
    is ended inside C++ code, which aborts the rank ("terminate called without an active exception", seen in CPU
    tests)."""
    _STOP.set()
    watcher.join(1.0)


def worded(exc: BaseException) -> str:
    from ..errors import HeliosError

    text = str(exc) if isinstance(exc, HeliosError) else f"{type(exc).__name__}: {exc}"
    return text.split("\n")[0]


def _watch(me: Ranks) -> None:
    """Beside each rank's work: once a rank has failed, the leader says so and every rank ends, even while its main
    thread waits in a collective that will never complete."""
    store = dist.distributed_c10d._get_default_store()
    while not store.check([FAILED]):
        if _STOP.wait(0.2):
            return
    rank, message = store.get(FAILED).decode().split("\n", 1)
    if not me.leader:
        if int(rank) == me.rank:
            return  # its own loop raises and exits
        _wait_for(store, SAID, LEADER_GRACE_S + 1)  # ending first would make torchrun end the leader before it speaks
        os._exit(1)
    if int(rank) == me.rank:
        time.sleep(LEADER_GRACE_S)
    print(f"\nerror: rank {rank} failed: {message}", file=sys.stderr, flush=True)  # below any progress line
    store.set(SAID, "1")
    os._exit(1)


def _wait_for(store, key: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not store.check([key]) and time.monotonic() < deadline:
        time.sleep(0.05)


def tensors_on(device, request: GenerationRequest) -> GenerationRequest:
    """A continuation's tensors travel to the followers by host memory, and go to each follower's GPU there."""
    after = request.after
    if after is None:
        return request
    moved = {k: getattr(after, k).to(device) for k in ("prefix", "history") if getattr(after, k) is not None}
    return dataclasses.replace(request, after=dataclasses.replace(after, **moved))
