"""EASE (sasrec/ease.py) against brute-force solves on matrices small enough to invert by hand."""

import numpy as np
import pytest
import torch

from sasrec import ease, sequences
from sasrec.evaluate import evaluate, rank_targets
from sasrec.model import SASRec, SASRecConfig


def test_the_closed_form_is_each_items_ridge_regression_on_the_others():
    # EASE's column j is the ridge regression of item j on every other item (its diagonal held at 0):
    # solved here one column at a time, with numpy, in float64.
    rng = np.random.default_rng(0)
    X = (rng.random((40, 9)) < 0.35).astype(np.float64)
    lam = 2.5
    B = ease.weights(torch.as_tensor(X.T @ X, dtype=torch.float32), lam)
    assert B.is_contiguous()  # row-major: scoring users reads B by rows, 15x slower column-major at 18,000 items
    B = B.numpy()
    for j in range(9):
        others = [i for i in range(9) if i != j]
        column = np.linalg.solve(X[:, others].T @ X[:, others] + lam * np.eye(8), X[:, others].T @ X[:, j])
        assert B[others, j] == pytest.approx(column, abs=2e-5)
        assert B[j, j] == 0
    P = np.linalg.inv(X.T @ X + lam * np.eye(9))  # and the same from the inverse itself
    expected = np.eye(9) - P / np.diag(P)
    np.fill_diagonal(expected, 0)
    assert B == pytest.approx(expected, abs=2e-5)


@pytest.mark.parametrize("block", [1, 3, 2048])
def test_the_gram_matrix_counts_users_holding_both_items(block):
    rng = np.random.default_rng(1)
    lengths = rng.integers(0, 9, 30)
    items = rng.integers(1, 8, lengths.sum()).astype(np.int32)  # repeats within a user count once
    ends = np.cumsum(lengths)
    starts = ends - lengths
    X = np.zeros((30, 8))
    for user, (start, end) in enumerate(zip(starts, ends)):
        X[user, items[start:end]] = 1
    assert ease.gram(items, starts, ends, 7, block=block).numpy() == pytest.approx(X.T @ X)
    assert ease.user_item_matrix(items, starts, ends, 7).to_dense().numpy() == pytest.approx(X)


def brute_force_ranks(B: np.ndarray, data, split) -> np.ndarray:
    """Each user's target rank from x_u B, their history hidden but the target kept, one user at a time."""
    ranks = []
    for start, end, target in zip(split.starts, split.ends, split.targets):
        history = data.items[start:end]
        scores = B[np.unique(history)].sum(0)
        scores[0] = -np.inf
        hidden = np.setdiff1d(history, [target])
        scores[hidden] = -np.inf
        ranks.append(int((scores > scores[target]).sum()) + 1)
    return np.array(ranks)


def test_fit_chooses_lambda_on_validation_and_ranks_as_a_brute_force_solve(make_dataset):
    rng = np.random.default_rng(2)
    data = make_dataset({u: [f"i{j}" for j in rng.choice(25, size=rng.integers(3, 10), replace=False)]
                         for u in range(60)})
    test = sequences.holdout(data, "test")
    fitted = ease.fit(data, test)
    assert fitted.lam == max(fitted.validation, key=fitted.validation.get)
    assert len(fitted.validation) == len(ease.LAMBDA_SCALES) and fitted.validation_users == 60

    # The test model learns from everything before the test items: the validation items too.
    X = np.zeros((data.num_users, data.num_items + 1))
    for user, (start, end) in enumerate(zip(data.offsets[:-1], sequences.known_ends(data, "test"))):
        X[user, data.items[start:end]] = 1
    P = np.linalg.inv(X.T @ X + fitted.lam * np.eye(data.num_items + 1))
    B = np.eye(data.num_items + 1) - P / np.diag(P)
    np.fill_diagonal(B, 0)
    ranked = rank_targets(fitted.score, data.items, test)["rank"]
    assert np.array_equal(ranked, brute_force_ranks(B, data, test))


def test_a_catalog_above_the_limit_gets_a_reason_and_no_ease(make_dataset, monkeypatch):
    data = make_dataset({u: [f"i{(u + t) % 15}" for t in range(5)] for u in range(12)})
    monkeypatch.setattr(ease, "MAX_ITEMS", 10)
    fitted = ease.fit(data, sequences.holdout(data, "test"))
    assert fitted.score is None and "up to 10 items" in fitted.reason
    assert fitted.summary() == {"computed": False, "reason": fitted.reason}
    model = SASRec(SASRecConfig(num_items=data.num_items, maxlen=5, hidden=8, num_heads=1))
    report = evaluate(model, data, "test")
    assert "ease_ndcg@10" not in report.metrics and "ease_rank" not in report.per_user
    assert report.ease["computed"] is False and "items" in report.ease["reason"]


