"""`torchrun --nproc-per-node N tests/ranks_on_cpu.py {app.py | helios} ARGS`: the app or the CLI as several ranks on
a CPU. diffusers places each rank on an accelerator and a CPU has none, so here each rank counts as having one.

With HELIOS_TEST_FAULT=RANK:CALLS the transformer of rank RANK raises after CALLS forward passes, as a rank that runs
out of memory or loses its GPU would, while the other ranks wait for it in a collective."""

import os
import runpy
import sys
from pathlib import Path

import torch

torch.accelerator.device_count = lambda: 1
root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root))
fault = os.environ.get("HELIOS_TEST_FAULT")
if fault and fault.split(":")[0] == os.environ.get("RANK"):
    from diffusers import HeliosTransformer3DModel

    calls, forward = [int(fault.split(":")[1])], HeliosTransformer3DModel.forward

    def failing(self, *args, **kwargs):
        calls[0] -= 1
        if calls[0] < 0:
            raise RuntimeError("injected fault")
        return forward(self, *args, **kwargs)

    HeliosTransformer3DModel.forward = failing
target, sys.argv = sys.argv[1], sys.argv[1:]
if target.endswith(".py"):
    runpy.run_path(str(root / target), run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
