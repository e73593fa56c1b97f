"""Ahead-of-time compiled transformer blocks: the block the engine would compile at its first request, exported
once with `torch.export` and built by AOTInductor into a package that serves every shape a request takes.

One package serves all 40 blocks: its weights are left out of it (the settings `spaces` uses on ZeroGPU) and each
block lends its own tensors to its copy of the package, so nothing is duplicated and streamed blocks run from their
GPU slots. The number of tokens (pyramid stage, resolution, history) and the present segment's share of them are
dynamic dimensions; the present length reaches the package as the length of a small tensor, because AOTInductor
drops a plain integer input. A folder says what it was built for (`AotKey`); a folder built for another GPU, torch
or weight form is refused in words and the run compiles just in time instead.

Folder layout: `HeliosTransformerBlock/package.pt2` (the layout `spaces.aoti_blocks_load` reads, so the folder can
be pushed to the Hub as a model repo, whose id `--aot` takes too) and `helios-aot.json`. spaces' loader itself cannot
run the package (it would pass the block's integer argument), and it cannot be imported without a CUDA build of
torch: `AotForward` loads it instead, lazily, so on ZeroGPU inside a GPU call as spaces does.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from ..cache import cache_dir
from ..errors import ModelUnavailable
from ..placement import ATTENTION

BLOCK = "HeliosTransformerBlock"
CACHED = ("auto", "jit")
"""`--aot` values that look in the cache (placement.py says what each does where it has no folder)."""
PACKAGE = "package.pt2"
META = "helios-aot.json"
TUNING = {"coordinate_descent_tuning": True, "coordinate_descent_check_all_directions": True}
INDUCTOR = {
    "aot_inductor.package_constants_in_so": False,
    "aot_inductor.package": True,
    "always_keep_tensor_constants": True,
    "joint_graph_constant_folding": False,
    **TUNING,
}
"""Weights stay out of the package, as in the packages `spaces.aoti_compile_and_save` writes: the blocks lend theirs
at load. (Writing them to the package's own weights folder, as an earlier build did, added the example block's
weights to every package, ~0.7 GB in bf16 by its parameter count, which no load read.) A build is paid once, so its
kernels are tuned, which the JIT compile on a user's first run is not (weights/fp8.py)."""


@dataclass(frozen=True)
class AotKey:
    """What a package was built for; any difference means its kernels may not run, or not run this model."""

    device: str
    torch: str
    block: str
    weights: str
    attention: str

    @property
    def name(self) -> str:
        return "-".join((self.device, f"torch{self.torch}", self.block, self.weights, self.attention))

    def differences(self, other: "AotKey") -> list[str]:
        return [
            f"{f.name} {getattr(other, f.name)} (this run: {getattr(self, f.name)})"
            for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)
        ]


def aot_cache() -> Path:
    """Where `python -m helios compile` leaves its folders and runs look for them: one per `AotKey.name`."""
    return cache_dir() / "aot"


def aot_key(config: dict, dtype: torch.dtype, fit, caps) -> AotKey:
    """`config`: the transformer's; `fit`, `caps`: what runs and the machine it runs on."""
    major, minor = caps.compute_capability
    fp8 = fit.tier.fp8_weights
    weights = str(dtype).removeprefix("torch.")
    if fp8:
        weights = f"fp8-{fit.placement.weights.fp8_linears}-{'matmul' if fit.fp8_matmul else 'weight-only'}"
    return AotKey(
        device=f"sm{major}{minor}" if caps.cuda else "cpu",
        torch=torch.__version__.split("+")[0],
        block=f"{config['num_attention_heads']}x{config['attention_head_dim']}-ffn{config['ffn_dim']}",
        weights=weights,
        attention=ATTENTION[fit.placement.faster.attention].diffusers or fit.placement.faster.attention,
    )