def test_a_matrix_the_factor_fails_on_leaves_ease_out_with_a_reason(make_dataset, monkeypatch):
    data = make_dataset({u: [f"i{(u + t) % 15}" for t in range(5)] for u in range(12)})
    cholesky = torch.linalg.cholesky
    smallest = {"diagonal": float("inf")}  # float32 rounding may outweigh a small λ: the factor fails below it

    def factor(A):
        if float(A.diagonal().min()) < smallest["diagonal"]:
            raise torch.linalg.LinAlgError("linalg.cholesky: the factorization could not be completed")
        return cholesky(A)

    monkeypatch.setattr(torch.linalg, "cholesky", factor)
    fitted = ease.fit(data, sequences.holdout(data, "test"))
    assert fitted.score is None and "could not be fitted" in fitted.reason
    model = SASRec(SASRecConfig(num_items=data.num_items, maxlen=5, hidden=8, num_heads=1))
    report = evaluate(model, data, "test")  # the other models are ranked all the same
    assert "ndcg@10" in report.metrics and "ease_ndcg@10" not in report.metrics
    assert "could not be fitted" in report.ease["reason"]

    # Failing for the search's smaller λ only: those are passed over, and EASE is fitted with the others.
    monkeypatch.setattr(torch.linalg, "cholesky", cholesky)
    grid = list(ease.fit(data, sequences.holdout(data, "test")).validation)[:len(ease.LAMBDA_SCALES)]
    smallest["diagonal"] = sorted(grid)[2]  # a λ's matrix has λ on the diagonal of its padding item
    monkeypatch.setattr(torch.linalg, "cholesky", factor)
    fitted = ease.fit(data, sequences.holdout(data, "test"))
    assert fitted.score is not None and fitted.lam >= smallest["diagonal"]
    assert min(fitted.validation) >= smallest["diagonal"]
    assert {lam for lam in grid if lam >= smallest["diagonal"]} <= set(fitted.validation)


def test_the_limit_is_explained_in_gigabytes():
    assert ease.too_big(ease.MAX_ITEMS) is None
    reason = ease.too_big(100_000)
    assert "100,000 items" in reason and "112 GB" in reason


def test_lambda_is_searched_on_the_most_popular_items_of_a_big_catalog(make_dataset, monkeypatch):
    data = make_dataset({"u": ["a", "b", "a", "c", "d"], "v": ["b", "a", "c", "b", "d"], "w": ["a", "c", "e", "b", "d"],
                         "x": ["e", "a", "d", "a", "c"]})
    valid = sequences.holdout(data, "valid")
    items, starts, ends, num_items, searched = ease.search_problem(data, valid, most=2)
    # before the validation targets: a 5 times, b 3, c 2, e 1 -> a and b are kept, as 1 and 2
    a, b = data.to_internal(["a", "b"])
    assert num_items == 2
    renumber = {a: 1, b: 2}
    for user in range(data.num_users):
        history = [renumber[i] for i in data.items[data.offsets[user]:sequences.known_ends(data, "valid")[user]]
                   if i in renumber]
        assert items[starts[user]:ends[user]].tolist() == history
    # u's validation item c, v's and x's a... only users whose validation item is kept are searched on
    kept = [data.user_ids[u] for u in searched.users]
    assert kept == [user for user, target in zip(data.user_ids[valid.users], valid.targets) if target in renumber]
    assert set(searched.targets) <= {1, 2}
    assert ease.search_problem(data, valid, most=10)[3] == data.num_items, "a small catalog is searched whole"

    monkeypatch.setattr(ease, "SEARCH_ITEMS", 2)
    fitted = ease.fit(data, sequences.holdout(data, "test"))
    assert fitted.searched_items == 2 and fitted.validation_users == len(searched.users)


def test_timing_the_fit_leaves_the_global_random_stream_alone():
    # a seeded run times EASE's fit only when no other run stored it: the draws must not depend on that
    before = torch.get_rng_state()
    assert ease.expected_seconds(2000) > 0
    assert torch.equal(torch.get_rng_state(), before)
