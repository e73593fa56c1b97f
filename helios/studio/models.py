"""What each side of a comparison runs on: a checkpoint, its weight form and the engine that makes the frames. The
app's own model stays loaded for Generate whatever a comparison loads beside it (`load_model(keep=...)`); the others
stay warm while they fit and go, least recently used first, when a load needs their memory. Gradio-free."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from helios.engine import Engine
from helios.errors import BadInput, ModelUnavailable
from helios.loading import LoadOptions, local_folder
from helios.model_cache import is_loaded, load_model, plan_load
from helios.reference import ENGINES
from helios.run import warm_up

LOADED = "the loaded model"
FORMS = ("bf16", "FP8")
HUB_CHECKPOINTS = {"Helios-Distilled": "BestWishYsh/Helios-Distilled", "Helios-Mid": "BestWishYsh/Helios-Mid",
                   "Helios-Base": "BestWishYsh/Helios-Base"}
PREVIEW_CHECKPOINTS = {"tiny-distilled": "tiny-distilled", "tiny-mid": "tiny-mid", "tiny-base": "tiny-base"}
"""The CPU preview compares the tiny random-weight models of each flavour."""


@dataclass(frozen=True)
class SideModel:
    checkpoint: str = LOADED
    """LOADED, or the name of one of `ModelChoices.checkpoints`."""
    form: str = ""
    """"bf16" or "FP8"; empty: the loaded model's own."""
    engine: str = "ours"
    """"ours", or "diffusers" (its reference pipeline on the same loaded weights)."""


@dataclass(frozen=True)
class SideEngine:
    engine: Engine
    which: str
    load_s: float | None
    """Seconds this comparison spent loading and warming the side's model; None where it was warm."""


class ModelChoices:
    """The checkpoints a comparison may use: the app's own, Helios' three on the Hub (on a GPU; the tiny ones on the
    CPU preview), and local folders the server was started with (`--compare-model`)."""

    def __init__(self, engine: Engine, options: LoadOptions = LoadOptions(), folders: tuple[Path, ...] = ()):
        self.engine = engine
        self.options = options
        model = engine.model
        catalog = PREVIEW_CHECKPOINTS if model.device.type == "cpu" else HUB_CHECKPOINTS
        self.sources = {LOADED: model.source, **catalog, **{Path(f).name: str(f) for f in folders}}
        self._engines: dict[int, Engine] = {id(model): engine}

    @property
    def checkpoints(self) -> list[str]:
        return list(self.sources)

    @property
    def own_form(self) -> str:
        return "FP8" if self.engine.model.fit.tier.fp8_weights else "bf16"

    def _load_key(self, side: SideModel) -> tuple[str, LoadOptions] | None:
        """What `load_model` is asked for; None where the side runs on the app's own model."""
        if side.checkpoint not in self.sources:
            raise BadInput(f"{side.checkpoint!r} is not a checkpoint this app compares: choose one of "
                           f"{', '.join(self.sources)}.")
        if side.form not in ("", *FORMS):
            raise BadInput(f"{side.form!r} is not a weight form: choose {' or '.join(FORMS)}.")
        if side.engine not in ENGINES:
            raise BadInput(f"{side.engine!r} is not an engine: choose {' or '.join(ENGINES)}.")
        model, form = self.engine.model, side.form or self.own_form
        source = self.sources[side.checkpoint]
        if form == self.own_form and (side.checkpoint == LOADED or local_folder(source) == model.folder):
            return None
        if model.capabilities.zero_gpu:
            raise ModelUnavailable("On ZeroGPU a comparison runs on the Space's loaded model only: compare settings, "
                                   "or run the app on a GPU machine to compare checkpoints and weight forms.")
        if model.ranks.size > 1:
            raise ModelUnavailable("With several GPUs a comparison runs on the loaded model only: compare settings, "
                                   "or start the app on one GPU to compare checkpoints and weight forms.")
        weights = dataclasses.replace(self.options.placement.weights, memory="auto", fp8=form == "FP8",
                                      never_fp8=form == "bf16")
        return source, dataclasses.replace(
            self.options, placement=dataclasses.replace(self.options.placement, weights=weights)
        )

    def plan(self, side: SideModel) -> str:
        """What running this side loads and roughly how long that takes; ModelUnavailable or BadInput where it cannot
        run here."""
        key = self._load_key(side)
        engine = "diffusers' pipeline" if side.engine == "diffusers" else "our engine"
        if key is None:
            return f"{self.engine.model.label}, {self.own_form}, {engine}: loaded and warm, no load"
        plan = plan_load(*key, keep=(self.engine.model,))
        return f"{side.checkpoint}, {side.form or self.own_form}, {engine}: {plan.describe()}"

    def engine_for(self, side: SideModel, height: int, width: int) -> SideEngine:
        """The side's engine, its model loaded (then warmed up once at this size) if it was not."""
        key = self._load_key(side)
        if key is None:
            return SideEngine(self.engine, side.engine, None)
        started = time.perf_counter()
        model = load_model(*key, keep=(self.engine.model,))
        self._engines = {k: e for k, e in self._engines.items() if is_loaded(e.model)}
        if id(model) in self._engines:
            return SideEngine(self._engines[id(model)], side.engine, None)
        engine = self._engines[id(model)] = Engine(model, self.engine.options)
        warm_up(engine, height, width)
        return SideEngine(engine, side.engine, time.perf_counter() - started)

