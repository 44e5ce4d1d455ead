"""What this process may run on."""

from __future__ import annotations

import os


def cpu_cores() -> int:
    """The cores this process may use (its affinity mask, e.g. a container's or a SLURM step's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
