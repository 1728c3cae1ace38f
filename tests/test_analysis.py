"""Looking inside the model: attention tables, rollout, aggregates, embedding maps (breakdowns: test_beyond.py)."""

from itertools import pairwise
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sasrec import analysis
from sasrec.dataset import build_dataset
from sasrec.inference import Recommender
from sasrec.model import SASRec, SASRecConfig
from sasrec.readers import Columns
from sasrec.synthetic import generate


@pytest.fixture(scope="module")
def dataset():
    interactions, items = generate(seed=2, num_users=80, num_series=3, num_films=30, num_franchises=2)
    return build_dataset(interactions, Columns("user_id", "item_id", "timestamp"), items, source="tiny")


def random_model(dataset, maxlen=12, blocks=2, heads=2, seed=0):
    torch.manual_seed(seed)
    return SASRec(SASRecConfig(num_items=dataset.num_items, maxlen=maxlen, hidden=16, num_blocks=blocks,
                               num_heads=heads)).eval()


def uniform_model(dataset, maxlen=12):
    """A SASRec whose queries are zero: every position attends evenly to what it can see."""
    model = random_model(dataset, maxlen)
    with torch.no_grad():
        for block in model.blocks:
            block.attention.query.weight.zero_()
            block.attention.query.bias.zero_()
    return model


class SelfAttentionOnly:
    """Stands in for SASRec where every real position attends only to itself."""

    def __init__(self, maxlen=12, blocks=2, heads=2):
        self.config = SimpleNamespace(maxlen=maxlen, num_blocks=blocks, num_heads=heads)

    def eval(self):
        return self

    def weights(self, items):
        return torch.eye(items.shape[1]).expand(len(items), -1, -1)

    def __call__(self, items, need_weights=False):
        real = (items != 0).float()
        weights = self.weights(items) * real[:, :, None]  # padding queries attend to nothing
        return None, weights[:, None, None].expand(-1, self.config.num_blocks, self.config.num_heads, -1, -1)


class PreviousItemOnly(SelfAttentionOnly):
    """Every real position attends only to the item before it; the first one to itself."""

    def weights(self, items):
        B, T = items.shape
        previous_is_real = torch.zeros(B, T, 1, dtype=torch.bool)
        previous_is_real[:, 1:, 0] = items[:, :-1] != 0
        return torch.where(previous_is_real, torch.diag(torch.ones(T - 1), -1), torch.eye(T))


def causal_random_attention(rng, layers, heads, T):
    scores = rng.random((layers, heads, T, T)) * np.tril(np.ones((T, T)))
    return scores / scores.sum(-1, keepdims=True)


# Rollout

@settings(max_examples=40, deadline=None)
@given(layers=st.integers(1, 4), heads=st.integers(1, 3), T=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_rollout_rows_are_distributions_over_earlier_items(layers, heads, T, seed):
    rollout = analysis.attention_rollout(causal_random_attention(np.random.default_rng(seed), layers, heads, T))
    assert rollout.shape == (T, T)
    np.testing.assert_allclose(rollout.sum(1), 1.0)
    assert (rollout >= 0).all()
    assert np.allclose(np.triu(rollout, 1), 0), "nothing flows from a later item"


def test_rollout_of_self_attention_is_the_identity():
    attention = np.broadcast_to(np.eye(5), (3, 2, 5, 5))
    np.testing.assert_allclose(analysis.attention_rollout(attention), np.eye(5))


def test_rollout_of_one_layer_mixes_in_the_residual():
    attention = np.zeros((1, 1, 3, 3))
    attention[0, 0, :, 0] = 1.0  # every position looks at the first item
    expected = 0.5 * attention[0, 0] + 0.5 * np.eye(3)
    np.testing.assert_allclose(analysis.attention_rollout(attention), expected)


def test_rollout_of_two_layers_follows_the_chain():
    # layer 1: each position copies the one before it; layer 2: the last copies the first
    # position's layer-1 state, which already holds item 1 only.
    first = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    second = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]], float)
    rollout = analysis.attention_rollout(np.stack([first, second])[:, None])
    mix = lambda a: 0.5 * a + 0.5 * np.eye(3)  # noqa: E731
    np.testing.assert_allclose(rollout, mix(second) @ mix(first))
    assert rollout[-1].argmax() == 0


# One history

@pytest.fixture(scope="module")
def recommendation(dataset):
    recommender = Recommender(random_model(dataset), dataset.catalog)
    history = list(dataset.item_ids[dataset.sequence(0)][:7])
    return recommender.recommend(history, k=5)


def test_attention_table_holds_the_causal_cells_and_rows_sum_to_one(recommendation):
    layers, heads, T, _ = recommendation.attention.shape
    table = analysis.attention_table(recommendation.history, recommendation.attention)
    assert len(table) == layers * heads * T * (T + 1) // 2
    assert (table["key"] <= table["query"]).all()
    sums = table.groupby(["layer", "head", "query"])["weight"].sum()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-5)
    titles = dict(zip(recommendation.history["position"], recommendation.history["title"]))
    assert (table["key_title"] == table["key"].map(titles)).all()
    assert (table["query_title"] == table["query"].map(titles)).all()
    cell = table[(table["layer"] == 2) & (table["head"] == 1) & (table["query"] == T) & (table["key"] == 1)]
    assert cell["weight"].item() == pytest.approx(recommendation.attention[1, 0, T - 1, 0])


