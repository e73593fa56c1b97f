"""On a ZeroGPU Space the main process has no CUDA. Importing `spaces` there makes CUDA look present (the GPU's name,
capability and memory are static facts), keeps what the process sends to "cuda" in host memory to move it into each
GPU call, and fails any real CUDA start. A stand-in for `spaces` does the same here on the CPU: the app must import
it before anything asks about CUDA, choose Helios rather than the preview, and build its page with CUDA never
started."""

import socket
import sys

import pytest
import torch
from torch.overrides import TorchFunctionMode

import app
from helios import model_cache
from helios.errors import ModelUnavailable
from helios.loading import LoadOptions
from helios.model_cache import load_model
from helios.placement import Placement, WeightForm
from helios.studio.page import build_demo

GIB = 2**30
STAND_IN = """
ZERO_GPU = True  # imported: CUDA looks present from now on
LENT = []


def GPU(duration):
    def lend(handler):
        LENT.append(handler.__name__)
        return handler
    return lend
"""


class Cuda:
    """torch.cuda as the main process of a ZeroGPU Space sees it; `starts` lists every attempt to start CUDA."""

    def __init__(self):
        self.starts: list[str] = []

    @staticmethod
    def spaces_imported() -> bool:
        return getattr(sys.modules.get("spaces"), "ZERO_GPU", False)

    def start(self, name: str):
        """A function of its own per name (torch's tracing rules refuse one object under two names)."""

        def started(*args, **kwargs):
            self.starts.append(name)
            raise RuntimeError(f"CUDA must not be initialized in the main process ({name})")

        return started


class SentToGpu(TorchFunctionMode):
    """What `spaces` does with `.to("cuda")` in the main process: the tensor stays in host memory, remembered."""

    def __init__(self):
        super().__init__()
        self.sent: set[int] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.Tensor.to, torch.Tensor.cuda) and "cuda" in str((args[1:], kwargs)):
            self.sent.add(id(args[0]))
            return args[0]
        return func(*args, **kwargs)


@pytest.fixture
def zero_gpu(monkeypatch, tmp_path):
    (tmp_path / "spaces.py").write_text(STAND_IN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setattr(model_cache, "_models", {})  # a fresh process: no model loaded before
    cuda = Cuda()
    monkeypatch.setattr(torch.cuda, "is_available", cuda.spaces_imported)
    monkeypatch.setattr(torch.cuda, "_lazy_init", cuda.start("_lazy_init"))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H200 MIG 3g.71gb")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (70 * GIB, 71 * GIB))
    for name in ("graph_pool_handle", "synchronize", "set_device", "set_per_process_memory_fraction"):
        monkeypatch.setattr(torch.cuda, name, cuda.start(name))
    with SentToGpu() as sent:
        yield cuda, sent


def test_the_app_imports_spaces_first_chooses_helios_and_builds_its_page_without_starting_cuda(zero_gpu, monkeypatch):
    cuda, sent = zero_gpu
    assert not torch.cuda.is_available(), "before `import spaces` the main process sees no GPU"
    served = {}
    monkeypatch.setattr(app, "serve", lambda args, engine, banner, *_: served.update(engine=engine, banner=banner) or 0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert app.main(["--port", str(port)]) == 0
    model, banner = served["engine"].model, served["banner"]
    assert banner.startswith("Could not fetch BestWishYsh/Helios-Distilled"), (
        "Helios was chosen (the hub is offline here)"
    )
    assert model.device.type == "cuda" and model.capabilities.zero_gpu and model.fit.tier.name == "resident"
    assert "no runtime compile on ZeroGPU" in banner
    left = [f"{type(module).__name__}.{name}" for part in (model.transformer, model.text_encoder, model.vae)
            for module in part.modules() for name, t in (*vars(module).items(), *module._parameters.items(),
                                                         *module._buffers.items())
            if isinstance(t, torch.Tensor) and id(t) not in sent.sent]
    assert not left, f"the GPU calls would meet these in host memory: {sorted(set(left))[:5]}"
    assert all(p.device.type == "cpu" for p in model.transformer.parameters()), "and stays in host memory here"
    demo = build_demo(served["engine"], banner, "384x640")
    assert demo.config["components"]
    lent = ["compare", "continue_video", "generate", "live_resume", "live_start"]
    assert sorted(sys.modules["spaces"].LENT) == lent, (
        "each run's handler gets the GPU"
    )
    assert cuda.starts == []


def test_a_streamed_tier_is_refused_in_words_on_zero_gpu(zero_gpu):
    app.import_spaces_first()
    with pytest.raises(ModelUnavailable, match="on ZeroGPU a GPU is lent per call"):
        load_model("tiny", LoadOptions(placement=Placement(weights=WeightForm(memory="fp8-streamed"))))
    assert zero_gpu[0].starts == []
