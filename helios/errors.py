"""The errors the engine raises. Each message is one sentence a user can act on; the edges (CLI, app) only show it."""


class HeliosError(Exception):
    """Base class: something the user or the machine must change before the request can succeed."""

    exit_code = 1


class BadInput(HeliosError):
    """The request itself is wrong (prompt, timeline, file, size); the user fixes it and retries."""

    exit_code = 2


class ModelUnavailable(HeliosError):
    """The model cannot be loaded here: missing folder, unreachable hub, or not enough hardware."""


class Cancelled(HeliosError):
    """The caller stopped the generation; what was already streamed stays valid."""


class OutOfMemory(HeliosError):
    """The GPU ran out of memory during a run; the run ended and what it held was freed."""
