"""How long and how much the app keeps for sessions: its own file, so `app.py` reads the defaults for its flags
without importing the engine (a bad flag is answered in seconds)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SessionLimits:
    """What the app keeps for sessions that never say goodbye (API clients send no unload): a session idle this long
    is released with its files, and the runs' files together stay under the cap, the least recently used first."""

    idle_release_s: float = 1800.0
    disk_cap_bytes: int = 4 * 2**30