def read_key(folder: Path) -> AotKey:
    if not folder.is_dir():
        raise ModelUnavailable(
            f"No AoT folder at {folder}: make one with python -m helios compile, or leave --aot out."
        )
    meta = folder / META
    try:
        fields = json.loads(meta.read_text())["key"]
        key = AotKey(**fields)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailable(
            f"{folder} is not an AoT folder ({type(exc).__name__} reading {META}): make one with python -m helios "
            "compile."
        ) from None
    if not (folder / BLOCK / PACKAGE).is_file():
        raise ModelUnavailable(f"{folder} lacks {BLOCK}/{PACKAGE}: make it again with python -m helios compile.")
    return key


def choose(
    asked: str, key: AotKey, cache: Path, ranks: int, own_kernels: bool, locate: Callable[[str], Path]
) -> tuple[Path | None, str]:
    """The folder to run from (None: none here) and the words for the banner. `asked` is "auto" or "jit" (the cache
    folder for this key, if one was made), "off", or what `locate` finds a folder by, which must match."""
    if asked == "off":
        return None, ""
    if ranks > 1 or own_kernels:
        why = "AoT blocks run on one GPU only" if ranks > 1 else "AoT blocks are built without our Triton kernels"
        return None, f"blocks compiled just in time: {why}" if asked not in CACHED else ""
    folder = cache / key.name if asked in CACHED else locate(asked)
    if asked in CACHED and not folder.is_dir():
        return None, ""
    made_for = read_key(folder)
    if made_for != key:
        return (
            None,
            f"blocks compiled just in time: the AoT folder {folder} was made for "
            f"{'; '.join(key.differences(made_for))}",
        )
    return folder, f"blocks ahead-of-time compiled, from {folder}"


class _BlockCall(nn.Module):
    """What is exported: the block, with the present length carried by a tensor's length."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, hidden_states, encoder_hidden_states, temb, rotary_emb, present):
        return self.block(hidden_states, encoder_hidden_states, temb, rotary_emb, present.shape[0])


class _Captured(Exception):
    def __init__(self, args: tuple):
        super().__init__()
        self.args = args


def capture_block_inputs(block: nn.Module, run_once: Callable[[], object]) -> tuple:
    """The arguments of the block's first call in a real run (the run stops there)."""

    def capture(*args):
        raise _Captured(args)

    own = block.__dict__.get("forward")
    block.forward = capture
    try:
        run_once()
    except _Captured as call:
        return call.args
    finally:
        if own is None:
            del block.forward
        else:
            block.forward = own
    raise ModelUnavailable("The run never reached a transformer block; nothing to compile.")


def build(block: nn.Module, args: tuple, key: AotKey, folder: Path) -> float:
    """Export `block` called with `args` (its first call in a real run), build its package into `folder`; returns
    the seconds it took. Tokens and the present length are dynamic; every other size is the example's."""
    hidden, text, temb, rotary, present_length = args
    present = torch.empty(present_length, dtype=torch.uint8, device=hidden.device)
    tokens = torch.export.Dim.AUTO
    dynamic = ({1: tokens}, None, {1: tokens} if temb.ndim == 4 else None, {1: tokens}, {0: torch.export.Dim.AUTO})
    start = time.perf_counter()
    scratch = folder.parent / f".{folder.name}.building"  # a failed build leaves no folder that looks made
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / BLOCK).mkdir(parents=True)
    try:
        with torch.no_grad(), _attention_for_export(block, key.attention):
            program = torch.export.export(
                _BlockCall(block), (hidden, text, temb, rotary, present), dynamic_shapes=dynamic, strict=False
            )
            inputs = [n.meta["val"] for n in program.graph.nodes if n.op == "placeholder"][-5:]
            if isinstance(inputs[0].shape[1], int) or isinstance(inputs[4].shape[0], int):
                raise ModelUnavailable(
                    "Export fixed the number of tokens, so one package would not serve every request."
                )
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(scratch / BLOCK / PACKAGE), inductor_configs=INDUCTOR
            )
        seconds = time.perf_counter() - start
        meta = dict(
            key=dataclasses.asdict(key),
            example_tokens=hidden.shape[1],
            example_present=present_length,
            build_s=round(seconds, 1),
        )
        (scratch / META).write_text(json.dumps(meta, indent=1))
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)  # an older build of the same folder (checked by the caller)
    scratch.rename(folder)
    return seconds


