"""Taking the model apart: heads switched off, counterfactual edits, integrated gradients, and what
a run computes about itself when it finishes (head importance, example customers, agreement)."""

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from sasrec import counterfactual, explain, insights, rundir
from sasrec.analysis import category_codes
from sasrec.evaluate import rank_metrics, rank_targets, sasrec_scorer, validation_users
from sasrec.inference import Recommender
from sasrec.model import SASRec, SASRecConfig
from sasrec.readers import DataError
from sasrec.sequences import holdout
from sasrec.synthetic import next_episode_prefixes
from sasrec.ui import charts


@pytest.fixture(scope="module")
def planted(planted_run):
    """(dataset, items table, run directory) of a model of 2 layers x 2 heads trained on series episodes
    in order, films by genre and franchises; the run wrote its insights when it finished."""
    return planted_run(seed=5, num_blocks=2, num_heads=2)


@pytest.fixture(scope="module")
def recommender(planted):
    return Recommender.from_run(planted[2])


def episodes_and_films(items: pd.DataFrame, count: int = 12) -> list[list[str]]:
    """Histories of two films then the first episodes of a series: the model should ask for the next episode."""
    films = [str(i) for i in items[items["kind"] == "film"]["item_id"]]
    prefixes = [prefix for prefix, _ in next_episode_prefixes(items[items["kind"] == "episode"], max_prefix=4)
                if len(prefix) >= 2]
    return [films[2 * n: 2 * n + 2] + prefix for n, prefix in enumerate(prefixes[:count])]


def random_model(seed: int = 0, **config) -> SASRec:
    torch.manual_seed(seed)
    return SASRec(SASRecConfig(**({"num_items": 40, "maxlen": 12, "hidden": 16, "num_blocks": 2, "num_heads": 4,
                                   "dropout": 0.0} | config))).eval()


def left_padded_batch(seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    rows = [rng.integers(1, 41, size=length) for length in (12, 5, 1, 9)]
    return torch.tensor(np.array([np.r_[np.zeros(12 - len(r), dtype=np.int64), r] for r in rows]))


# Heads switched off

@pytest.mark.parametrize("need_weights", [False, True])  # the fused kernel and the explicit path
@pytest.mark.parametrize("norm", ["paper", "pre"])
def test_a_mask_of_ones_changes_nothing_bit_for_bit(need_weights, norm):
    model = random_model(norm=norm)
    items = left_padded_batch()
    hidden, attention = model(items, need_weights)
    masked_hidden, masked_attention = model(items, need_weights, head_mask=torch.ones(2, 4))
    assert torch.equal(hidden, masked_hidden)
    assert need_weights is False or torch.equal(attention, masked_attention)
    scores = model.score_items(model.last_hidden(items)[0])
    assert torch.equal(scores, model.score_items(model.last_hidden(items, head_mask=torch.ones(2, 4))[0]))


def zero_head_output_weights(model: SASRec, layer: int, heads) -> SASRec:
    """A copy of the model whose attention output projection in `layer` ignores the given heads:
    the columns of its weight that read their outputs are zero."""
    copied = copy.deepcopy(model)
    size = model.config.hidden // model.config.num_heads
    with torch.no_grad():
        for head in heads:
            copied.blocks[layer].attention.out.weight[:, head * size:(head + 1) * size] = 0.0
    return copied


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("layer, heads", [(0, [1]), (1, [3]), (1, [0, 2]), (0, [0, 1, 2, 3])])
def test_a_masked_head_contributes_nothing(need_weights, layer, heads):
    model = random_model(seed=1)
    items = left_padded_batch(1)
    mask = torch.ones(2, 4)
    mask[layer, heads] = 0.0
    masked, masked_attention = model(items, need_weights, head_mask=mask)
    zeroed, zeroed_attention = zero_head_output_weights(model, layer, heads)(items, need_weights)
    torch.testing.assert_close(masked, zeroed, atol=1e-6, rtol=1e-5)
    if need_weights:  # later layers see the change too
        torch.testing.assert_close(masked_attention, zeroed_attention, atol=1e-6, rtol=1e-5)
    assert (masked - model(items)[0]).abs().max() > 1e-3, "switching a head off does change the output"


def test_a_recommender_without_heads_predicts_as_the_masked_model(recommender, planted):
    history = episodes_and_films(planted[1])[0]
    masked = recommender.without_heads([(1, 0), (0, 1)])
    assert recommender.without_heads([]) is recommender
    assert masked.catalog is recommender.catalog and masked.model.model is recommender.model, "nothing is copied"
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    items = torch.as_tensor(recommender.to_internal(history))[None]
    expected = recommender.model.score_items(recommender.model.last_hidden(items, head_mask=mask)[0])[0]
    shown = masked.recommend(history, k=5, exclude_history=False).items
    assert np.allclose(shown["score"], expected[recommender.to_internal(shown["item_id"])].detach().numpy(), atol=1e-5)
    assert not shown["score"].equals(recommender.recommend(history, k=5, exclude_history=False).items["score"])
    # explanations of the masked recommender explain the masked model
    assert explain.removal_effects(masked, history).target["item_id"] == masked.recommend(history, k=1).items["item_id"][0]
    with pytest.raises(DataError, match="no head 3 in layer 1"):
        recommender.without_heads([(0, 2)])


# Integrated gradients

def test_integrated_gradients_add_up_to_the_score_difference(recommender, planted):
    """Completeness: each history's attributions sum to its score minus the baseline's, within 1 %."""
    model = recommender.model
    for history in episodes_and_films(planted[1]):
        explanation = explain.removal_effects(recommender, history, gradients=True)
        target = explanation.target
        rise = target["score"] - target["baseline_score"]
        assert abs(rise) > 1, "the items raise the prediction well above the baseline"
        assert explanation.effects["gradient"].sum() == pytest.approx(rise, rel=0.01)
        # the baseline is the history with every item's embedding at zero, the padding's
        items = torch.as_tensor(recommender.to_internal(history))[None]
        baseline = _score_with_zero_items(model, items, recommender.to_internal([target["item_id"]])[0])
        assert target["baseline_score"] == pytest.approx(baseline, rel=1e-4, abs=1e-4)


def _score_with_zero_items(model, items, goal) -> float:
    hook = model.item_embedding.register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))
    try:
        with torch.no_grad():
            return float(model.score_items(model.last_hidden(items)[0])[0, goal])
    finally:
        hook.remove()