def test_prediction_focus_views_sum_to_one(recommendation):
    focus = analysis.prediction_focus(recommendation.history, recommendation.attention)
    layers, _, T, _ = recommendation.attention.shape
    assert list(focus["view"].unique()) == [f"Layer {i + 1}" for i in range(layers)] + ["Rollout"]
    np.testing.assert_allclose(focus.groupby("view")["weight"].sum(), 1.0, rtol=1e-5)
    layer1 = focus[focus.view == "Layer 1"]
    np.testing.assert_allclose(layer1["weight"], recommendation.attention[0, :, -1].mean(0), rtol=1e-6)
    assert list(layer1["position"]) == list(range(1, T + 1))


# Aggregates over validation users

def test_sample_users_draws_distinct_eligible_users_reproducibly(dataset):
    users = analysis.sample_users(dataset, 30, seed=1)
    assert len(users) == len(set(users)) == 30
    assert (np.diff(dataset.offsets)[users] - 2 >= 2).all()
    np.testing.assert_array_equal(users, analysis.sample_users(dataset, 30, seed=1))
    assert len(analysis.sample_users(dataset, 10_000)) <= dataset.num_users


def test_self_attention_puts_all_weight_at_distance_zero(dataset):
    users = analysis.sample_users(dataset, 20)
    by_distance = analysis.attention_by_distance(SelfAttentionOnly(), dataset, users)
    assert set(by_distance["layer"]) == {1, 2}
    assert (by_distance.groupby("layer")["distance"].min() == 0).all()
    at_zero = by_distance["distance"] == 0
    np.testing.assert_allclose(by_distance.loc[at_zero, "weight"], 1.0)
    np.testing.assert_allclose(by_distance.loc[~at_zero, "weight"], 0.0)


def test_uniform_attention_matches_the_uniform_reference(dataset):
    users = analysis.sample_users(dataset, 20)
    by_distance = analysis.attention_by_distance(uniform_model(dataset), dataset, users)
    np.testing.assert_allclose(by_distance["weight"], by_distance["uniform"], rtol=1e-5)
    for _, layer in by_distance.groupby("layer"):
        assert layer["uniform"].is_monotonic_decreasing, "early positions see few items"


def test_attention_by_distance_accounts_for_every_query_once(dataset):
    # each real query spreads a total weight of 1 over its keys, so summing weight x pairs
    # over all distances gives the number of real queries: the pairs at distance 0
    users = analysis.sample_users(dataset, 25)
    model = random_model(dataset, maxlen=10)
    by_distance = analysis.attention_by_distance(model, dataset, users)
    for _, layer in by_distance.groupby("layer"):
        mass = (layer["weight"] * layer["pairs"]).sum()
        assert mass == pytest.approx(layer.loc[layer.distance == 0, "pairs"].item(), rel=1e-5)
        assert layer["distance"].max() < 10
        assert (layer["pairs"].diff().dropna() <= 0).all(), "fewer pairs lie far apart"


def test_category_attention_rows_are_distributions(dataset):
    users = analysis.sample_users(dataset, 30)
    matrix = analysis.category_attention(random_model(dataset), dataset, users)
    assert list(matrix.index) == list(matrix.columns)
    assert set(matrix.index) <= set(dataset.catalog["category"].dropna())
    assert len(matrix) >= 3
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    assert (matrix.to_numpy() >= 0).all()


def test_category_attention_leaves_out_attention_to_oneself(dataset):
    users = analysis.sample_users(dataset, 30)
    assert analysis.category_attention(SelfAttentionOnly(), dataset, users).empty


def test_category_attention_of_previous_item_attention_counts_transitions(dataset):
    users = analysis.sample_users(dataset, 40)
    maxlen = 12
    matrix = analysis.category_attention(PreviousItemOnly(maxlen), dataset, users)
    assert len(matrix) >= 3
    category = dataset.catalog["category"].reindex(range(dataset.num_items + 1)).to_numpy()
    pairs = []
    for user in users:
        history = dataset.sequence(user)[:-2][-maxlen:]  # the validation history the model sees
        pairs += [(category[later], category[earlier]) for earlier, later in pairwise(history)]
    expected = pd.crosstab(*zip(*pairs), normalize="index")
    expected = expected.loc[matrix.index, matrix.columns]
    np.testing.assert_allclose(matrix.to_numpy(), (expected.T / expected.sum(axis=1)).T.to_numpy(), atol=1e-12)


# Embeddings and breakdowns

def test_embedding_map_has_one_point_per_item(dataset):
    model = random_model(dataset)
    popularity = np.bincount(dataset.items, minlength=dataset.num_items + 1)[1:]
    points = analysis.embedding_map(model, dataset.catalog, popularity)
    assert len(points) == dataset.num_items
    assert list(points["item_id"]) == list(dataset.item_ids[1:])
    assert points["popularity"].sum() == dataset.num_events
    assert points["x"].var() >= points["y"].var(), "the first principal axis has the most variance"
    unknown = analysis.embedding_map(model, dataset.catalog)
    assert unknown["popularity"].isna().all()
    np.testing.assert_allclose(unknown[["x", "y"]], points[["x", "y"]])
