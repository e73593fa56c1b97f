"""One stream on several GPUs, started by `torchrun --nproc-per-node N`: every rank holds the whole model and runs
the same denoising loop on its share of the tokens (context parallelism, see context_parallel.py); rank 0 leads.

Rank 0 alone serves the page or runs the CLI, decodes and writes the frames. The other ranks follow
(`helios.run.follow`): for each run
rank 0 sends them its request (a continuation's tensors included), at each segment's start the prompts it uses
(live timeline edits), and at each denoising step whether to stop. These small messages go over a CPU (gloo) group
of their own, so the GPUs' collectives never wait for them and no step waits for the GPU to answer.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from ..request import GenerationRequest

DONE = "done"
"""What the leader sends when it is done: the followers' loop (`helios.run.follow`) ends."""


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
    return Ranks(dist.get_rank(), dist.get_world_size(), local_rank, dist.new_group(backend="gloo"))


def tensors_on(device, request: GenerationRequest) -> GenerationRequest:
    """A continuation's tensors travel to the followers by host memory, and go to each follower's GPU there."""
    after = request.after
    if after is None:
        return request
    moved = {k: getattr(after, k).to(device) for k in ("prefix", "history") if getattr(after, k) is not None}
    return dataclasses.replace(request, after=dataclasses.replace(after, **moved))
