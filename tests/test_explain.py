"""Why this prediction: removal effects, their agreement with attention, and the snapshots that
show a model learning."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sasrec import explain, rundir
from sasrec.analysis import sample_users
from sasrec.inference import Recommender
from sasrec.model import SASRec, SASRecConfig
from sasrec.readers import DataError
from sasrec.sequences import holdout
from sasrec.synthetic import next_episode_prefixes
from sasrec.ui.charts import NOT_IN_OTHER, checkpoint_labels, overlap_sentence, side_by_side

EPOCHS = 8


@pytest.fixture(scope="module")
def planted(planted_run):
    """(dataset, items table, run directory) of a small model trained on series episodes in order."""
    return planted_run(seed=3, epochs=EPOCHS)


@pytest.fixture(scope="module")
def recommender(planted):
    return Recommender.from_run(planted[2])


def catalog_of(num_items: int) -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"i{i}" for i in range(1, num_items + 1)],
                         "title": [f"Item {i}" for i in range(1, num_items + 1)], "category": "c"},
                        index=pd.RangeIndex(1, num_items + 1))


# The batch of removals

@settings(max_examples=60, deadline=None)
@given(history=st.lists(st.integers(1, 50), min_size=1, max_size=12), maxlen=st.integers(1, 8))
def test_each_row_is_the_history_without_one_item(history, maxlen):
    pool = history[-(maxlen + 1):]
    window = history[-maxlen:]
    width = len(window)
    pools = np.array([[0] * (width + 1 - len(pool)) + pool])
    rows = explain.without_each(pools)[0]
    assert rows.shape == (width + 1, width)
    assert list(rows[0][rows[0] != 0]) == window, "row 0 is what the model reads"
    for j in range(1, width + 1):  # without the item at pool column j: the model reads the last `width` of the rest
        rest = [item for k, item in enumerate(pools[0]) if k != j and item != 0]
        assert list(rows[j][rows[j] != 0]) == rest[-width:]
        assert (rows[j][: width - len(rest[-width:])] == 0).all(), "left-padded"


def test_the_unchanged_history_is_the_prediction_shown(recommender, planted):
    history = [str(i) for i in planted[1]["item_id"][:6]]
    shown = recommender.recommend(history, k=5).items
    explained = explain.removal_effects(recommender, history)
    assert explained.target["item_id"] == shown["item_id"][0] and explained.target["rank"] == 1
    assert explained.target["probability"] == pytest.approx(shown["probability"][0], rel=1e-4)
    third = explain.removal_effects(recommender, history, target=shown["item_id"][2])
    assert third.target["rank"] == 3 and third.target["score"] == pytest.approx(shown["score"][2], rel=1e-4)
    assert list(explained.effects["item_id"]) == history and list(explained.effects["position"]) == [1, 2, 3, 4, 5, 6]


def test_a_removal_is_scored_as_the_history_without_the_item(recommender, planted):
    """A history longer than maxlen: removing an item lets the one before the window move in, and the
    target's score is exactly that of the shorter history."""
    catalog = [str(i) for i in planted[1]["item_id"]]
    history = catalog[100: 100 + recommender.maxlen + 5]
    explained = explain.removal_effects(recommender, history, exclude_history=False)
    assert len(explained.effects) == recommender.maxlen
    target = explained.target["item_id"]
    everything = len(recommender.catalog)
    for j in (0, 7, recommender.maxlen - 1):
        position = len(history) - recommender.maxlen + j
        without = history[:position] + history[position + 1:]
        items = recommender.recommend(without, k=everything, exclude_history=False).items.set_index("item_id")
        expected = items.at[target, "score"] - explained.target["score"]
        assert explained.effects["score_change"][j] == pytest.approx(expected, abs=1e-4)
        assert explained.effects["rank_without"][j] == items.at[target, "rank"]


