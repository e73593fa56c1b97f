"""Transformer blocks that live in host memory and pass through two GPU slots, each copied in while the blocks before
it compute.

The streamed blocks are spread evenly among the resident ones, not bunched at the end: a copy then overlaps the
compute of every resident block up to the next streamed one, instead of a single block's (on the H100 a bf16 block
takes longer to copy than to run).

Every streamed block's parameters are permanently views of one slot (blocks alternate between the two), so the
compiled block sees the same tensors each call and only their contents change. Before block i runs, the compute
stream waits for its copy; then block i+1's copy is queued on a side stream, behind block i-1's compute, which
last read that slot. After the last streamed block, the first one is queued again, so its copy overlaps the resident
blocks of the next call. From pinned host memory the copies never make the host wait.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils._python_dispatch import is_traceable_wrapper_subclass


class BlockStream:
    def __init__(self, blocks: list[nn.Module], device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.host = [[_pinned(t.detach()) if self.cuda else t.detach() for t in plain_tensors(b)] for b in blocks]
        self.slots = [[torch.empty_like(t, device=device) for t in self.host[0]] for _ in range(min(2, len(blocks)))]
        for i, block in enumerate(blocks):
            for t, slot_t in zip(plain_tensors(block), self.slots[i % len(self.slots)]):
                t.data = slot_t
        self.count = len(blocks)
        self.copy_stream = torch.cuda.Stream(device) if self.cuda else None
        self.copied = [None] * self.count
        self.done = [None] * self.count
        self.owner = [None] * len(self.slots)
        self.bytes_moved = 0
        self._queue_copy(0)

    @property
    def block_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.host[0])

    def before(self, i: int) -> None:
        if self.copied[i] is not None:
            torch.cuda.current_stream(self.device).wait_event(self.copied[i])
        following = (i + 1) % self.count
        if following % len(self.slots) != i % len(self.slots):
            self._queue_copy(following)

    def after(self, i: int) -> None:
        """With an odd count the first block shares the last one's slot: its copy waits until the last is done."""
        if self.cuda:
            self.done[i] = torch.cuda.current_stream(self.device).record_event()
        self._queue_copy((i + 1) % self.count)

    def _queue_copy(self, i: int) -> None:
        slot = i % len(self.slots)
        previous = self.owner[slot]
        if previous == i:
            return
        self.owner[slot] = i
        with torch.cuda.stream(self.copy_stream) if self.cuda else contextlib.nullcontext(), torch.no_grad():
            if self.cuda and previous is not None and self.done[previous] is not None:
                self.copy_stream.wait_event(self.done[previous])
            for dst, src in zip(self.slots[slot], self.host[i]):
                dst.copy_(src, non_blocking=self.cuda)
            if self.cuda:
                self.copied[i] = self.copy_stream.record_event()
        self.bytes_moved += self.block_bytes


class StreamedBlock(nn.Module):
    """Wraps a block so its weights are in place before it runs; the wrapped block is still the one compiled."""

    def __init__(self, block: nn.Module, stream: BlockStream, index: int):
        super().__init__()
        self.block = block
        self.stream = stream
        self.index = index

    def forward(self, *args, **kwargs):
        self.stream.before(self.index)
        out = self.block(*args, **kwargs)
        self.stream.after(self.index)
        return out


def streamed_positions(count: int, resident: int) -> list[int]:
    """Which of `count` blocks are streamed when `resident` stay: evenly spaced, the last block always among them."""
    streamed = count - resident
    return [(k + 1) * count // streamed - 1 for k in range(streamed)] if streamed > 0 else []


def apply_streaming(blocks: nn.ModuleList, positions: list[int], device: torch.device) -> BlockStream | None:
    """Stream the blocks at `positions`, keep the rest; returns the stream (None if none)."""
    if not positions:
        return None
    stream = BlockStream([blocks[p] for p in positions], device)
    for k, p in enumerate(positions):
        blocks[p] = StreamedBlock(blocks[p], stream, k)
    return stream


def _pinned(t: torch.Tensor) -> torch.Tensor:
    """Placement moves streamed blocks to pinned host memory as it fills them; anything else is copied there."""
    return t if t.device.type == "cpu" and t.is_pinned() else t.to("cpu").pin_memory()


def plain_tensors(block: nn.Module) -> list[torch.Tensor]:
    """Plain tensors only: a quantized weight (a tensor subclass, as torchao's Float8Tensor) streams as its parts."""
    return [part for t in (*block.parameters(), *block.buffers()) for part in _parts(t)]


def _parts(t: torch.Tensor) -> list[torch.Tensor]:
    if not is_traceable_wrapper_subclass(t):
        return [t]
    names, _ = t.__tensor_flatten__()
    return [part for name in names for part in _parts(getattr(t, name))]
