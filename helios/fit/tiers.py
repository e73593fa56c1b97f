"""The memory tiers, and what runs here: `resolve` turns the `Placement` asked for (helios/placement.py) into the
`Fit` this GPU and host run, naming every reason; `fit.here.decide` adds the ahead-of-time folder, if one was made
for it."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ModelUnavailable
from ..placement import ATTENTION, Placement, Speedups, WeightForm
from .capability import Capabilities

if TYPE_CHECKING:
    from ..faster.aot import AotKey

GIB = 2**30


@dataclass(frozen=True)
class Tier:
    name: str
    text_on_gpu: bool
    fp8_weights: bool
    streamed_blocks: bool
    serves: str
    min_resident: float = 0.0
    """Chosen by `auto` only if this share of the blocks stays resident: below it the copies outlast the compute."""


TIERS = (
    Tier("resident", True, False, False, "everything on the GPU: 48 GB cards and up (A6000, L40S, A100/H100 80 GB)"),
    Tier("text-offload", False, False, False, "the text encoder streamed in per new prompt: 40 GB cards (A100 40 GB)"),
    Tier(
        "bf16-streamed",
        False,
        False,
        True,
        "bf16 blocks streamed from host memory as needed: 32 GB cards (RTX 5090)",
        0.75,
    ),
    Tier("fp8", False, True, False, "FP8 transformer weights: 24 GB cards (RTX 4090, L4, A10)"),
    Tier("fp8-streamed", False, True, True, "FP8 blocks streamed from host memory as needed: 16 and 12 GB cards"),
)
TIER_NAMES = tuple(t.name for t in TIERS)
MEMORY_CHOICES = ("auto", *TIER_NAMES)
FP8_LINEARS = ("torchao", "ours")
PARALLEL_CHOICES = ("auto", "ulysses", "ring")


@dataclass(frozen=True)
class ModelSize:
    """Bytes of each part in bf16, read from the checkpoint's headers (no weights loaded)."""

    blocks: int
    block_bytes: int
    block_linear_bytes: int
    transformer_other_bytes: int
    text_bytes: int
    vae_bytes: int
    text_passing_bytes: int = 0
    """What the GPU budget sets aside for the text encoder streaming through: two of its layers."""
    text_linear_bytes: int = 0
    """The text encoder's linear layers, which FP8 tiers store in int8 rows."""
    text_embedding_bytes: int = 0
    """The text encoder's token embedding, which FP8 tiers keep in int8 (and a scale per row) in host memory."""

    @property
    def total_bytes(self) -> int:
        return self.blocks * self.block_bytes + self.transformer_other_bytes + self.text_bytes + self.vae_bytes

    def block(self, fp8: bool) -> int:
        return self.block_bytes - self.block_linear_bytes // 2 if fp8 else self.block_bytes

    def text(self, fp8: bool) -> int:
        return self.text_bytes - (self.text_linear_bytes + self.text_embedding_bytes) // 2 if fp8 else self.text_bytes


def workspace_bytes(height: int, width: int) -> int:
    """Activations, CUDA-graph pool and VAE decode at a resolution, from the H100 measurement at 384x640 (4.5 GiB)."""
    return int((1.0 + 3.5 * height * width / (384 * 640)) * GIB)


PINNED_SLACK = GIB
"""Pinned memory comes in 1 GiB slabs, the last partly used, and tensors leave the tail of each unused."""
HOST_BASE = int(3.0 * GIB)
"""Host memory of the process beside the weights it keeps there: Python, PyTorch, CUDA's context, diffusers and
transformers, loading's buffers. The resident tier, which keeps none, peaked at 2.7 GiB through load and run (H200)."""


def host_bytes(tier: Tier, size: ModelSize, resident_blocks: int | None = None) -> int:
    """Host memory this tier holds once loaded: the streamed blocks and an offloaded text encoder, pinned; loading
    itself adds only two 64 MiB staging buffers (weights/files.py)."""
    streamed = size.blocks - resident_blocks if tier.streamed_blocks and resident_blocks is not None else 0
    text = 0 if tier.text_on_gpu else size.text(tier.fp8_weights)
    pinned = streamed * size.block(tier.fp8_weights) + text
    return HOST_BASE + pinned + (PINNED_SLACK if pinned else 0)


