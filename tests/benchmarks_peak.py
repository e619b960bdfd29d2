"""Peak resident memory of this process, for the memory tests and benchmarks."""

from __future__ import annotations


def peak_rss_mb() -> float:
    """``VmHWM`` from ``/proc/self/status`` in MB: the peak of this process's own memory map.

    ``resource.getrusage(...).ru_maxrss`` is not used: Linux keeps the pre-``exec`` high-water
    mark in it, so a child of a large process (pytest after many tests) reports its parent's
    size.
    """
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