def test_integrated_gradients_match_captum(recommender, planted):
    captum = pytest.importorskip("captum.attr")
    model = recommender.model
    history = episodes_and_films(planted[1])[3]
    items = torch.as_tensor(recommender.to_internal(history))[None]
    goal = int(model.score_items(model.last_hidden(items)[0]).argmax())
    mine, _, _ = explain.integrated_gradients(model, items, torch.tensor([goal]), steps=32)
    ig = captum.LayerIntegratedGradients(lambda x: model.score_items(model.last_hidden(x)[0])[:, goal],
                                         model.item_embedding)
    # Captum interpolates the embedding layer's output between the padding's (zero) and the items', with
    # the positions of the real input, as here. (Its convergence delta is not comparable: it scores the
    # baseline as an all-padding input, whose positions are zero too.)
    theirs = ig.attribute(items, baselines=torch.zeros_like(items), n_steps=32, method="gausslegendre")
    np.testing.assert_allclose(mine[0], theirs.sum(-1)[0].detach().numpy(), rtol=1e-4, atol=1e-5)
    assert np.abs(mine).max() > 0.1


def test_integrated_gradients_of_a_padded_batch_are_those_of_each_history():
    model = random_model(seed=2)
    items = left_padded_batch(2)
    goals = torch.tensor([3, 7, 11, 5])
    batch, scores, baselines = explain.integrated_gradients(model, items, goals)
    for row in range(len(items)):
        alone = items[row][items[row] != 0][None]
        attributions, score, baseline = explain.integrated_gradients(model, alone, goals[row: row + 1])
        np.testing.assert_allclose(batch[row][items[row].numpy() != 0], attributions[0], rtol=1e-4, atol=1e-5)
        assert (batch[row][items[row].numpy() == 0] == 0).all(), "padding gets nothing"
        assert scores[row] == pytest.approx(score[0], rel=1e-5) and baselines[row] == pytest.approx(baseline[0], rel=1e-5)


# Counterfactual search

