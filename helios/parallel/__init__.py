"""Several GPUs, one stream: torchrun's ranks (rank 0 leads, the others follow its run step by step) and the
context-parallel split of each transformer call."""
