"""The synthetic sample: deterministic, byte-reproducible, and the planted patterns are in it."""

import gzip
import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sasrec.synthetic import (
    example_history,
    generate,
    generate_log,
    next_episode_prefixes,
    next_in_chain,
    write_sample,
)
from tests.browser import ROOT

SMALL = dict(num_users=200, num_series=8, num_films=300, num_franchises=6)


@pytest.fixture(scope="module")
def small():
    return generate(seed=3, **SMALL)


@pytest.fixture(scope="module")
def default():
    return generate()


def following(interactions):
    """(item, next item of the same user) for every consecutive pair of a log."""
    user, item = interactions["user_id"].to_numpy(), interactions["item_id"].to_numpy()
    same = user[1:] == user[:-1]
    return item[:-1][same], item[1:][same]


def next_entry(items):
    """item_id -> the next episode (or sequel) of its series, where there is one."""
    out = {}
    for _, group in items[items["series"].notna()].groupby("series"):
        ids = list(group.sort_values("position")["item_id"])
        out.update(zip(ids[:-1], ids[1:]))
    return out


def test_same_seed_same_tables_other_seed_differs(small):
    again = generate(seed=3, **SMALL)
    pd.testing.assert_frame_equal(small[0], again[0])
    pd.testing.assert_frame_equal(small[1], again[1])
    other = generate(seed=4, **SMALL)
    assert not small[0].equals(other[0])
    assert not small[1].equals(other[1])


def test_tables_are_well_formed(small):
    interactions, items = small
    assert list(interactions.columns) == ["user_id", "item_id", "timestamp"]
    assert list(items.columns) == ["item_id", "title", "kind", "genre", "series", "position"]
    assert items["item_id"].is_unique and items["title"].is_unique
    assert set(interactions["item_id"]) <= set(items["item_id"])
    assert set(items["kind"]) == {"episode", "film", "franchise"}
    assert items.loc[items["kind"] == "film", ["series", "position"]].isna().all().all()
    assert items.loc[items["kind"] != "film", ["series", "position"]].notna().all().all()
    assert not interactions.duplicated(["user_id", "item_id"]).any()  # nothing is watched twice
    # time strictly increases within a user, from 2024 on (UTC) and within a plausible span
    same_user = interactions["user_id"].to_numpy()[1:] == interactions["user_id"].to_numpy()[:-1]
    assert (np.diff(interactions["timestamp"].to_numpy())[same_user] > 0).all()
    assert interactions["timestamp"].between(1704067200, 1751328000).all()  # 2024-01-01 .. 2025-07-01


def test_binges_follow_episode_order(small):
    interactions, items = small
    nxt = next_entry(items)
    episodes = set(items.loc[items["kind"] == "episode", "item_id"])
    a, b = following(interactions)
    from_episode = [(x, y) for x, y in zip(a, b) if x in episodes and x in nxt]
    assert len(from_episode) > 500
    in_order = np.mean([nxt[x] == y for x, y in from_episode])
    assert in_order > 0.7, in_order


def test_franchise_sequels_come_in_order(small):
    interactions, items = small
    watched = interactions.merge(items, on="item_id")
    watched = watched[watched["kind"] == "franchise"]
    assert len(watched) > 100
    for _, positions in watched.groupby(["user_id", "series"])["position"]:
        assert positions.is_monotonic_increasing and positions.is_unique


def test_genre_tastes_are_concentrated(small):
    interactions, items = small
    genres = interactions.merge(items, on="item_id")[["user_id", "genre"]]
    top_share = genres.groupby("user_id")["genre"].value_counts(normalize=True).groupby(level=0).max()
    lengths = genres.groupby("user_id").size()
    uniform = 1 / items["genre"].nunique()
    assert top_share[lengths >= 10].mean() > 3 * uniform


def test_film_popularity_is_skewed(small):
    interactions, items = small
    films = items.loc[items["kind"] == "film", "item_id"]
    counts = interactions["item_id"].value_counts().reindex(films, fill_value=0).sort_values(ascending=False)
    top = counts.iloc[: len(counts) // 10].sum() / counts.sum()
    assert top > 0.3, top  # uniform would be 0.1


def test_next_episode_prefixes(small):
    _, items = small
    nxt = next_entry(items)
    pairs = next_episode_prefixes(items, max_prefix=3)
    series = items["series"].dropna().unique()
    assert len(pairs) > len(series)  # most series give several
    for prefix, target in pairs:
        assert 1 <= len(prefix) <= 3
        assert nxt[prefix[-1]] == target
        assert all(nxt[x] == y for x, y in zip(prefix[:-1], prefix[1:]))  # consecutive, in order
        first = items.set_index("item_id").loc[prefix[0], "position"]
        assert first == 1  # a prefix starts at the series' first entry
    assert next_episode_prefixes(items, max_prefix=1) == [p for p in pairs if len(p[0]) == 1]


def test_example_history(small, default):
    for _, items in (small, default):
        history = example_history(items)
        table = items.set_index("item_id").loc[history]
        assert len(history) == 4 and len(set(history)) == 4
        assert list(table["kind"]) == ["film", "film", "episode", "episode"]
        assert table["genre"].nunique() == 1
        assert list(table["position"].iloc[2:]) == [1, 2]
    assert items.set_index("item_id").loc[example_history(default[1]), "genre"].iloc[0] == "Horror"


def test_default_size(default):
    interactions, items = default
    lengths = interactions.groupby("user_id").size()
    assert 1500 <= len(items) <= 3000
    assert interactions["user_id"].nunique() == 3000
    assert 20 <= lengths.median() <= 60
    assert lengths.min() >= 5 and lengths.max() <= 150
    assert 60_000 <= len(interactions) <= 150_000


def test_write_sample_is_byte_reproducible(tmp_path, default):
    first = write_sample(tmp_path / "a")
    second = write_sample(tmp_path / "b")
    assert [p.name for p in first] == ["interactions.csv.gz", "items.csv"]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
    assert first[0].stat().st_size < 2_000_000
    # what a reader gets back is what generate() returned
    interactions, items = default
    text = gzip.decompress(first[0].read_bytes()).decode()
    assert "\r" not in text and text.startswith("user_id,item_id,timestamp\n")
    back = pd.read_csv(io.StringIO(text), dtype={"user_id": str, "item_id": str})
    pd.testing.assert_frame_equal(back, interactions, check_dtype=False)
    back = pd.read_csv(first[1].parent / "items.csv", dtype={"item_id": str, "title": str})
    back["position"] = back["position"].astype("Int64")
    pd.testing.assert_frame_equal(back, items, check_dtype=False)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), num_series=st.integers(0, 12), num_films=st.integers(0, 40),
       num_franchises=st.integers(0, 4))