@dataclass(frozen=True)
class Fit:
    """What runs here: the placement this GPU and host run, its concrete tier, and why anything was turned off."""

    placement: Placement
    tier: Tier
    fp8_matmul: bool
    resident_blocks: int | None
    workspace_budget: int | None
    """GPU bytes left beside the weights for a request's activations; None on the CPU."""
    notes: tuple[str, ...] = ()
    cuda_graphs: bool = True
    host_budget: int | None = None
    """Host bytes this load may hold (available memory, or --host-memory); None on the CPU preview."""
    fp8_form: str | None = None
    """A saved FP8 form of the blocks to load instead of quantizing them (weights/fp8_saved.py)."""
    build_aot: AotKey | None = None
    """This machine has no AoT package for these blocks: they run as they are while one is built beside the first run
    (helios/aot_beside.py)."""

    def with_aot(self, folder, note: str) -> Fit:
        """Blocks from an AoT folder are not compiled again; without one, `aot` says "off"."""
        switches = dict(aot=str(folder) if folder else "off")
        if folder:
            switches["compile_blocks"] = False
        faster = dataclasses.replace(self.placement.faster, **switches)
        placement = dataclasses.replace(self.placement, faster=faster)
        return dataclasses.replace(self, placement=placement, notes=self.notes + ((note,) if note else ()))

    def building_aot(self, key: AotKey) -> Fit:
        faster = dataclasses.replace(self.placement.faster, compile_blocks=False, aot="off")
        return dataclasses.replace(
            self, placement=dataclasses.replace(self.placement, faster=faster), build_aot=key,
            notes=self.notes + ("blocks run as they are while their AoT package is built beside the first run",),
        )

    def with_fp8_form(self, folder, note: str) -> Fit:
        return dataclasses.replace(self, fp8_form=str(folder) if folder else None,
                                   notes=self.notes + ((note,) if note else ()))

    def describe(self) -> str:
        streamed = f", {self.resident_blocks} blocks resident" if self.tier.streamed_blocks else ""
        return f"memory tier {self.tier.name}{streamed}"

    def fits(self, height: int, width: int) -> bool:
        """Whether a request of this size has the GPU memory it needs beside the weights (always, on the CPU)."""
        return self.workspace_budget is None or workspace_bytes(height, width) <= self.workspace_budget

    @property
    def default_size(self) -> tuple[int, int] | None:
        """The size the CLI asks for unless told otherwise (384x640), or on a card too small for it the largest of the
        smaller sizes that fits; None where none does."""
        return next((size for size in (DEFAULT_RESOLUTION, *SMALL_CARD_RESOLUTIONS) if self.fits(*size)), None)


CPU_TIER = Tier("cpu", True, False, False, "the CPU: tiny preview models only")
CPU_FP8_TIER = dataclasses.replace(CPU_TIER, name="cpu+fp8", fp8_weights=True)
GPU_ONLY_OFF = dict(
    compile_blocks=False, attention="native", channels_last_vae=False, vae_kernels=False, compile_vae=False,
    cudnn_autotune=False,
)
"""Off on a CPU; the block kernels stay as asked: Triton's interpreter runs them there (tests do)."""
HEADROOM = 0.95
DEFAULT_RESOLUTION = (384, 640)
SMALL_CARD_RESOLUTIONS = ((320, 576), (256, 448))
"""Where 384x640 does not fit beside even the smallest tier's weights, the model is placed for the largest of these
that does (the page offers them), and larger requests are refused in words."""


def gpu_bytes(tier: Tier, size: ModelSize, resident_blocks: int | None = None) -> int:
    """The weights this tier keeps on the GPU: streamed tiers add two block slots that the rest pass through."""
    blocks = size.blocks if resident_blocks is None else resident_blocks + 2
    return (
        size.transformer_other_bytes + blocks * size.block(tier.fp8_weights) + size.vae_bytes
        + (size.text_bytes if tier.text_on_gpu else size.text_passing_bytes)
    )


