"""Load a Helios checkpoint (hub id, local diffusers folder, or the `tiny` preset); `model_cache` keeps loaded ones
warm.

The transformer and the text encoder are built empty, then filled from their files module by module straight into
the place their memory tier gives them (weights/place.py), side by side: no whole model passes through host memory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from .aot_beside import AotBeside
from .cache import cache_dir
from .errors import ModelUnavailable
from .fit.capability import Capabilities
from .fit.here import decide
from .fit.size import model_size
from .fit.tiers import HOST_BASE, Fit
from .flavour import Flavour, flavour_from_index
from .lora.side_path import LoraSlots
from .parallel.context_parallel import attention_split
from .parallel.ranks import Ranks, ranks
from .placement import Placement
from .startup import ReadAhead, note_code_files
from .tiny import FLAVOURS, TINY_MARKER, TinySpec, build_tiny, marker
from .weights import fp8_saved
from .weights.files import FromLoaded, HostLedger, InMemory, Loading, PinnedSlabs, WeightFiles, empty, on_side_stream
from .weights.streaming import BlockStream

CPU_PARAM_LIMIT = 2e9
COMPONENTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")


@dataclass(frozen=True)
class LoadOptions:
    """Everything that decides what the loaded model is: the model cache's key, with the source."""

    device: str | None = None
    dtype: str | None = None
    vae_dtype: str | None = None
    placement: Placement = Placement()
    gpu_memory_gib: float | None = None
    host_memory_gib: float | None = None

    def resolve(self) -> tuple[torch.device, torch.dtype, torch.dtype]:
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", ranks().local_rank)
        default = "bfloat16" if device.type == "cuda" else "float32"
        return device, getattr(torch, self.dtype or default), getattr(torch, self.vae_dtype or default)


@dataclass
class HeliosModel:
    source: str
    folder: Path
    flavour: Flavour
    is_tiny: bool
    device: torch.device
    dtype: torch.dtype
    tokenizer: Any
    text_encoder: Any
    transformer: Any
    vae: Any
    scheduler: Any
    fit: Fit
    """What runs here: the tier, the switches on, and why anything was turned off."""
    capabilities: Capabilities
    decode_thread: ThreadPoolExecutor
    """Every decode of the model's VAE, the load's warm-up and every run's (`decode_thread`)."""
    block_stream: BlockStream | None = None
    aot_beside: AotBeside | None = None
    """The blocks' AoT package being built beside the first run, which `Engine` switches to once made."""
    ranks: Ranks = Ranks()
    load_s: float | None = None
    """Seconds its load took, from disk or from another loaded form of its checkpoint."""

    @cached_property
    def lora(self) -> LoraSlots:
        """The LoRA adapters in its transformer: one set per model, whichever engine runs it."""
        return LoraSlots(self.transformer, self.device, self.dtype)

    @property
    def blocks_version(self) -> tuple[int, bool]:
        """Changes whenever the blocks do (adapters installed, the switch to a package built beside): each engine
        captures its CUDA graphs again."""
        return self.lora.installs, self.aot_beside is not None and self.aot_beside.done

    @property
    def label(self) -> str:
        if self.is_tiny:
            return f"{self.source} (tiny random-weight preview: its frames are noise)"
        return f"{self.source} ({self.flavour.name})"

    def describe(self) -> str:
        """Which tier was chosen and why, for the app's banner and the CLI's first line."""
        notes = [*self.fit.notes, *([self.aot_beside.outcome] if self.aot_beside and self.aot_beside.outcome else [])]
        if self.ranks.size > 1:
            heads = self.transformer.config.num_attention_heads
            split = attention_split(self.fit.placement.parallel, heads, self.ranks.size)
            notes.insert(0, f"context parallel: {split} attention over {self.ranks.size} ranks")
        notes = "; ".join(notes)
        where = self.capabilities.summary
        if self.fit.tier.name != "cpu":
            where += f": {self.fit.describe()}"
        return f"Model: {self.label} on {where}" + (f" ({notes})" if notes else "") + "."


def tiny_folder(source: str) -> Path | None:
    """`tiny` or `tiny-<flavour>` names a preset built on first use under the cache folder."""
    if source == "tiny":
        source = "tiny-distilled"
    if not source.startswith("tiny-") or source[5:] not in FLAVOURS:
        return None
    folder = cache_dir() / source
    spec = TinySpec(flavour=source[5:])
    if not (folder / TINY_MARKER).exists() or (folder / TINY_MARKER).read_text() != marker(spec):
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".building-"))
        _import_libraries()
        build_tiny(scratch, spec)
        shutil.rmtree(folder, ignore_errors=True)
        scratch.rename(folder)
    return folder


def resolve_folder(source: str) -> Path:
    tiny = tiny_folder(source)
    if tiny is not None:
        return tiny
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise ModelUnavailable(
                f"{path} has no model_index.json: point --model at a Helios checkpoint folder in diffusers layout."
            )
        return path
    return from_hub(source, f"No model folder at {source}: give an existing folder, a hub id, or 'tiny'.")


