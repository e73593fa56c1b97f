"""Triton kernels for the hot non-matmul work of a Helios transformer block, each beside its PyTorch reference."""