def test_removing_the_previous_episode_changes_the_next_episode_prediction_most(recommender, planted):
    _, items, _ = planted
    films = [str(i) for i in items[items["kind"] == "film"]["item_id"][:30]]
    cases = [(films[2 * n % 28: 2 * n % 28 + 2] + prefix, nxt) for n, (prefix, nxt)
             in enumerate(next_episode_prefixes(items[items["kind"] == "episode"], max_prefix=3)) if len(prefix) >= 2]
    assert len(cases) >= 10
    strongest = []
    for history, next_episode in cases:
        effects = explain.removal_effects(recommender, history, target=next_episode).effects
        strongest.append(effects["item_id"][effects["probability_change"].idxmin()] == history[-1])
        assert effects["rank_change"].iloc[-1] >= 0, "without the previous episode the next one never rises"
    assert np.mean(strongest) >= 0.9, f"the previous episode mattered most in {sum(strongest)} of {len(cases)}"


def ignoring_model(ignored: int, num_items: int = 12) -> SASRec:
    """One block whose attention scores are the first input dimension: 0 for every item but `ignored`,
    whose very negative value gives it a weight of about exp(-70). Positions are zeroed, so that a
    removal shifts nothing else."""
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=num_items, maxlen=10, hidden=8, num_blocks=1, num_heads=1, dropout=0.0))
    attention = model.blocks[0].attention
    with torch.no_grad():
        model.position_embedding.weight.zero_()
        model.item_embedding.weight[:, 0] = 0.0
        model.item_embedding.weight[ignored, 0] = -200 / np.sqrt(8)  # x = embedding * sqrt(d)
        attention.query.weight.zero_()
        attention.query.bias.zero_()
        attention.query.bias[0] = 1.0
        attention.key_value.weight[:8].zero_()
        attention.key_value.bias[:8].zero_()
        attention.key_value.weight[0, 0] = 1.0
    return model.eval()


def test_an_item_attention_ignores_has_almost_no_effect():
    recommender = Recommender(ignoring_model(ignored=3), catalog_of(12))
    history = ["i5", "i3", "i7", "i9"]
    result = recommender.recommend(history, k=1)
    last_position = result.attention[0, :, -1].mean(0)
    assert last_position[1] < 1e-20 and np.allclose(last_position[[0, 2, 3]], 1 / 3, atol=1e-6)
    effects = explain.removal_effects(recommender, history).effects.set_index("item_id")
    assert abs(effects.at["i3", "score_change"]) < 1e-5 and abs(effects.at["i3", "probability_change"]) < 1e-6
    assert effects.at["i3", "rank_change"] == 0
    assert effects.drop(index=["i3", "i9"])["score_change"].abs().max() > 1e-2, "attended items do change it"


def test_replacement_takes_a_similar_item_outside_the_history(recommender, planted):
    history = [str(i) for i in planted[1]["item_id"][:5]]
    explained = explain.removal_effects(recommender, history, replace=True)
    replacements = set(explained.effects["replacement_item_id"])
    assert not replacements & (set(history) | {explained.target["item_id"]})
    assert explained.effects["replacement_probability_change"].notna().all()
    table = recommender.model.item_embedding.weight.detach()
    first = recommender.to_internal([history[0], explained.effects["replacement_item_id"][0]])
    similarity = torch.nn.functional.cosine_similarity(table[first[0]][None], table[1:]).numpy()
    assert similarity[first[1] - 1] >= np.sort(similarity)[-(len(history) + 2)], "among the most similar"


def test_unusable_targets_are_readable_errors(recommender, planted):
    history = [str(i) for i in planted[1]["item_id"][:3]]
    with pytest.raises(DataError, match="in the history"):
        explain.removal_effects(recommender, history, target=history[0])
    with pytest.raises(DataError, match="unknown item"):
        explain.removal_effects(recommender, history, target="no-such-item")
    with pytest.raises(DataError, match="empty"):
        explain.removal_effects(recommender, [])


# Across validation users

def test_agreement_rates_against_the_baselines(recommender, planted):
    dataset = planted[0]
    users = sample_users(dataset, 120)
    agreement = explain.attention_effect_agreement(recommender.model, dataset, users)
    split = holdout(dataset, "valid")
    lengths = np.minimum(split.ends[users] - split.starts[users], recommender.maxlen)
    assert agreement["users"] == (lengths >= 2).sum()
    rates = agreement["rates"]
    assert set(rates) == set(explain.SIGNALS) and all(0 <= rate <= 1 for rate in rates.values())
    assert rates["chance"] == pytest.approx(np.mean(1 / lengths[lengths >= 2]))
    # on series in order, the previous item matters most, and the rollout finds it
    assert rates["most_recent"] > 3 * rates["chance"] and rates["rollout"] > 3 * rates["chance"]