def from_hub(source: str, not_an_id: str) -> Path:
    """A Hub repo's files, fetched once into the Hub's cache; `not_an_id` is the refusal for what cannot be an id."""
    if source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise ModelUnavailable(not_an_id)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source))
    except Exception as exc:
        raise ModelUnavailable(
            f"Could not fetch {source} from the Hugging Face Hub ({type(exc).__name__}): check the id and the "
            "network, or download it and pass the local folder."
        ) from None


def aot_folder(asked: str) -> Path:
    """`--aot`'s folder: a local one, or a Hub repo holding one (the way `spaces` keeps its compiled blocks)."""
    path = Path(asked).expanduser()
    if path.exists():
        return path
    return from_hub(
        asked, f"No AoT folder at {asked}: make one with python -m helios compile, give a hub id, or leave --aot out."
    )


def _import_libraries():
    """diffusers, transformers and every module of theirs and ours the load uses, imported before the read-ahead
    starts: on the H200 their thousands of small reads, queued behind its, took ~29 s instead of seconds
    (`benchmarks.load_trace`). Their progress bars go off: our CLI and page say the progress."""
    import diffusers
    import transformers

    from .weights import place  # noqa: F401

    for library, names in ((diffusers, ("HeliosTransformer3DModel", "AutoencoderKLWan")),
                           (transformers, ("UMT5EncoderModel", "AutoTokenizer"))):
        for name in names:
            getattr(library, name)  # both import lazily: the attribute imports its module
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    return diffusers, transformers


def check_hardware(folder: Path, device: torch.device) -> None:
    config = json.loads((folder / "transformer" / "config.json").read_text())
    dim = config.get("num_attention_heads", 40) * config.get("attention_head_dim", 128)
    params = config.get("num_layers", 40) * (4 * dim * dim + 2 * dim * config.get("ffn_dim", 13824))
    if device.type == "cpu" and params > CPU_PARAM_LIMIT:
        raise ModelUnavailable(
            f"{folder.name} is a full-size model ({params / 1e9:.0f}B parameters) and needs a CUDA GPU: "
            "run on a GPU machine, or use --model tiny for a CPU preview."
        )


def load_checkpoint(source: str, options: LoadOptions, capabilities: Capabilities | None = None,
                    donor: HeliosModel | None = None) -> HeliosModel:
    """The checkpoint loaded as `options` say; from `donor` (another form of it, loaded: `model_cache`) nothing is read
    from disk but the configs."""
    started = time.perf_counter()
    device, dtype, vae_dtype = options.resolve()
    folder = resolve_folder(source)
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"Cannot read {folder / 'model_index.json'} ({exc}): the checkpoint is damaged."
        ) from None
    flavour = flavour_from_index(index)
    missing = [c for c in COMPONENTS if not (folder / c).is_dir()]
    if missing:
        raise ModelUnavailable(f"{folder} lacks {', '.join(missing)}: the checkpoint is incomplete; download it again.")
    check_hardware(folder, device)
    diffusers, transformers = _import_libraries()
    # until the load ends: the disk is what it waits on
    ahead = ReadAhead.of(source, folder, options.placement.weights.fp8) if donor is None else None
    try:
        # compiled kernels persist beside the models, so a restart on this machine is warm in seconds
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
        caps = capabilities or Capabilities.detect(device, options.gpu_memory_gib, options.host_memory_gib)
        transformer_config = diffusers.HeliosTransformer3DModel.load_config(folder / "transformer")
        fit = decide(options.placement, caps, model_size(folder), transformer_config, dtype, aot_folder)
        if donor is None:
            fit = fp8_saved.with_saved_form(fit, folder, dtype, transformer_config["num_layers"])
        scheduler_cls = getattr(diffusers, index["scheduler"][1])
        text_config = transformers.UMT5Config.from_pretrained(folder / "text_encoder")
        shares_vae = donor is not None and donor.vae.dtype == vae_dtype and _vae_form(donor.fit) == _vae_form(fit)
        parts = dict(
            tokenizer=donor.tokenizer if donor else transformers.AutoTokenizer.from_pretrained(folder / "tokenizer"),
            text_encoder=empty(lambda: transformers.UMT5EncoderModel(text_config)),
            transformer=empty(lambda: diffusers.HeliosTransformer3DModel.from_config(transformer_config)),
            vae=donor.vae
            if shares_vae
            else diffusers.AutoencoderKLWan.from_pretrained(folder, subfolder="vae", dtype=vae_dtype),
            scheduler=scheduler_cls.from_pretrained(folder, subfolder="scheduler"),
        )
        model = assemble(source, folder, flavour, parts, device, dtype, fit, caps, donor)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailable(f"Could not load the checkpoint at {folder}: {exc}".split("\n")[0]) from None
    finally:
        if ahead is not None:
            ahead.stop()
    note_code_files(cache_dir())
    model.load_s = time.perf_counter() - started
    return model


