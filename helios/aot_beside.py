"""A machine's first start without the compile wait: the blocks run as they are while a child process builds their
ahead-of-time package (faster/aot.py) from one block of the same form and the inputs of the first block call; at the
first segment boundary after the package is made the blocks switch to it, and every later start here begins from it.

Compiling just in time held the first frame for the whole compile (the app's warm-up compile 33.4 s, a first
`python -m helios generate` 78 s to its first frame on an H100, issue 45). A child process, not a thread: Dynamo is not
thread-safe and its tracing holds the interpreter lock the running blocks need. The child needs one block's weights
on the GPU, not the model's: a package carries no weights, so the child's block is randomly initialised. A build that
fails leaves the blocks compiling just in time, as before."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from .errors import ModelUnavailable
from .faster.aot import AotKey, aot_cache, apply_aot, build, read_key

SPEC = "spec.pt"
STALE_S = 30 * 60
"""A build folder older than this was left by a build that died; a younger one is another start's, still building."""


class AotBeside:
    """Watches the first block call, starts the child with its inputs, and switches the blocks once it is done."""

    def __init__(self, transformer: nn.Module, fit, dtype: torch.dtype, device: torch.device):
        self.transformer, self.fit, self.dtype, self.device = transformer, fit, dtype, device
        self.key: AotKey = fit.build_aot
        self.folder = aot_cache() / self.key.name
        self.scratch = self.folder.parent / f".{self.folder.name}.building"
        self.log = self.folder.parent / f".{self.folder.name}.log"
        self.child: subprocess.Popen | None = None
        self.called = self.done = False
        self.outcome = ""
        self._first = getattr(transformer.blocks[0], "block", transformer.blocks[0])
        self._first.forward = self._first_call

    def _first_call(self, *args):
        del self._first.forward
        self.called = True
        if not (self.scratch.exists() and time.time() - self.scratch.stat().st_mtime < STALE_S):
            self.child = self._start(args)  # else another start on this machine is building it: watched for
        return self._first(*args)

    def _start(self, args: tuple) -> subprocess.Popen:
        work = Path(tempfile.mkdtemp(prefix="helios-aot-beside-"))
        inputs = [a.detach().cpu() if isinstance(a, torch.Tensor) else a for a in args]
        torch.save(dict(config=dict(self.transformer.config), fit=self.fit, dtype=self.dtype,
                        device=str(self.device), inputs=inputs, folder=str(self.folder)), work / SPEC)
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        root = str(Path(__file__).resolve().parents[1])
        child = f"import sys; sys.path.insert(0, {root!r}); from helios.aot_beside import main; main()"
        with open(self.log, "w") as log:
            return subprocess.Popen([sys.executable, "-c", child, str(work / SPEC)], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def building(self) -> bool:
        return self.child.poll() is None if self.child is not None else self.scratch.exists()

    def switch(self) -> None:
        """At a segment boundary, once the build is over: the blocks switched to the package, or, after a failed
        build, to compiling just in time (`done`, and `outcome` in words)."""
        if self.done or not self.called or self.building():
            return
        self.done = True
        try:
            built = read_key(self.folder) == self.key
        except ModelUnavailable:
            built = False
        if built:
            apply_aot(self.transformer.blocks, self.folder)
            self.outcome = f"blocks switched to their ahead-of-time package, {self.folder}"
        else:
            self.transformer.compile_repeated_blocks(fullgraph=True)
            self.outcome = f"the blocks' AoT build failed (its log: {self.log}): blocks compiled just in time"

    def wait(self, timeout: float) -> None:
        """Until the child is done (tests: a first start itself never waits for it)."""
        if self.child is not None:
            self.child.wait(timeout)


def main() -> None:
    """The child: one block placed as the load places the model's (its FP8 form, its attention), randomly
    initialised, built into the package with the parent's first block inputs."""
    import diffusers

    from .parallel.ranks import Ranks
    from .weights.files import HostLedger, InMemory
    from .weights.place import place_transformer

    spec_path = Path(sys.argv[1])
    spec = torch.load(spec_path, weights_only=False)
    device, fit = torch.device(spec["device"]), spec["fit"]
    key = fit.build_aot
    faster = dataclasses.replace(fit.placement.faster, compile_blocks=False, aot="off")
    fit = dataclasses.replace(fit, placement=dataclasses.replace(fit.placement, faster=faster), resident_blocks=None,
                              build_aot=None, fp8_form=None)
    transformer = diffusers.HeliosTransformer3DModel.from_config({**spec["config"], "num_layers": 1}).eval()
    place_transformer(transformer, fit, device, Ranks(), InMemory(HostLedger(None, 0)), spec["dtype"])
    inputs = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in spec["inputs"])
    try:
        seconds = build(transformer.blocks[0], inputs, key, Path(spec["folder"]))
        print(f"built {spec['folder']} in {seconds:.0f} s", flush=True)
    finally:
        shutil.rmtree(spec_path.parent, ignore_errors=True)