def test_the_flip_that_is_found_is_real(recommender, planted):
    for history in episodes_and_films(planted[1], count=6):
        found = counterfactual.search(recommender, history, "flip")
        assert found.found and 1 <= len(found.edits) <= counterfactual.MAX_EDITS
        before = recommender.recommend(history, k=1).items.iloc[0]
        after = recommender.recommend(found.edited_ids, k=1).items.iloc[0]  # re-scored as the Playground would
        assert found.before["item_id"] == before["item_id"]
        assert after["item_id"] == found.after["item_id"] != before["item_id"]
        assert after["item_id"] not in set(found.edits["item_id"]), "never an item the edits took out"
        assert found.after["probability"] == pytest.approx(after["probability"], rel=1e-4)
        assert replayed(history, found.edits) == found.edited_ids
        if len(found.edits) > 1:  # fewest edits: no single one would have done
            assert not any(recommender.recommend(single, k=1).items["item_id"][0] not in {before["item_id"], removed}
                           for single, removed in single_edits(history, found))


def replayed(history: list[str], edits: pd.DataFrame) -> list[str]:
    """The history after the edits, applied by hand (positions are the original history's)."""
    slots = [[item] for item in history]
    moved = []
    for edit in edits.itertuples():
        slot = slots[edit.position - 1]
        if edit.kind == "remove":
            slot.clear()
        elif edit.kind == "replace":
            slot[:] = [edit.replacement_id]
        else:
            slot.clear()
            moved.append(edit.item_id)
    return [item for slot in slots for item in slot] + moved


def single_edits(history: list[str], found):
    """Every single removal and move of the history, with the item it takes out (None for a move)."""
    for position, item in enumerate(history):
        rest = history[:position] + history[position + 1:]
        if rest:
            yield rest, item
        yield rest + [item], None


def test_bringing_an_item_into_the_top_k(recommender, planted):
    reached = 0
    histories = episodes_and_films(planted[1], count=12)
    for history in histories:
        outside = recommender.recommend(history, k=15).items["item_id"].iloc[12]
        found = counterfactual.search(recommender, history, "bring", target=outside, k=5)
        assert found.before["rank"] == 13
        top = list(recommender.recommend(found.edited_ids, k=5).items["item_id"])
        assert found.after["rank"] == list(recommender.recommend(found.edited_ids, k=50).items["item_id"]).index(outside) + 1
        assert (outside in top) == found.found
        reached += found.found
    # 5 of 12 with this model (a confident one: its learning rate decays to zero); a search that
    # never edits towards the target would reach none
    assert reached >= len(histories) / 3, "a rank-13 item can often be brought into the top 5 with a few edits"
    inside = recommender.recommend(history, k=5).items["item_id"].iloc[2]
    already = counterfactual.search(recommender, history, "bring", target=inside, k=5)
    assert already.found and not len(already.edits) and already.edited_ids == history
    with pytest.raises(DataError, match="in the history"):
        counterfactual.search(recommender, history, "bring", target=history[0])


def test_a_counterfactual_of_a_history_longer_than_the_model_reads(recommender, planted):
    catalog = [str(i) for i in planted[1]["item_id"]]
    history = catalog[30: 30 + recommender.maxlen + 6]
    found = counterfactual.search(recommender, history, "flip")
    assert found.found
    assert all(position > 6 for position in found.edits["position"]), "only the items the model reads are edited"
    assert recommender.recommend(found.edited_ids, k=1).items["item_id"][0] == found.after["item_id"]
    assert found.edited_ids[:6] == history[:6]


# What a run computes when it finishes

def test_a_finished_run_stores_its_insights(planted, recommender):
    dataset, _, run_dir = planted
    stored = insights.read_insights(run_dir)
    assert stored is not None and json.loads((run_dir / insights.FILE).read_text()) == stored
    assert set(stored) == {"head_importance", "examples", "agreement"}
    run = rundir.Run(run_dir)
    run.clear_outputs()
    assert insights.read_insights(run_dir) is None, "a fresh start forgets them"
    rundir.write_json(run_dir / insights.FILE, stored)


