"""How fast this machine multiplies matrices right now: what EASE's expected fit time is scaled
by, and what every bench's JSON records as the machine's peak (bench/machine.py)."""

import statistics
import time

import torch


def matmul_gflops(size: int = 2048, dtype: torch.dtype = torch.float32, repeat: int = 5) -> float:
    """Median GFLOP/s of a size x size matmul on the CPU in `dtype`, with torch's current threads."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - started)
    return 2 * size ** 3 / max(statistics.median(seconds), 1e-9) / 1e9
