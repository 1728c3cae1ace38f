"""How fast this machine multiplies matrices right now: what EASE's expected fit time is scaled
by, and what every bench's JSON records as the machine's peak (bench/machine.py)."""

import statistics
import time

import torch


def matmul_gflops(size: int = 2048, dtype: torch.dtype = torch.float32, repeat: int = 5) -> float:
    """Median GFLOP/s of a size x size matmul on the CPU in `dtype`, with torch's current threads."""
    own = torch.Generator().manual_seed(0)  # timing must not move the global stream a seeded run draws from
    a, b = (torch.randn(size, size, generator=own).to(dtype) for _ in range(2))
    a @ b  # warm-up
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - started)
    return 2 * size ** 3 / max(statistics.median(seconds), 1e-9) / 1e9