def test_head_importance_is_the_ndcg_lost_without_each_head(planted, recommender):
    dataset = planted[0]
    importance = insights.read_insights(planted[2])["head_importance"]
    model = recommender.model
    split = validation_users(dataset, insights.HEAD_IMPORTANCE_USERS, 0)
    assert importance["users"] == len(split)

    def ndcg(scored_model) -> float:
        ranks = rank_targets(sasrec_scorer(scored_model, dataset.items, split, "cpu"), dataset.items, split)["rank"]
        return rank_metrics(ranks, ks=(10,))["ndcg@10"]

    assert importance["ndcg@10"] == pytest.approx(ndcg(model), abs=1e-9)
    masked = {(row["layer"], row["head"]): row for row in importance["masked"]}
    assert set(masked) == {(layer, head) for layer in (1, 2) for head in (1, 2, None)}
    for (layer, head), row in masked.items():  # the same NDCG from a model whose output weights ignore the heads
        heads = [0, 1] if head is None else [head - 1]
        assert row["ndcg@10"] == pytest.approx(ndcg(zero_head_output_weights(model, layer - 1, heads)), abs=1e-3)
        assert row["drop"] == pytest.approx(importance["ndcg@10"] - row["ndcg@10"])
    assert min(row["drop"] for row in masked.values() if row["head"] is None) > 0, "each whole layer helps"
    table = charts.head_importance_table(importance)
    assert list(table.columns) == ["Head 1", "Head 2", "Whole layer"] and list(table.index) == ["Layer 1", "Layer 2"]


def test_example_customers_are_real_users_with_a_reason(planted):
    dataset, _, run_dir = planted
    examples = insights.read_insights(run_dir)["examples"]
    kinds = [example["kind"] for example in examples]
    assert kinds == ["typical", "loyal", "explorer", "short", "beats_markov"]
    assert len({example["user_id"] for example in examples}) == len(examples), "each user once"
    for example in examples:
        sequence = dataset.item_ids[dataset.sequence(dataset.user_index(example["user_id"]))]
        assert example["history"] + [example["target"]] == [str(i) for i in sequence], "the user's own items"
        assert example["why"] and example["label"]
    by_kind = dict(zip(kinds, examples))
    lengths = np.diff(dataset.offsets) - 1
    assert len(by_kind["short"]["history"]) == max(insights.SHORT, lengths[lengths >= 2].min())
    code, names = category_codes(dataset)
    loyal = code[dataset.to_internal(by_kind["loyal"]["history"][-20:])]
    explorer = code[dataset.to_internal(by_kind["explorer"]["history"][-20:])]
    assert np.bincount(loyal[loyal >= 0]).max() / (loyal >= 0).sum() >= 0.8
    assert len(set(explorer[explorer >= 0])) > len(set(loyal[loyal >= 0]))
    per_user = pd.read_parquet(run_dir / "evaluation" / "per_user.parquet").set_index("user_id")
    gain = 1 / np.log2(per_user["rank"] + 1) - 1 / np.log2(per_user["markov_rank"] + 1)
    chosen = {example["user_id"] for example in examples if example["kind"] != "beats_markov"}
    assert gain[by_kind["beats_markov"]["user_id"]] == pytest.approx(gain.drop(index=list(chosen)).max())


def test_example_customers_without_categories_or_an_evaluation(recommender, planted):
    dataset = planted[0]
    plain = copy.copy(dataset)
    plain.catalog = dataset.catalog.assign(category=None)
    examples = insights.example_customers(recommender.model, plain, None)
    assert [example["kind"] for example in examples] == ["typical", "explorer", "short"]


def test_the_three_way_agreement(recommender, planted):
    dataset = planted[0]
    agreement = explain.agreement_over_validation(recommender.model, dataset, 120)
    rates, pairs = agreement["rates"], agreement["agreement"]
    assert pairs["attention|removal"] == pytest.approx(rates["last_layer"])
    assert pairs["removal|gradient"] == pytest.approx(rates["gradient"])
    assert pairs["all"] <= min(pairs["attention|removal"], pairs["attention|gradient"], pairs["removal|gradient"])
    assert rates["gradient"] > 3 * rates["chance"], "the gradient finds the item that matters far above chance"
    table = charts.three_way_table(agreement)
    assert np.allclose(table.to_numpy(), table.to_numpy().T) and (np.diag(table) == 1).all()
    assert holdout(dataset, "valid").users.size >= agreement["users"]