def _vae_form(fit: Fit) -> tuple:
    faster = fit.placement.faster
    return faster.channels_last_vae, faster.vae_kernels, faster.compile_vae, faster.cudnn_autotune


def assemble(source, folder, flavour, parts: dict, device, dtype, fit: Fit,
             caps: Capabilities, donor: HeliosModel | None = None) -> HeliosModel:
    """Fill and place the components as `fit` says, the text encoder beside the transformer, from the
    checkpoint's files, while the VAE decodes once at the default size (its one-time compile and autotuning, on a GPU
    that would otherwise wait for the disk); without a folder the modules bring their own weights (the benchmark's
    full-size random ones). From a `donor` (another form of the same checkpoint, loaded) the transformer is copied
    and converted on the GPU, and the text encoder and the VAE are shared where they would be placed alike. On
    ZeroGPU the main process may not touch CUDA: everything is filled on the CPU, then sent to the GPU whole."""
    from .weights.place import place_text_encoder, place_transformer, place_vae  # diffusers: 7 s of imports on 2 cores

    ledger = HostLedger(fit.host_budget, HOST_BASE)
    slabs = PinnedSlabs(ledger)
    weights = {
        name: FromLoaded(getattr(donor, name), ledger, slabs)
        if donor is not None and (name == "transformer" or donor.fit.tier.text_on_gpu)
        else WeightFiles(folder / name, ledger, slabs)
        if folder is not None
        else InMemory(ledger, slabs)
        for name in ("transformer", "text_encoder")
    }
    shared = {name for name in ("vae", "text_encoder") if donor is not None and parts[name] is getattr(donor, name)}
    if donor is not None and donor.fit.tier.text_on_gpu and fit.tier.text_on_gpu:
        parts["text_encoder"] = donor.text_encoder
        shared.add("text_encoder")
    for name in ("text_encoder", "transformer", "vae"):
        if parts[name] is not None and name not in shared:  # the benchmark brings no text encoder to its speed runs
            parts[name].eval()
    fill = torch.device("cpu") if caps.zero_gpu else device
    if "vae" in shared:
        decoder, vae = donor.decode_thread, None
    else:
        place_vae(parts["vae"], fit, fill)
        decoder = decode_thread(device)
        vae = _warm_vae(parts["vae"], fit.default_size, fill, decoder)
    text_encoder = None if "text_encoder" in shared else parts["text_encoder"]
    text = Loading(lambda: place_text_encoder(text_encoder, fit, fill, weights["text_encoder"], dtype), fill)
    block_stream = place_transformer(parts["transformer"], fit, fill, ranks(), weights["transformer"], dtype)
    aot_beside = AotBeside(parts["transformer"], fit, dtype, device) if fit.build_aot else None
    text.wait()
    if vae is not None:
        vae.result()
        torch.cuda.empty_cache()  # what the warm-up's stream cached could serve no other stream
    if fill != device:  # ZeroGPU: spaces takes what the main thread sends to the GPU into each of its GPU calls
        for part in (parts["text_encoder"], parts["transformer"], parts["vae"]):
            if part is not None:
                part.to(device)
    is_tiny = folder is not None and (folder / TINY_MARKER).exists()
    return HeliosModel(
        source=source, folder=folder, flavour=flavour, is_tiny=is_tiny, device=device, dtype=dtype, fit=fit,
        capabilities=caps, decode_thread=decoder, block_stream=block_stream, aot_beside=aot_beside, ranks=ranks(),
        **parts,
    )


def on_device(device: torch.device) -> None:
    """A thread's current GPU is its own: a rank's threads work on the rank's GPU (CUDA graphs, streams)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)


def decode_thread(device: torch.device) -> ThreadPoolExecutor:
    """One long-lived thread for the VAE's decodes, whichever thread asks (Gradio hops between its pool's): PyTorch
    keeps cuDNN's autotuned convolution plans per thread, so a decode on another thread tunes them all again."""
    return ThreadPoolExecutor(1, thread_name_prefix="helios-decode", initializer=on_device, initargs=(device,))


def _warm_vae(vae, size: tuple[int, int] | None, device: torch.device, thread: ThreadPoolExecutor) -> Future | None:
    """The VAE's first decode at the default size, beside the load, on the thread every later decode runs on (none
    on the CPU, where nothing is compiled or autotuned, nor on ZeroGPU, whose main process fills on the CPU)."""
    from .vae_passes import warm_decode

    if device.type != "cuda" or size is None:
        return None
    torch.cuda.current_stream(device).synchronize()  # its weights, placed on this stream, are read on the thread's
    return thread.submit(on_side_stream, lambda: warm_decode(vae, *size), device)


def local_folder(source: str) -> Path | None:
    """The checkpoint's folder if it is on this machine (a local folder, a preset, or the Hub's cache); None if it
    would have to be downloaded."""
    if tiny_folder(source) is not None or Path(source).expanduser().exists() or source.count("/") != 1:
        return resolve_folder(source)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception:
        return None
