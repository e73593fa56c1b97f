"""What fits here: the GPU's and the host's capabilities, each part's size from the checkpoint's headers, and the
memory tier that runs the model fastest within both."""
