"""Helios Studio's engine: streaming, timeline-steered Helios video generation on diffusers' components."""

import logging

DEFAULT_MODEL = "BestWishYsh/Helios-Distilled"
"""The checkpoint a run uses when none is named."""

# Importing torchao warns at every start about things we do not use: its optional C++ kernels (MX formats, CUTLASS)
# fail to load on torch builds they were not built for, newer torch deprecates how it registers two enums, and
# diffusers looks for torchao classes (for checkpoints saved quantized) that torchao has since moved.
for _name in ("torchao", "torch.utils._pytree", "diffusers.quantizers.torchao.torchao_quantizer"):
    logging.getLogger(_name).setLevel(logging.ERROR)
