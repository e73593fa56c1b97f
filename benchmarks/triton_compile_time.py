"""`python -m benchmarks.triton_compile_time [--arch 90]`: seconds to compile each of our VAE's Triton kernels for a
CUDA GPU, as a fresh machine (empty Triton cache) does in its first decode at a size. Needs no GPU: Triton compiles
for the target named. The specializations are those a 384x640 decode of the Wan VAE uses: the RMS norm + SiLU at
96, 192 and 384 channels, the causal convolution at 16 -> 16 (1x1x1, before the decoder), 16 -> 384 (its input),
96 -> 96 and 96 -> 3 (its last stage and output)."""

import argparse
import os
import tempfile
import time

os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="triton-cold-")  # as on a fresh machine
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from helios.faster.kernels.causal_conv3d import _causal_conv3d_kernel  # noqa: E402
from helios.faster.kernels.rms_norm_silu import _rms_norm_silu_kernel  # noqa: E402
from helios.faster.kernels.rows import rows_per_program  # noqa: E402

NORM = {"x_ptr": "*bf16", "gamma_ptr": "*bf16", "out_ptr": "*bf16", "rows": "i32", "C": "i32", "scale": "fp32",
        "ROWS": "constexpr", "BLOCK": "constexpr"}
CONV = {"x_ptr": "*bf16", "w_ptr": "*bf16", "bias_ptr": "*bf16", "out_ptr": "*bf16", "voxels": "i32", "H": "i32",
        "W": "i32", "CO": "i32", "sx_t": "i32", "sx_h": "i32", **dict.fromkeys(
            ("C", "KT", "KH", "KW", "BLOCK_M", "BLOCK_N", "BLOCK_K", "PRECISION"), "constexpr")}


def kernels():
    for channels in (96, 192, 384):
        block = triton.next_power_of_2(channels)
        yield f"rms_norm_silu C={channels}", _rms_norm_silu_kernel, NORM, dict(ROWS=rows_per_program(block), BLOCK=block), dict(num_warps=4)
    for c, co, k in ((16, 16, 1), (16, 384, 3), (96, 96, 3), (96, 3, 3)):
        consts = dict(C=c, KT=k, KH=k, KW=k, BLOCK_M=256, BLOCK_N=min(128, max(16, triton.next_power_of_2(co))),
                      BLOCK_K=64 if c % 64 == 0 else 32 if c % 32 == 0 else 16, PRECISION="tf32")
        yield f"causal_conv3d {c}->{co} {k}x{k}x{k}", _causal_conv3d_kernel, CONV, consts, dict(num_warps=8, num_stages=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability as one number (90: Hopper)")
    target = GPUTarget("cuda", parser.parse_args().arch, 32)
    total = 0.0
    for name, fn, signature, constants, options in kernels():
        start = time.perf_counter()
        triton.compile(ASTSource(fn, signature, constants), target=target, options=options)
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{name}: {seconds:.2f} s", flush=True)
    print(f"all {total:.2f} s")


if __name__ == "__main__":
    main()