def test_any_small_catalog_gives_a_valid_log(seed, num_series, num_films, num_franchises):
    interactions, items = generate(seed, num_users=20, num_series=num_series, num_films=num_films,
                                   num_franchises=num_franchises)
    assert (items["kind"] == "film").sum() == num_films
    assert items["series"].nunique() == num_series + num_franchises
    assert items["item_id"].is_unique and items["title"].is_unique
    assert set(interactions["item_id"]) <= set(items["item_id"])
    assert not interactions.duplicated(["user_id", "item_id"]).any()
    user = interactions["user_id"].to_numpy()
    assert (np.diff(interactions["timestamp"].to_numpy())[user[1:] == user[:-1]] > 0).all()
    assert (interactions.groupby("user_id").size() <= 150).all()


@pytest.fixture(scope="module")
def big():
    return generate_log(60_000, 8_000, seed=5)


@settings(max_examples=25, deadline=None)
@given(num_events=st.integers(3, 3000), num_items=st.integers(2, 500), seed=st.integers(0, 100))
def test_a_log_of_any_size_has_exactly_the_events_asked_for(num_events, num_items, seed):
    interactions, items = generate_log(num_events, num_items, seed)
    assert len(interactions) == num_events and len(items) == num_items
    assert set(interactions["item_id"]) <= set(items["item_id"]) and items["item_id"].is_unique
    assert items["item_id"].min() == 1 and items["item_id"].max() == num_items
    lengths = interactions.groupby("user_id").size()
    assert lengths.min() >= 3
    assert (interactions.groupby("user_id")["timestamp"].diff().dropna() > 0).all(), "time runs forward per user"
    assert interactions["user_id"].is_monotonic_increasing


def test_same_seed_same_log(big):
    again = generate_log(60_000, 8_000, seed=5)
    pd.testing.assert_frame_equal(big[0], again[0])
    pd.testing.assert_frame_equal(big[1], again[1])
    assert not generate_log(60_000, 8_000, seed=6)[0].equals(big[0])


def test_the_planted_chains_are_followed(big):
    interactions, items = big
    successor = next_in_chain(items)
    chains = items.set_index("item_id")["chain"]
    assert all(chains[a] == chains[b] for a, b in list(successor.items())[:500])
    first, then = following(interactions)
    follows = np.array([successor.get(a) == b for a, b in zip(first, then)])
    has_next = np.array([a in successor for a in first])
    # a pick continues its chain about half the time when it can; by chance almost never
    assert 0.35 < follows[has_next].mean() < 0.65
    assert follows.mean() > 50 * (1 / len(items))


def test_tastes_and_popularity_are_skewed(big):
    interactions, items = big
    category = items.set_index("item_id")["category"]
    per_user = interactions.assign(category=category.reindex(interactions["item_id"]).to_numpy())
    top_share = per_user.groupby("user_id")["category"].agg(lambda c: c.value_counts().iloc[0] / len(c))
    assert top_share.median() > 0.3  # of 50 categories, one takes a good part of each user's log
    counts = interactions["item_id"].value_counts()
    assert counts.iloc[: len(counts) // 100].sum() > 0.1 * len(interactions)  # the top 1% of items


def test_make_log_writes_a_folder_that_train_reads(tmp_path):
    from sasrec.dataset import load_dataset

    result = subprocess.run([sys.executable, "-m", "sasrec", "make-log", tmp_path / "log", "--events", "5k", "--items",
                             "1k", "--seed", "3"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    dataset = load_dataset(tmp_path / "log")
    assert dataset.num_events == 5000 and dataset.num_items <= 1000
    assert set(dataset.catalog.columns) >= {"item_id", "title", "category"}
    bad = subprocess.run([sys.executable, "-m", "sasrec", "make-log", tmp_path / "x", "--events", "lots"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "not a count" in bad.stderr and not (tmp_path / "x").exists()
