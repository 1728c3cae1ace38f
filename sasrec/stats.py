"""How sure a figure is: 95 % intervals and paired tests over users.

Every test metric is a mean over users. Drawing the users again with replacement, RESAMPLES
times, and taking the mean each time shows how much that mean would move with another sample of
users: the middle 95 % of those means is the interval (the percentile bootstrap). Every metric of
every model is resampled with the same draws, so differences are paired: a user who is easy for
one model is usually easy for the other, and pairing takes that shared part out of the comparison.

A paired test asks whether a difference between two models' means could be noise: its p-value is
the share of resampled differences, shifted to centre on zero (no difference), that lie at least as
far from zero as the difference observed. With 1,000 resamples the smallest p-value is 1/1001.

Catalog coverage is a count over all users, not a mean: its interval is the jackknife's
(jackknife_interval), since a bootstrap resample holds only about 63 % of the distinct users and
would understate it.
"""

import math

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
SIGNIFICANT = 0.05  # a difference with a smaller p-value is called significant
Z = 1.959963984540054  # the standard normal's 97.5 % quantile, for the jackknife's interval


def resampled_means(values, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """values: (n,) or (n, m) per-user values -> (resamples,) or (resamples, m): each column's mean over
    each resample of the n users. The resamples depend only on n and seed, so two calls for the same
    users are paired as well."""
    values = np.asarray(values, dtype=np.float64)
    columns = values.reshape(len(values), -1)
    n = len(columns)
    means = np.full((resamples, columns.shape[1]), np.nan)
    if n:
        rng = np.random.default_rng(seed)
        # Centred float32 values: a product twice as fast as float64's, and exact enough for sums of
        # small deviations (the means are added back in float64).
        centre = columns.mean(0)
        deviations = (columns - centre).astype(np.float32)
        chunk = int(np.clip((1 << 22) // n, 1, resamples))  # about 4M draws at a time
        for lo in range(0, resamples, chunk):
            rows = min(chunk, resamples - lo)
            drawn = rng.integers(0, n, size=(rows, n), dtype=np.int32) + n * np.arange(rows, dtype=np.int64)[:, None]
            # How often each user was drawn: the resample's weights, so that a mean is one product.
            counts = np.bincount(drawn.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float32)
            means[lo:lo + rows] = centre + (counts @ deviations).astype(np.float64) / n
        # A mean lies between the smallest and largest value; float32 rounding may step a hair outside.
        np.clip(means, columns.min(0), columns.max(0), out=means)
    return means[:, 0] if values.ndim == 1 else means


def interval(resampled: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """The percentile interval of resampled statistics: (2,) for (resamples,), (2, m) for (resamples, m)."""
    tail = (1 - level) / 2 * 100
    return np.percentile(resampled, [tail, 100 - tail], axis=0)


def paired_test(first: np.ndarray, second: np.ndarray, observed: float, level: float = LEVEL) -> dict:
    """Whether first - second differs from zero: first and second are the two models' resampled means
    (the same resamples), observed the difference of their actual means. Returns the difference, its
    interval, the two-sided p-value and whether that is below SIGNIFICANT."""
    differences = np.asarray(first) - np.asarray(second)
    farther = np.count_nonzero(np.abs(differences - observed) >= abs(observed))
    p_value = (1 + farther) / (len(differences) + 1)
    low, high = interval(differences, level)
    return {"difference": float(observed), "ci95": [float(low), float(high)], "p_value": float(p_value),
            "significant": bool(p_value < SIGNIFICANT)}


def jackknife_interval(estimate: float, leave_one_out: np.ndarray) -> list[float]:
    """estimate ± 1.96 jackknife standard errors, from the statistic recomputed without each user in turn."""
    n = len(leave_one_out)
    if n < 2:
        return [estimate, estimate]
    error = math.sqrt((n - 1) / n * float(np.sum((leave_one_out - leave_one_out.mean()) ** 2)))
    return [estimate - Z * error, estimate + Z * error]


def p_text(p_value: float, resamples: int = RESAMPLES) -> str:
    """'p = 0.031', or 'p < 0.001' at the smallest p-value the resamples can give."""
    if p_value <= 1 / (resamples + 1) + 1e-12:
        return f"p < {1 / resamples:g}"
    return f"p = {p_value:.3f}" if p_value < 0.1 else f"p = {p_value:.2f}"
