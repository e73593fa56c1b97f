"""Where and how the model runs: memory tiers, FP8 weights, streamed blocks, compile, CUDA graphs, kernel wiring.

`options` names the choices and picks a tier from `capability`'s view of the GPU and `size`'s view of the checkpoint;
`place` carries them out at load time; the rest are the mechanisms. The core path (request, timeline, denoise,
engine, run, segment, media, loading) only asks this package where things are.
"""
