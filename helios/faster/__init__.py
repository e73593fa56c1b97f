"""The same maths, made faster: Triton kernels in the blocks and the VAE, FP8 attention, compiled and ahead-of-time
compiled blocks, CUDA graphs. Each is checked against the plain path's frames (tests/test_kernels*.py, test_aot.py)."""
