"""On a GPU: `python -m helios compile` on the tiny model with its traceback kept, then runs from the folder (CUDA
graphs on) against the JIT path; prints the largest and mean difference of the frames."""

import os
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
    args = ["generate", "--model", "tiny", "--height", "64", "--width", "128", "--prompt", "check", "--frames", "66",
            "--steps", "1,1,1", "--aot", aot, "--out", out, *flags]
    try:
        cli.generate(cli.build_parser().parse_args(args))
    except Exception:
        traceback.print_exc()
        raise SystemExit(1)
    frames[aot] = np.load(out).astype(int)
diff = abs(frames["auto"] - frames["off"])
print(f"tiny AoT vs JIT: max {diff.max()} mean {diff.mean():.4f}")