def resolve(placement: Placement, caps: Capabilities, size: ModelSize) -> Fit:
    """On a CPU nothing is placed unless a tier is forced or a capacity is given (tests fake one that way)."""
    asked = placement.weights
    if asked.memory not in MEMORY_CHOICES:
        raise ModelUnavailable(f"Unknown memory tier {asked.memory!r}: choose one of {', '.join(MEMORY_CHOICES)}.")
    if asked.fp8_linears not in FP8_LINEARS:
        raise ModelUnavailable(f"Unknown FP8 linears {asked.fp8_linears!r}: choose one of {', '.join(FP8_LINEARS)}.")
    if placement.faster.attention not in ATTENTION:
        raise ModelUnavailable(
            f"Unknown attention {placement.faster.attention!r}: choose one of {', '.join(ATTENTION)}."
        )
    if placement.parallel not in PARALLEL_CHOICES:
        raise ModelUnavailable(
            f"Unknown parallel attention {placement.parallel!r}: choose one of {', '.join(PARALLEL_CHOICES)}."
        )
    if not caps.cuda:
        placement = dataclasses.replace(placement, faster=dataclasses.replace(placement.faster, **GPU_ONLY_OFF))
        if asked.memory == "auto" and not caps.free_bytes:
            if asked.fp8 and not asked.never_fp8:  # the CPU preview of the FP8 form: stored in FP8, widened per matmul
                weights = dataclasses.replace(asked, fp8_linears="ours")
                return Fit(dataclasses.replace(placement, weights=weights), CPU_FP8_TIER, False, None, None,
                           ("FP8 weights widened for each matmul on the CPU",), cuda_graphs=False)
            return Fit(placement, CPU_TIER, False, None, None, cuda_graphs=False)
    notes = []
    budget = int(caps.free_bytes * HEADROOM)
    host = caps.host_free_bytes or None
    for resolution in (DEFAULT_RESOLUTION, *SMALL_CARD_RESOLUTIONS):
        try:
            tier, resident = _tier(asked, size, budget, resolution, host, caps)
            break
        except ModelUnavailable as refusal:
            smallest_refused = refusal
    else:
        raise smallest_refused
    if asked.memory == "auto":
        notes.append(f"chose {tier.name} for {caps.summary}")
    if resolution != DEFAULT_RESOLUTION:
        notes.append(f"requests of {resolution[0]}x{resolution[1]} at most: larger ones need more GPU memory than this")
    fp8_matmul = tier.fp8_weights and caps.fp8_matmul
    if tier.fp8_weights and not caps.fp8_matmul:
        notes.append("no FP8 tensor cores: FP8 weights widened for each matmul (weight-only)")
    weights = dataclasses.replace(asked, memory=tier.name)
    if tier.fp8_weights and asked.fp8_linears == "torchao":
        if importlib.util.find_spec("torchao") is None:
            weights = dataclasses.replace(weights, fp8_linears="ours")
            notes.append("torchao is not installed: our own FP8 linear layers")
        elif tier.streamed_blocks:
            weights = dataclasses.replace(weights, fp8_linears="ours")
            notes.append("streamed blocks: our own FP8 linear layers (the ones this tier was measured with)")
    switches = dataclasses.asdict(placement.faster)
    attention = ATTENTION[switches["attention"]]
    if not attention.available(caps, tier.fp8_weights and fp8_matmul):
        switches["attention"] = "native"
        notes.append(f"{attention.name} attention off: {attention.needs}")
    for name, ok, why in (
        ("vae_kernels", caps.triton, "the Triton kernels need Triton and compute capability 8.0"),
        ("kernels", caps.triton, "the Triton kernels need Triton and compute capability 8.0"),
        ("compile_blocks", not caps.zero_gpu, "no runtime compile on ZeroGPU"),
        ("compile_vae", not caps.zero_gpu, "no runtime compile on ZeroGPU"),
    ):
        if switches[name] and not ok:
            switches[name] = GPU_ONLY_OFF.get(name, False)
            notes.append(f"{name.replace('_', ' ')} off: {why}")
    cuda_graphs = not tier.streamed_blocks and not caps.zero_gpu
    if not cuda_graphs:
        why = "no runtime capture on ZeroGPU" if caps.zero_gpu else "streamed blocks copy weights while they run"
        notes.append(f"CUDA graphs off: {why}")
    free_after = budget - gpu_bytes(tier, size, resident) if caps.cuda or caps.free_bytes else None
    placement = Placement(weights, Speedups(**switches), placement.parallel)
    return Fit(placement, tier, fp8_matmul, resident, free_after, tuple(notes), cuda_graphs, host)