@contextlib.contextmanager
def _attention_for_export(block: nn.Module, backend: str):
    """The block's attention exported as PyTorch's own entry held to cuDNN from outside: the kernel diffusers' cuDNN
    backend picks, without the `sdpa_kernel` context that backend enters inside the traced code."""
    processors = [
        m.processor for m in block.modules() if hasattr(m, "processor") and hasattr(m.processor, "_attention_backend")
    ]
    saved = [p._attention_backend for p in processors]
    for p in processors:
        p._attention_backend = None
    held = sdpa_kernel(SDPBackend.CUDNN_ATTENTION) if backend == "_native_cudnn" else contextlib.nullcontext()
    try:
        with held:
            yield
    finally:
        for p, b in zip(processors, saved):
            p._attention_backend = b


class AotForward:
    """A block's forward from its package, on the block's own tensors (lent, not copied). The package is loaded at
    the first call, inside whatever gives the process its GPU (on ZeroGPU, a `@spaces.GPU` call)."""

    def __init__(self, package: Path, block: nn.Module):
        self.package, self.block = package, block
        self.compiled = None
        self.presents: dict[tuple[int, torch.device], torch.Tensor] = {}

    def __call__(self, hidden_states, encoder_hidden_states, temb, rotary_emb, original_context_length):
        if self.compiled is None:
            self.compiled = load_runner(self.package)
            tensors = lent_tensors(self.block)
            names = self.compiled.get_constant_fqns()
            self.compiled.load_constants({n: tensors[n] for n in names}, check_full_update=True, user_managed=True)
        where = (original_context_length, hidden_states.device)
        if where not in self.presents:
            self.presents[where] = torch.empty(original_context_length, dtype=torch.uint8, device=hidden_states.device)
        return self.compiled(hidden_states, encoder_hidden_states, temb, rotary_emb, self.presents[where])


def load_runner(package: Path):
    """The package's runner, straight from torch's loader. `aoti_load_package` would first probe the CPU's vector
    instructions by compiling and loading test programs in child Pythons (for a warning only; on the H200 over 25 s
    in a fresh process, from the denoise thread) and read the exported program back, once per block. The runner
    skips its own thread synchronisation, which waits on an event of its last run: a CUDA graph capture forbids that
    wait (measured on the H200), and the engine calls a block from one thread at a time."""
    from torch._inductor.package import AOTICompiledModel

    _share_torch_symbols()
    loader = torch._C._aoti.AOTIModelPackageLoader(str(package), "model", True, 1, -1)
    return AOTICompiledModel(loader)


@functools.cache
def _share_torch_symbols() -> None:
    """Torch's CUDA library made global before a package's library is opened. Without it, in any process but the one
    that built the package, the package's own copy of the C++ standard library's regex code crashed (SIGSEGV in
    `parse_device_str`, building its model) on the H200 with torch 2.11: every CUDA package tried did, torch's default
    settings included, while one opened after this call ran and matched (benchmarks/results/h200-aot-fresh-process*)."""
    library = Path(torch.__file__).parent / "lib" / "libtorch_cuda.so"
    if library.is_file():
        ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)


def lent_tensors(block: nn.Module) -> dict[str, torch.Tensor]:
    """The block's tensors under the names the package gives them: export turns a tensor subclass (torchao's
    Float8Tensor) into a parametrization whose originals are the subclass's parts, in their flattening order."""
    tensors = {}
    for name, t in (*block.named_parameters(), *block.named_buffers()):
        if not is_traceable_wrapper_subclass(t):
            tensors[f"block.{name}"] = t
            continue
        owner, _, leaf = f"block.{name}".rpartition(".")
        for i, part in enumerate(t.__tensor_flatten__()[0]):
            tensors[f"{owner}.parametrizations.{leaf}.original{i}"] = getattr(t, part)
    return tensors


def apply_aot(blocks: nn.ModuleList, folder: Path) -> None:
    """Every block (a streamed one's inner block, which computes from its GPU slot) runs from the folder's package."""
    for block in blocks:
        inner = getattr(block, "block", block)
        inner.forward = AotForward(folder / BLOCK / PACKAGE, inner)
