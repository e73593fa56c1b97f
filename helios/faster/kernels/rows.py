"""How the kernels lay out their work over rows, and address a per-token row that may be broadcast or a strided view:
base, batch and token strides."""

import torch


def token_rows(t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """t broadcast to like's (B, N, D) without a copy: the tensor and its batch and token strides."""
    t = t.expand_as(like)
    if t.stride(-1) != 1:
        t = t.contiguous()
    return t, t.stride(0), t.stride(1)


def rows_per_program(row_block: int) -> int:
    """Short rows are packed several to a program, so each program still moves a few thousand elements."""
    return max(1, 4096 // row_block)