def _candidates(asked: WeightForm, ranks: int, zero_gpu: bool) -> tuple[Tier, ...]:
    tiers = TIERS if asked.memory == "auto" else tuple(t for t in TIERS if t.name == asked.memory)
    if ranks > 1 or zero_gpu:
        if asked.memory != "auto" and tiers[0].streamed_blocks:
            why = f"with {ranks} ranks each GPU holds the whole transformer" if ranks > 1 else (
                "on ZeroGPU a GPU is lent per call, with no host memory of ours to stream from")
            raise ModelUnavailable(
                f"The {asked.memory} tier streams blocks through one small GPU; {why}: choose a tier without "
                "streaming (--memory auto)."
            )
        tiers = tuple(t for t in tiers if not t.streamed_blocks)
    if asked.never_fp8:
        tiers = tuple(t for t in tiers if not t.fp8_weights)
        if not tiers:
            raise ModelUnavailable(
                f"The {asked.memory} tier keeps FP8 weights, and bf16 was asked for: choose bf16's tier or FP8."
            )
    elif asked.fp8:  # FP8 weights asked for on top of whatever the memory needs
        tiers = tuple(
            t if t.fp8_weights else dataclasses.replace(t, name=f"{t.name}+fp8", fp8_weights=True) for t in tiers
        )
    return tiers


def _tier(asked: WeightForm, size: ModelSize, free: int, resolution: tuple[int, int], host: int | None,
          caps: Capabilities) -> tuple[Tier, int | None]:
    """The first tier (least memory saving, so fastest) whose weights fit the GPU beside a request of `resolution`,
    and the host; streamed tiers keep as many blocks resident as the GPU holds, and stream no more than the host holds.
    A tier forced by name is taken as it is, keeping at least no block resident, if the host holds it."""
    forced = asked.memory != "auto"
    workspace = workspace_bytes(*resolution)
    budget = free - workspace
    host_short = None
    candidates = _candidates(asked, caps.ranks, caps.zero_gpu)
    for tier in candidates:
        if not tier.streamed_blocks:
            if not (forced or gpu_bytes(tier, size) <= budget):
                continue
            resident = None
        else:
            resident = (budget - gpu_bytes(tier, size, 0)) // size.block(tier.fp8_weights)
            too_few = resident < tier.min_resident * size.blocks and not asked.never_fp8  # bf16 asked: slower, not FP8
            if not forced and (resident >= size.blocks - 1 or too_few):
                continue  # an unstreamed tier would have fit, or too few blocks stay for the copies to hide
            if not forced and resident < 0:
                continue
            resident = int(min(max(resident, 0), size.blocks - 2))
        if host is not None and host_bytes(tier, size, resident) > host:
            host_short = host_short or (tier, host_bytes(tier, size, resident))
            continue
        return tier, resident
    if host_short is not None:
        tier, needed = host_short
        raise ModelUnavailable(
            f"The {tier.name} tier this GPU needs holds {needed / GIB:.1f} GiB in host memory and {host / GIB:.1f} GiB "
            "is available: close other programs, or use a machine with more RAM or a GPU with more memory."
        )
    last = candidates[-1] if asked.never_fp8 else TIERS[-1]
    smallest = gpu_bytes(last, size, 0 if last.streamed_blocks else None) + workspace
    raise ModelUnavailable(
        f"This GPU has {free / GIB:.1f} GiB free; the model needs at least {smallest / GIB:.1f} GiB even in its "
        f"{last.name} tier with requests of {resolution[0]}x{resolution[1]}: free GPU memory or use a larger GPU."
    )


def crowded(placement: Placement, size: ModelSize, here: Capabilities, alone: Capabilities) -> bool:
    """Whether what is already on this GPU would cost a load its tier, or blocks it keeps resident: `here` is the
    machine as it is, `alone` as it would be with this process's other models released."""
    def fit_of(caps: Capabilities) -> tuple | None:
        try:
            fit = resolve(placement, caps, size)
        except ModelUnavailable:
            return None
        return fit.tier.name, fit.resident_blocks

    return fit_of(here) != fit_of(alone)
