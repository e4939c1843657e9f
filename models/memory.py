"""Keep the server's resident memory close to what it holds (glibc; elsewhere a no-op).

glibc raises its mmap threshold each time a large block is freed, up to 32 MB, after which
large numpy arrays (traces, batches, figures' data) come from the heap and, once freed,
stay resident as fragments. A fixed threshold keeps such blocks mmapped: freed means
returned to the OS. LSTM_MMAP_THRESHOLD (bytes, 0: leave glibc's default) sets it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MMAP_THRESHOLD = int(os.environ.get("LSTM_MMAP_THRESHOLD", 256 * 1024))


def fix_mmap_threshold() -> bool:
    """Apply the fixed threshold (from now on). True if glibc accepted it."""
    if MMAP_THRESHOLD <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False
