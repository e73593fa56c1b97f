"""The host's memory as the system tells it, read without torch: a start asks before importing it."""

from __future__ import annotations

import os


def available_memory() -> int:
    """MemAvailable: free memory and reclaimable cache, not MemTotal; 0 where unknown."""
    try:
        meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo"))
        return int(meminfo["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0


def host_memory() -> int:
    """What this process holds now plus what is available; 0 where unknown (only the GPU decides)."""
    available = available_memory()
    try:
        resident = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0
    return available + resident if available else 0
