"""`torchrun --nproc-per-node N tests/ranks_on_cpu.py {app.py | helios} ARGS`: the app or the CLI as several ranks on
a CPU. diffusers places each rank on an accelerator and a CPU has none, so here each rank counts as having one."""

import runpy
import sys
from pathlib import Path

import torch

torch.accelerator.device_count = lambda: 1
root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root))
target, sys.argv = sys.argv[1], sys.argv[1:]
if target.endswith(".py"):
    runpy.run_path(str(root / target), run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
