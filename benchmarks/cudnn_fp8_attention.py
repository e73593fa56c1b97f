"""`python -m benchmarks.cudnn_fp8_attention [--out FILE]`: cuDNN's fused FP8 attention (`sdpa_fp8` of
nvidia-cudnn-frontend) against cuDNN's bf16 attention at Helios' self-attention shape (one segment with history:
11,040 tokens, 8,640 of them the segment's, 40 heads x 128), measured before it is wired into the blocks (issue 45).

Per call: milliseconds, TFLOP/s, and the output's relative error against cuDNN's bf16 output. The FP8 rows include
what a block would run besides the kernel: the history keys scaled, q, k and v quantized per tensor (one fp32 scale
each), and the output widened back to bf16. Variants: the output in FP8 (what cuDNN's fused FP8 attention gives on
Hopper) or in bf16 (Blackwell with cuDNN >= 9.13: a row that cannot be built says so), and q and k rotated by a
Hadamard matrix first, which spreads a wide head dimension's outliers before e4m3 clips them (q Hᵀ H kᵀ = q kᵀ). A
last row replays the FP8 path from a CUDA graph, as the engine would. Needs a CUDA GPU and the frontend's wheel
(`pip install nvidia-cudnn-frontend`; not in the lock until it is measured to pay). One JSON line per row, as it
comes."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from benchmarks.kernel_bench import CONTEXT, HEADS, TOKENS, bench

E4M3_MAX = 448.0
HEAD_DIM = 128


def per_tensor(t: torch.Tensor, fp8_max: float = E4M3_MAX) -> tuple[torch.Tensor, torch.Tensor]:
    """(e4m3 values, the fp32 factor that turns them back): one scale for the whole tensor, kept on the GPU."""
    amax = t.abs().amax().float().clamp(min=1e-12).reshape(1, 1, 1, 1)
    return (t.float() * (fp8_max / amax)).to(torch.float8_e4m3fn), amax / fp8_max


def hadamard(n: int, device) -> torch.Tensor:
    """The n x n Hadamard matrix (Sylvester's), scaled to be orthonormal."""
    h = torch.ones(1, 1, device=device)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / math.sqrt(n)


class CudnnFp8Attention:
    """One built cuDNN graph for (batch, tokens, heads, 128) q, k, v in the blocks' layout; `__call__` takes the
    quantized tensors and their factors and returns the output and its factor (FP8 output) or the output alone."""

    def __init__(self, shape: tuple[int, int, int, int], out_dtype: torch.dtype):
        import cudnn

        batch, tokens, heads, dim = shape
        self.dims = (batch, heads, tokens, dim)
        self.strides = (tokens * heads * dim, dim, heads * dim, 1)
        self.out_dtype = out_dtype
        self.handle = cudnn.create_handle()
        e4m3, fp32 = cudnn.data_type.FP8_E4M3, cudnn.data_type.FLOAT
        graph = cudnn.pygraph(io_data_type=e4m3, intermediate_data_type=fp32, compute_data_type=fp32,
                              handle=self.handle)
        self.q, self.k, self.v = (graph.tensor(name=n, dim=self.dims, stride=self.strides, data_type=e4m3)
                                  for n in ("q", "k", "v"))
        one = dict(dim=(1, 1, 1, 1), stride=(1, 1, 1, 1), data_type=fp32)
        self.scalars = [graph.tensor(name=n, **one) for n in ("descale_q", "descale_k", "descale_v", "descale_s",
                                                                 "scale_s", "scale_o")]
        options = dict(attn_scale=1.0 / math.sqrt(dim), use_causal_mask=False)
        try:
            out, _, amax_s, amax_o = graph.sdpa_fp8(self.q, self.k, self.v, *self.scalars, generate_stats=False,
                                                    **options)
        except TypeError:  # frontends before `generate_stats` name it by its opposite
            out, _, amax_s, amax_o = graph.sdpa_fp8(self.q, self.k, self.v, *self.scalars, is_inference=True,
                                                    **options)
        kind = e4m3 if out_dtype == torch.float8_e4m3fn else cudnn.data_type.BFLOAT16
        out.set_output(True).set_dim(self.dims).set_stride(self.strides).set_data_type(kind)
        for amax in (amax_s, amax_o):
            amax.set_output(True).set_dim((1, 1, 1, 1)).set_stride((1, 1, 1, 1)).set_data_type(fp32)
        graph.validate()
        graph.build_operation_graph()
        graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        graph.check_support()
        graph.build_plans()
        self.graph, self.out, self.amaxes = graph, out, (amax_s, amax_o)
        self.workspace = torch.empty(graph.get_workspace_size(), dtype=torch.uint8, device="cuda")
        self.amax_values = [torch.empty(1, 1, 1, 1, device="cuda") for _ in range(2)]
        self.probabilities = (torch.full((1, 1, 1, 1), 1 / E4M3_MAX, device="cuda"),
                              torch.full((1, 1, 1, 1), E4M3_MAX, device="cuda"))
        """The softmax's probabilities lie in [0, 1]: their FP8 scale is fixed."""

    def __call__(self, q8, k8, v8, q_factor, k_factor, v_factor, out_scale) -> torch.Tensor:
        import cudnn

        cudnn.set_stream(handle=self.handle, stream=torch.cuda.current_stream().cuda_stream)
        out = torch.empty_strided((self.dims[0], self.dims[2], self.dims[1], self.dims[3]),
                                  (self.strides[0], self.strides[2], self.strides[1], 1),
                                  dtype=self.out_dtype, device="cuda")
        values = [q_factor, k_factor, v_factor, *self.probabilities, out_scale]
        pack = {self.q: q8.transpose(1, 2), self.k: k8.transpose(1, 2), self.v: v8.transpose(1, 2),
                self.out: out.transpose(1, 2), **dict(zip(self.scalars, values)),
                **dict(zip(self.amaxes, self.amax_values))}
        self.graph.execute(pack, self.workspace, handle=self.handle)
        return out


def fp8_path(attention: CudnnFp8Attention, q, k, v, head_scale, history: int, rotate: torch.Tensor | None):
    """What a block would run: history keys amplified, (q, k rotated,) quantized, attended, widened to bf16."""
    k = torch.cat([k[:, :history] * head_scale[None, None, :, None].to(k.dtype), k[:, history:]], 1)
    if rotate is not None:
        q, k = q @ rotate, k @ rotate
    (q8, qf), (k8, kf), (v8, vf) = per_tensor(q), per_tensor(k), per_tensor(v)
    out_scale = 1 / vf  # |o| <= max |v|: the output's FP8 range is v's
    out = attention(q8, k8, v8, qf, kf, vf, out_scale)
    if out.dtype == torch.float8_e4m3fn:
        return (out.float() * vf).to(torch.bfloat16)
    return out


def rows():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, TOKENS, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    head_scale = torch.rand(HEADS, device="cuda") * 9 + 1
    history = TOKENS - CONTEXT
    flops = 4 * HEADS * TOKENS * TOKENS * HEAD_DIM
    scaled_k = torch.cat([k[:, :history] * head_scale[None, None, :, None].to(k.dtype), k[:, history:]], 1)

    def bf16():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return torch.nn.functional.scaled_dot_product_attention(
                q.transpose(1, 2), scaled_k.transpose(1, 2), v.transpose(1, 2)
            ).transpose(1, 2)

    reference = bf16().float()
    variants = [("bf16 SDPA, cuDNN (history keys scaled beforehand, not timed)", bf16, None)]
    rotate = hadamard(HEAD_DIM, "cuda").to(torch.bfloat16)
    for out_dtype in (torch.float8_e4m3fn, torch.bfloat16):
        try:
            attention = CudnnFp8Attention(tuple(q.shape), out_dtype)
        except Exception as exc:
            yield dict(variant=f"cuDNN FP8, {out_dtype} output", error=f"{type(exc).__name__}: {str(exc)[:300]}")
            continue
        for name, r in (("", None), (", Hadamard q and k", rotate)):
            variants.append((f"cuDNN FP8 per tensor, {str(out_dtype).removeprefix('torch.')} output{name}",
                             lambda a=attention, r=r: fp8_path(a, q, k, v, head_scale, history, r), attention))
    for name, fn, _ in variants:
        try:
            out = fn().float()
            ms = bench(fn)
            error = ((out - reference).norm() / reference.norm()).item()
            yield dict(variant=name, ms=round(ms, 3), tflops=round(flops / ms / 1e9, 1), rel_err=round(error, 5))
        except Exception as exc:
            yield dict(variant=name, error=f"{type(exc).__name__}: {str(exc)[:300]}")
    fp8 = next((fn for name, fn, attention in variants if attention is not None), None)
    if fp8 is not None:
        yield captured(fp8, reference)


def captured(fn, reference: torch.Tensor) -> dict:
    """The FP8 path captured in a CUDA graph and replayed: the engine replays its blocks so."""
    try:
        for _ in range(2):
            fn()
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()
        graph.replay()
        torch.cuda.synchronize()
        error = ((out.float() - reference).norm() / reference.norm()).item()
        return dict(variant="the first FP8 row, replayed from a CUDA graph", ms=round(bench(graph.replay), 3),
                    rel_err=round(error, 5))
    except Exception as exc:
        return dict(variant="the first FP8 row, replayed from a CUDA graph",
                    error=f"{type(exc).__name__}: {str(exc)[:300]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="append one JSON line per row here too")
    args = parser.parse_args(argv)
    about = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, cudnn=torch.backends.cudnn.version(),
                 shape=f"1 x {TOKENS} tokens ({CONTEXT} the segment's) x {HEADS} heads x {HEAD_DIM}")
    try:
        import cudnn

        about["cudnn_frontend"] = cudnn.__version__
        about["cudnn_backend"] = cudnn.backend_version()
    except Exception as exc:
        about["cudnn_frontend"] = f"{type(exc).__name__}: {exc}"
    for row in (about, *rows()):
        line = json.dumps(row)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as out:
                out.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
