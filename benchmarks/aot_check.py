"""On a GPU: `python -m helios compile` on the tiny model with its traceback kept, then a run from the folder (CUDA
graphs on) and a JIT run, each in a fresh process as a user starts it (a run in the building process passed on the
H200 while a fresh one crashed); prints the largest and mean difference of the frames."""

import os
import subprocess
import sys
import tempfile
import traceback

import numpy as np

os.environ["HELIOS_STUDIO_CACHE"] = tempfile.mkdtemp(prefix="tiny-aot-")
flags = sys.argv[1:]
from helios import cli  # noqa: E402

try:
    cli.compile_blocks(cli.build_parser().parse_args(["compile", "--model", "tiny", "--height", "64", "--width", "128", *flags]))
except Exception:
    traceback.print_exc()
    raise SystemExit(1)
frames = {}
for aot in ("auto", "off"):
    out = f"{os.environ['HELIOS_STUDIO_CACHE']}/{aot}.npy"
    run = [sys.executable, "-X", "faulthandler", "-m", "helios", "generate", "--model", "tiny", "--height", "64",
           "--width", "128", "--prompt", "check", "--frames", "66", "--steps", "1,1,1", "--aot", aot, "--out", out, *flags]
    if subprocess.run(run).returncode:
        raise SystemExit(f"the run with --aot {aot} failed")
    frames[aot] = np.load(out).astype(int)
diff = abs(frames["auto"] - frames["off"])
print(f"tiny AoT vs JIT: max {diff.max()} mean {diff.mean():.4f}")
