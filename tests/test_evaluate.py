"""Metrics, the sampled protocol and the baselines, on data small enough to check by hand."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sasrec import sequences
from sasrec.evaluate import (
    MAX_SCORES,
    markov_scorer,
    popularity_scorer,
    rank_metrics,
    rank_targets,
    sample_negatives,
    users_per_batch,
)
from sasrec.sequences import left_padded


def test_rank_metrics_by_hand():
    metrics = rank_metrics(np.array([1, 2, 11]), ks=(1, 10))
    assert metrics["hr@1"] == pytest.approx(1 / 3)
    assert metrics["hr@10"] == pytest.approx(2 / 3)
    assert metrics["ndcg@10"] == pytest.approx((1 + 1 / np.log2(3)) / 3)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 11) / 3)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(1, 9), max_size=8), min_size=1, max_size=6), st.integers(1, 10))
def test_left_padded_keeps_the_last_items(slices, width):
    items = np.array([i for s in slices for i in s], dtype=np.int64)
    ends = np.cumsum([len(s) for s in slices])
    starts = ends - [len(s) for s in slices]
    out = left_padded(items, starts, ends, width)
    for row, s in zip(out, slices):
        kept = s[-width:] if s else []
        assert list(row) == [0] * (width - len(kept)) + kept


def test_holdout_holds_out_the_last_two(make_dataset):
    data = make_dataset({"u": ["a", "b", "c", "d"], "v": ["d", "c", "b"]})
    a, b, c, d = data.to_internal(["a", "b", "c", "d"])
    valid = sequences.holdout(data, "valid")
    assert list(data.items[valid.starts[0]:valid.ends[0]]) == [a, b] and valid.targets[0] == c
    test = sequences.holdout(data, "test")
    assert list(data.items[test.starts[0]:test.ends[0]]) == [a, b, c] and test.targets[0] == d


def ranks_for(scorer, data, split="test", **kwargs):
    return rank_targets(scorer, data.items, sequences.holdout(data, split), **kwargs)


def test_popularity_ranks_by_training_counts(make_dataset):
    data = make_dataset({"u1": ["x", "y", "x", "p"], "u2": ["x", "y", "z", "q"], "u3": ["y", "x", "z", "x"]})
    scorer = popularity_scorer(data, sequences.holdout(data, "test"), "test", "cpu")
    ranks = ranks_for(scorer, data, exclude_history=False)["rank"]
    # history counts: x=4, y=3, z=2, p, q = 0 -> x is first, so u3's target x has rank 1
    assert ranks[2] == 1
    assert ranks[0] > 3 and ranks[1] > 3


def test_markov_follows_transitions_and_breaks_ties_by_popularity(make_dataset):
    data = make_dataset({"u1": ["a", "b", "a", "b", "c"], "u2": ["a", "b", "c", "d"], "u3": ["a", "c", "d", "a", "b"]})
    scorer = markov_scorer(data, sequences.holdout(data, "test"), "test", "cpu")
    scores = scorer(np.arange(3))
    a, b, c, d = data.to_internal(["a", "b", "c", "d"])
    # u3's last history item is 'a'; a -> b happens 3 times in histories, a -> c once.
    assert scores[2].argmax() == b
    assert scores[2, b] > scores[2, c] > scores[2, d]
    assert ranks_for(scorer, data, exclude_history=False)["rank"][2] == 1


def test_excluding_history_never_excludes_the_target(make_dataset):
    data = make_dataset({"u": ["b", "c", "b"], "v": ["a", "b", "c"], "w": ["c", "a", "b"]})

    def favours_history(rows):  # scores every item by its id: the highest id wins
        return torch.arange(data.num_items + 1, dtype=torch.float).expand(len(rows), -1).clone()

    kept = ranks_for(favours_history, data, exclude_history=False)["rank"]
    excluded = ranks_for(favours_history, data, exclude_history=True)["rank"]
    assert np.all(excluded <= kept)
    # u watches 'b' again: 'c' (highest id) is removed as seen, the repeated target 'b' is not
    assert kept[0] == 2 and excluded[0] == 1


def test_sampled_negatives_avoid_everything_the_user_saw(make_dataset):
    rng = np.random.default_rng(0)
    sequences = {u: [str(i) for i in rng.choice(30, size=rng.integers(3, 20), replace=False)] for u in range(40)}
    data = make_dataset(sequences)
    users = np.arange(data.num_users)
    negatives = sample_negatives(data, users, num=100, seed=1)
    assert negatives.shape == (data.num_users, 100)
    for u in range(data.num_users):
        assert not set(negatives[u]) & set(data.sequence(u))
        assert negatives[u].min() >= 1 and negatives[u].max() <= data.num_items
    assert np.array_equal(negatives, sample_negatives(data, users, num=100, seed=1))


def test_an_oracle_scorer_ranks_every_target_first(make_dataset):
    data = make_dataset({u: [f"i{(u + t) % 12}" for t in range(6)] for u in range(10)})
    test = sequences.holdout(data, "test")

    def oracle(rows):
        scores = torch.zeros(len(rows), data.num_items + 1)
        scores[torch.arange(len(rows)), torch.as_tensor(test.targets[rows]).long()] = 1
        return scores

    ranked = rank_targets(oracle, data.items, test, negatives=sample_negatives(data, test.users, num=5))
    assert np.all(ranked["rank"] == 1) and np.all(ranked["sampled_rank"] == 1)


def test_a_user_who_saw_the_whole_catalog_gets_padding_negatives(make_dataset):
    data = make_dataset({"u": ["a", "b", "c", "d"], "v": ["a", "b", "c"]})
    negatives = sample_negatives(data, np.arange(data.num_users), num=5)
    assert np.all(negatives[0] == 0)  # nothing left unseen: padding, which never outranks the target
    assert set(negatives[1]) == set(data.to_internal(["d"]))


@settings(max_examples=30, deadline=None)
@given(num_items=st.integers(1, 20_000_000))
def test_ranking_holds_a_bounded_number_of_scores_whatever_the_catalog(num_items):
    users = users_per_batch(num_items)
    assert users >= 1
    assert users * (num_items + 1) <= MAX_SCORES or users == 1


def test_ranking_in_chunks_gives_the_ranks_of_one_big_batch(make_dataset):
    rng = np.random.default_rng(0)
    data = make_dataset({u: [f"i{j}" for j in rng.choice(40, size=rng.integers(3, 12), replace=False)]
                         for u in range(50)})
    test = sequences.holdout(data, "test")
    table = torch.as_tensor(rng.normal(size=(len(test), data.num_items + 1)), dtype=torch.float)
    asked = []

    def scorer(rows):
        asked.append(len(rows))
        return table[torch.as_tensor(rows)]

    negatives = sample_negatives(data, test.users, num=7)
    whole = rank_targets(scorer, data.items, test, negatives=negatives, batch_size=len(test))
    chunked = rank_targets(scorer, data.items, test, negatives=negatives, batch_size=3)
    assert max(asked[1:]) == 3
    for key in ("rank", "sampled_rank"):
        assert np.array_equal(whole[key], chunked[key])

