"""Where the weights live and in what form: read from the checkpoint's files straight to their place, FP8 and int8
forms, and blocks streamed from pinned host memory."""
