"""The transformer's forward pass replayed from CUDA graphs, one graph per input shape.

One replay launches the forward's thousands of kernels in a single call, so the GPU never waits on the host to
launch them, which matters most in the small first pyramid stage. Shapes are fixed within a request (one per
pyramid stage), so a few graphs serve every segment, and they are kept for the next request.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: dict[str, torch.Tensor]
    output: torch.Tensor


class GraphedForward:
    """Call it like the transformer, with tensors only; returns the denoiser's prediction.

    The first call of a shape runs the model as is (compiling, autotuning and filling lazy caches outside any graph);
    the second captures a graph; later ones copy their inputs in and replay it. All graphs share one memory pool,
    which is safe because they never run at once and each output is copied out before the next replay.
    """

    def __init__(self, transformer):
        self.transformer = transformer
        self.pool = torch.cuda.graph_pool_handle()
        self.graphs: dict[tuple, _Graph] = {}
        self.seen: set[tuple] = set()

    def __call__(self, **inputs: torch.Tensor) -> torch.Tensor:
        key = tuple(sorted((name, t.shape, t.dtype) for name, t in inputs.items()))
        if key not in self.graphs:
            if key not in self.seen:
                self.seen.add(key)
                return self._run(inputs)
            self.graphs[key] = self._capture(inputs)
        graph = self.graphs[key]
        for name, t in inputs.items():
            graph.inputs[name].copy_(t)
        graph.graph.replay()
        return graph.output.clone()

    def forget(self) -> None:
        """The blocks changed under the graphs (helios/aot_beside.py): each shape runs, then is captured, again."""
        self.graphs.clear()
        self.seen.clear()

    def _run(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.transformer(**inputs, return_dict=False)[0]

    def _capture(self, inputs: dict[str, torch.Tensor]) -> _Graph:
        static = {name: t.clone() for name, t in inputs.items()}
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            output = self._run(static)
        return _Graph(graph, static, output)
