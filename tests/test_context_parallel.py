"""Context parallelism on the CPU: two processes over gloo give the frames of one, with the tiny Distilled model
(its history-key amplification included), through diffusers' plan with Ulysses attention. Ring attention needs an
attention backend that returns log-sum-exps (cuDNN, flash): the CPU's native one does not, so ring waits for GPUs."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from helios.engine import Engine
from helios.loading import load_model
from helios.request import GenerationRequest, GenerationSettings
from helios.timeline import PromptTimeline

pytest.importorskip("diffusers.models._modeling_parallel")


def frames_of(model) -> np.ndarray:
    request = GenerationRequest(
        PromptTimeline.single("a paper boat"),
        GenerationSettings(height=128, width=192, num_frames=66, pyramid_steps=(1, 1, 1), seed=3),
    )
    return np.concatenate([s.frames for s in Engine(model).start(request).segments()])


def _rank(rank: int, ranks: int, port: int, out: str) -> None:
    from diffusers import ContextParallelConfig
    from torch.distributed.device_mesh import init_device_mesh

    from helios.placement.context_parallel import enable_context_parallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    torch.accelerator.device_count = lambda: 1  # diffusers places ranks on accelerators; here each rank is a CPU
    mesh = init_device_mesh("cpu", (1, ranks), mesh_dim_names=("ring", "ulysses"))
    model = load_model("tiny")
    enable_context_parallel(model.transformer, ContextParallelConfig(ulysses_degree=ranks, mesh=mesh))
    frames = frames_of(model)
    if rank == 0:
        np.save(out, frames)
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_give_the_frames_of_one(tmp_path):
    model = load_model("tiny")
    assert model.transformer.blocks[0].attn1.is_amplify_history, "the history correction must be exercised"
    one = frames_of(model)
    out = tmp_path / "two.npy"
    mp.spawn(_rank, args=(2, free_port(), str(out)), nprocs=2)
    two = np.load(out)
    assert two.shape == one.shape
    assert np.abs(two.astype(int) - one).max() <= 1, "fp32 on the CPU: only the summation order differs"