# Snapshots: the model at log-spaced epochs

def test_training_keeps_snapshots_at_log_spaced_epochs(planted, recommender):
    run = rundir.Run(planted[2])
    assert run.snapshots() == [1, 2, 4, 8]
    history = [str(i) for i in planted[1]["item_id"][:4]]
    first = Recommender.from_run(run.path, "epoch-0001").recommend(history, k=10).items
    best = recommender.recommend(history, k=10).items
    assert not first["probability"].equals(best["probability"]), "epoch 1 is another model"
    for name in ("epoch-0003", "epoch-9999", "../best", "epoch-1/../../best", "epoch-²"):
        with pytest.raises(rundir.RunError, match="has no (snapshot|checkpoint)"):
            run.checkpoint(name)
    assert run.checkpoint("epoch-4") == run.path / "snapshots" / "epoch-0004.safetensors"


def test_snapshots_stay_within_their_budget(monkeypatch, tmp_path):
    model = SASRec(SASRecConfig(num_items=50, maxlen=10, hidden=16))
    size = sum(v.numel() * 4 for v in model.state_dict().values())
    monkeypatch.setattr(rundir, "SNAPSHOT_BUDGET_BYTES", int(2.5 * size))
    written = [rundir.save_snapshot(tmp_path, model, epoch) for epoch in (1, 2, 4)]
    assert written[2] is None and all(written[:2])
    assert rundir.Run(tmp_path).snapshots() == [1, 2]
    assert sum(p.stat().st_size for p in (tmp_path / "snapshots").iterdir()) <= rundir.SNAPSHOT_BUDGET_BYTES
    rundir.Run(tmp_path).clear_outputs()
    assert rundir.Run(tmp_path).snapshots() == [], "a fresh start forgets the old run's snapshots"


def test_snapshot_epochs_are_powers_of_two():
    assert [e for e in range(0, 70) if rundir.is_snapshot_epoch(e)] == [1, 2, 4, 8, 16, 32, 64]


@pytest.mark.parametrize("snapshots, metrics, running, expected", [
    ([1, 2, 4, 8], [{"epoch": e, "valid_ndcg@10": v} for e, v in [(2, 0.1), (4, 0.3), (6, 0.2), (8, 0.3)]], False,
     {"epoch-0001": "epoch 1", "epoch-0002": "epoch 2", "": "best: epoch 4", "epoch-0008": "epoch 8"}),
    ([1, 2, 4], [{"epoch": e} for e in range(1, 6)], True,
     {"epoch-0001": "epoch 1", "epoch-0002": "epoch 2", "epoch-0004": "epoch 4", "": "latest: epoch 5"}),
    ([], [], False, {"": "best"}),
])
def test_the_slider_offers_each_epoch_once_in_order(snapshots, metrics, running, expected):
    labels = checkpoint_labels(snapshots, metrics, running)
    assert labels == expected and list(labels) == list(expected)


def test_side_by_side_marks_the_items_one_list_lacks():
    def top(ids):
        return pd.DataFrame({"rank": range(1, len(ids) + 1), "item_id": ids, "title": [f"T{i}" for i in ids],
                             "probability": np.linspace(0.5, 0.1, len(ids))})

    first, second = top(["a", "b", "c", "d"]), top(["c", "a", "x", "y"])
    left, right, shared = side_by_side(first, second)
    assert shared == 2
    assert list(left["other rank"]) == ["2", NOT_IN_OTHER, "1", NOT_IN_OTHER]
    assert list(right["other rank"]) == ["3", "1", NOT_IN_OTHER, NOT_IN_OTHER]
    assert overlap_sentence(shared, first, second) == ("The two top-4 lists share 2 of 4 items (50%); a different "
                                                       "item comes first.")
