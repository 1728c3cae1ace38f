"""Beyond-accuracy metrics and breakdowns on examples small enough to compute by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from sasrec import beyond, breakdowns
from sasrec.evaluate import per_user_metrics

# Items 1..5 (0 is padding); popularity: training users per item, 8 users in all.
POPULARITY = np.array([0, 5, 3, 1, 0, 1])
CATEGORIES = np.array([-1, 0, 0, 1, 1, -1])  # items 1, 2 in one category, 3, 4 in another, 5 in none
TOP = np.array([[1, 2, 3],
                [2, 5, 0]])  # the second list has an empty slot


def test_beyond_accuracy_by_hand():
    values = beyond.per_user(TOP, POPULARITY, users=8, categories=CATEGORIES)
    assert values["avg_popularity"] == pytest.approx([(5 + 3 + 1) / 3, (3 + 1) / 2])
    # the head is the most popular fifth of 5 items: item 1 alone
    assert values["long_tail"] == pytest.approx([2 / 3, 1.0])
    assert values["novelty"] == pytest.approx([(math.log2(8 / 5) + math.log2(8 / 3) + 3) / 3, (math.log2(8 / 3) + 3) / 2])
    # pairs: (1,2) same, (1,3) and (2,3) differ; (2,5): a category against none
    assert values["diversity"] == pytest.approx([2 / 3, 1.0])
    assert "diversity" not in beyond.per_user(TOP, POPULARITY, users=8)


def test_coverage_and_its_jackknife_by_hand():
    share, (low, high) = beyond.coverage(TOP, num_items=5)
    assert share == pytest.approx(4 / 5)  # items 1, 2, 3, 5
    # without the first user items 1 and 3 go (0.4 left), without the second item 5 (0.6): standard error 0.1
    assert (low, high) == pytest.approx((0.8 - 1.959964 * 0.1, 0.8 + 1.959964 * 0.1), abs=1e-6)


def test_jaccard_overlap_by_hand():
    assert beyond.jaccard(TOP, TOP) == pytest.approx([1.0, 1.0])
    assert beyond.jaccard(TOP, TOP[::-1]) == pytest.approx([1 / 4, 1 / 4])  # {1,2,3} and {2,5}: 1 shared of 4


def test_popularity_counts_users_on_the_training_side_of_the_test_split(make_dataset):
    data = make_dataset({"u": ["a", "b", "a", "c"], "v": ["b", "c", "d"], "w": ["a"]}, min_seq_len=1)
    a, b, c, d = data.to_internal(["a", "b", "c", "d"])
    popularity = beyond.item_popularity(data, "test")
    # u's test item c and v's test item d are held out; u's repeat of a counts once; w is too short to hold out
    assert popularity[[a, b, c, d]].tolist() == [2, 2, 1, 0]


def test_per_user_metrics_by_hand():
    metrics = per_user_metrics(np.array([1, 3, 12]), ks=(10,))
    assert metrics["hr@10"].tolist() == [1, 1, 0]
    assert metrics["ndcg@10"] == pytest.approx([1, 1 / math.log2(4), 0])
    assert metrics["mrr"] == pytest.approx([1, 1 / 3, 1 / 12])


def test_head_torso_and_tail_each_hold_a_third_of_the_interactions():
    popularity = np.array([0, 6, 3, 2, 1, 0])  # 12 interactions: item 1 holds half, item 2 a quarter
    groups, spans = breakdowns.popularity_groups(np.array([6, 3, 2, 1, 0]), popularity)
    assert groups.tolist() == ["head", "torso", "tail", "tail", "tail"]
    assert spans == {"head": "1 item", "torso": "1 item", "tail": "3 items"}


def test_length_and_recency_terciles():
    groups, spans = breakdowns.length_groups(np.array([1, 1, 2, 5, 8, 9]))
    assert groups.tolist() == ["short", "short", "medium", "medium", "long", "long"]
    assert spans["long"] == "8–9 items"
    assert breakdowns.length_groups(np.array([4, 4, 4]))[0].tolist() == ["all"] * 3
    day = 86_400
    groups, spans = breakdowns.recency_groups(np.array([0, 1, 2, 3, 4, 5], dtype=float) * day)
    assert groups.tolist() == ["earliest", "earliest", "middle", "middle", "latest", "latest"]
    assert spans["earliest"] == "1970-01-01 – 1970-01-02"
    assert breakdowns.recency_groups(np.full(4, np.nan)) is None


def test_a_breakdown_gives_every_group_and_model_its_interval():
    rng = np.random.default_rng(0)
    per_user = pd.DataFrame({"history_length": rng.integers(1, 30, 300), "rank": rng.integers(1, 40, 300),
                             "markov_rank": rng.integers(1, 40, 300), "target_popularity": rng.integers(0, 50, 300),
                             "last_active": np.nan})
    popularity = np.r_[0, rng.integers(0, 50, 60)]
    table = breakdowns.breakdowns(per_user, popularity, ["", "markov_"])
    assert set(table["by"]) == {"length", "popularity"}, "no timestamps, no recency"
    assert (table["ndcg@10_low"] <= table["ndcg@10"]).all() and (table["ndcg@10"] <= table["ndcg@10_high"]).all()
    assert (table["hr@10_low"] < table["hr@10_high"]).all()
    lengths = table[table["by"] == "length"]
    assert lengths.groupby("group", sort=False)["users"].first().sum() == 300
    short = per_user[per_user["history_length"] <= np.quantile(per_user["history_length"], 1 / 3)]
    row = lengths[(lengths["group"] == "short") & (lengths["model"] == "Markov")].iloc[0]
    assert row["hr@10"] == pytest.approx((short["markov_rank"] <= 10).mean())
