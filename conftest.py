"""Before anything imports Triton: without a GPU its kernels run in the interpreter (on the CPU)."""

import os
from pathlib import Path

if not Path("/dev/nvidia0").exists() and not Path("/dev/nvidiactl").exists():
    os.environ.setdefault("TRITON_INTERPRET", "1")
