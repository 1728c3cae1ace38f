"""Intervals and paired tests (sasrec/stats.py) against what they must be in closed form."""

import math

import numpy as np
import pytest

from sasrec import stats


def binomial_quantile(n: int, p: float, q: float) -> int:
    """The smallest k with P(Binomial(n, p) <= k) >= q."""
    total = 0.0
    for k in range(n + 1):
        total += math.comb(n, k) * p ** k * (1 - p) ** (n - k)
        if total >= q - 1e-12:
            return k
    return n


def test_the_bootstrap_of_a_hit_rate_is_a_binomial():
    # Resampling n users of whom a share p hit draws a hit with probability p each time: the resampled hit
    # rate is exactly Binomial(n, p) / n, so its 2.5 % and 97.5 % quantiles are known.
    n, hits = 200, 60
    values = np.r_[np.ones(hits), np.zeros(n - hits)]
    resampled = stats.resampled_means(values, resamples=4000, seed=1)
    low, high = stats.interval(resampled)
    assert low == pytest.approx(binomial_quantile(n, 0.3, 0.025) / n, abs=0.011)
    assert high == pytest.approx(binomial_quantile(n, 0.3, 0.975) / n, abs=0.011)
    assert resampled.mean() == pytest.approx(0.3, abs=3 * math.sqrt(0.21 / n / 4000))
    assert resampled.std() == pytest.approx(math.sqrt(0.3 * 0.7 / n), rel=0.06)


def test_two_users_resample_to_three_means_in_the_proportions_of_a_binomial():
    resampled = stats.resampled_means(np.array([0.0, 1.0]), resamples=8000, seed=3)
    values, counts = np.unique(resampled, return_counts=True)
    assert list(values) == [0.0, 0.5, 1.0]
    assert counts / 8000 == pytest.approx([0.25, 0.5, 0.25], abs=0.02)


def test_resampling_is_paired_and_repeatable():
    rng = np.random.default_rng(0)
    first = rng.random(500)
    together = stats.resampled_means(np.column_stack([first, first + 0.25, np.full(500, 7.0)]))
    assert np.allclose(together[:, 0], stats.resampled_means(first), rtol=0, atol=1e-6), "the same draws, paired"
    assert np.allclose(together[:, 1] - together[:, 0], 0.25), "a column shifted by 0.25 moves every resample by 0.25"
    assert np.allclose(together[:, 2], 7.0), "every resample's weights sum to n"


def test_a_constant_improvement_is_significant_and_no_difference_is_not():
    rng = np.random.default_rng(0)
    base = rng.random(300)
    better = stats.resampled_means(np.column_stack([base + 0.01, base]))
    test = stats.paired_test(better[:, 0], better[:, 1], 0.01)
    assert test["ci95"] == pytest.approx([0.01, 0.01])
    assert test["p_value"] == pytest.approx(1 / (stats.RESAMPLES + 1)) and test["significant"]
    same = stats.paired_test(better[:, 1], better[:, 1], 0.0)
    assert same["p_value"] == 1.0 and not same["significant"]


def test_pairing_removes_what_two_models_share():
    # Two models whose per-user values differ by a little noise around a shared, widely varying part.
    rng = np.random.default_rng(1)
    shared = rng.random(2000)
    a, b = shared + 0.02 + rng.normal(0, 0.01, 2000), shared
    resampled = stats.resampled_means(np.column_stack([a, b]))
    test = stats.paired_test(resampled[:, 0], resampled[:, 1], float(a.mean() - b.mean()))
    expected_half_width = 1.96 * np.std(a - b) / math.sqrt(2000)
    assert (test["ci95"][1] - test["ci95"][0]) / 2 == pytest.approx(expected_half_width, rel=0.15)
    unpaired_half_width = 1.96 * math.sqrt(np.var(a) / 2000 + np.var(b) / 2000)
    assert expected_half_width < unpaired_half_width / 20
    assert test["significant"] and test["p_value"] < 0.01


def test_a_small_noisy_difference_is_not_significant():
    rng = np.random.default_rng(2)
    a, b = rng.random(50), rng.random(50)
    resampled = stats.resampled_means(np.column_stack([a, b]))
    test = stats.paired_test(resampled[:, 0], resampled[:, 1], float(a.mean() - b.mean()))
    assert test["ci95"][0] < 0 < test["ci95"][1] and not test["significant"]


def test_the_jackknife_interval_by_hand():
    # leave-one-out values 0.4 and 0.6: variance (n-1)/n * sum of squares = 1/2 * 0.02 = 0.01
    low, high = stats.jackknife_interval(0.8, np.array([0.4, 0.6]))
    assert low == pytest.approx(0.8 - stats.Z * 0.1) and high == pytest.approx(0.8 + stats.Z * 0.1)


def test_p_values_read_as_people_write_them():
    assert stats.p_text(1 / 1001) == "p < 0.001"
    assert stats.p_text(0.0312) == "p = 0.031"
    assert stats.p_text(0.4) == "p = 0.40"
