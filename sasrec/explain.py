"""Why did the model predict this? Attribution by removal, next to attention.

An attention weight says where a position looks, not what an item does to the prediction:
an item can be looked at and change nothing, or change much through the residual path or
a later layer. The effect of a history item is measured here directly: remove it, let the
model read the history again, and see how the predicted item's score, probability and rank
move. All removals of a history are rows of one batch, so one forward pass scores them all.

The candidates stay the same in every row: the items hidden are those of the whole
history (sequences.hide_seen, as serving and evaluation hide them), so a removed item is
never ranked against the item it was removed for.
"""

import threading
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import sequences
from .analysis import attention_rollout, sample_users
from .readers import DataError

MAX_SCORES = 1 << 24  # scores held at once by the aggregate (64 MB of floats), whatever the catalog size
# Points on the path of integrated gradients (Gauss-Legendre). The integrand jumps wherever a ReLU
# of the feed-forward layers switches, so the sum converges only about as 1/steps: on the demo
# model 64 points put the attributions' sum within 0.5 % of the score difference for most
# histories, 32 within about 1 % (tests/test_intervene.py checks completeness).
GRADIENT_STEPS = 64


def without_each(pools: np.ndarray) -> np.ndarray:
    """Every history of a batch, and each one without one of its items, as the model reads them.

    pools: (B, W+1), each row the last W+1 items of a history, left-padded with 0 (a history
    of at most W items starts with padding). Returns (B, W+1, W): row 0 is the history as
    the model reads it (its last W items); row j >= 1 is the history without pools[:, j],
    which lets the item before the window move in, as it would if a user really removed it.
    """
    width = pools.shape[1] - 1
    t = np.arange(width)
    source = t[None, :] + (t[None, :] >= np.arange(width + 1)[:, None])  # (W+1, W): column t of row j
    return pools[:, source]


def nearest_items(model, items: np.ndarray, excluded: np.ndarray, count: int = 1) -> np.ndarray:
    """For each item, the `count` other items whose embeddings are most similar (cosine), most
    similar first, never one of `excluded`: (n, count)."""
    table = torch.nn.functional.normalize(model.item_embedding.weight.detach(), dim=1)
    similarity = table[torch.as_tensor(items)] @ table.T  # (n, N+1)
    similarity[:, 0] = float("-inf")
    similarity[:, torch.as_tensor(excluded)] = float("-inf")
    similarity[torch.arange(len(items)), torch.as_tensor(items)] = float("-inf")
    return similarity.topk(count, dim=1).indices.numpy()


def ranks_of(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each row's target among its scores (ties counted in its favour). scores (R, N+1), targets (R,)."""
    return (scores > scores.gather(1, targets[:, None])).sum(1) + 1


def _scores(model, rows: np.ndarray, hidden_items: torch.Tensor) -> torch.Tensor:
    """Scores of every item after each row of histories, (R, N+1), with `hidden_items` hidden in every row."""
    scores = model.score_items(model.last_hidden(torch.as_tensor(rows))[0])
    return sequences.hide_seen(scores, hidden_items[None].expand(len(rows), -1))


def _target(scores: torch.Tensor, goal: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(probability, score, rank) of item `goal` in each row of scores."""
    goals = torch.full((len(scores),), goal)
    probabilities = scores.log_softmax(1)[:, goal].exp()
    return probabilities, scores[:, goal], ranks_of(scores, goals)


def integrated_gradients(model, windows: torch.Tensor, goals: torch.Tensor, steps: int = GRADIENT_STEPS):
    """Integrated gradients (Sundararajan et al., ICML 2017) of each row's score for its goal item
    with respect to the input item embeddings, summed over the embedding dimensions: one
    attribution per history item. The baseline replaces every item's embedding by the padding
    embedding (zero) and keeps the positions; the path integral is a Gauss-Legendre sum over
    `steps` points, and every point of every row is one row of a single batch.

    windows: (B, T) left-padded item ids; goals: (B,). Returns numpy arrays: attributions (B, T),
    zero at padding; scores (B,); baseline scores (B,). By completeness a row's attributions sum
    to its score minus its baseline score, up to the quadrature error.
    """
    nodes, node_weights = np.polynomial.legendre.leggauss(steps)
    alphas = torch.tensor(np.r_[0.0, (nodes + 1) / 2, 1.0], dtype=torch.float32)  # the baseline, the path, the input
    node_weights = torch.tensor(node_weights / 2, dtype=torch.float32)
    B, T = windows.shape
    A = len(alphas)
    owner, path = threading.get_ident(), {}

    def along_the_path(module, inputs, output):
        if threading.get_ident() != owner:  # the app's sessions share a model: leave their forward passes alone
            return None
        path["items"], path["embedding"] = inputs[0], output.detach()
        path["point"] = (output.detach() * alphas.repeat(B).to(output)[:, None, None]).requires_grad_()
        return path["point"]

    hook = model.item_embedding.register_forward_hook(along_the_path)
    try:
        with torch.enable_grad():
            last, _ = model.last_hidden(windows.repeat_interleave(A, 0))
            # the goal's score alone: the dot product model.score_items takes with every item
            scores = (last * model.item_embedding.weight.detach()[goals.repeat_interleave(A)]).sum(-1)
            gradients, = torch.autograd.grad(scores.sum(), path["point"])
    finally:
        hook.remove()
    average = (node_weights.to(gradients)[None, :, None, None] * gradients.view(B, A, T, -1)[:, 1:-1]).sum(1)  # (B, T, d)
    in_model_order = (path["embedding"].view(B, A, T, -1)[:, -1] * average).sum(-1)  # (B, T)
    # The model may reorder a row's positions (it rolls the padding to the end) but keeps its items
    # in order, so the k-th item it embedded is the k-th item of the row.
    attributions = torch.zeros(B, T)
    attributions[windows.cpu() != 0] = in_model_order[path["items"].view(B, A, T)[:, -1] != 0].cpu()
    scores = scores.detach().view(B, A).cpu()
    return attributions.numpy(), scores[:, -1].numpy(), scores[:, 0].numpy()


@dataclass
class Explanation:
    target: dict  # item_id, title, category, rank, score, probability: the explained prediction, as predicted
    effects: pd.DataFrame  # one row per item the model read, oldest first (see removal_effects)
    seconds: float  # from ids in to table out


@torch.no_grad()
def removal_effects(recommender, history, target: str | None = None, exclude_history: bool = True,
                    replace: bool = False, gradients: bool = False) -> Explanation:
    """The effect of each history item on the prediction of `target` (default: the top item).

    Columns of `effects`: position, item_id, title, category (the item removed);
    score_change, probability_change, rank_without and rank_change (the target's, once the
    item is removed: negative changes of score and probability and a positive rank change
    mean that the item supported the prediction); top_item_id and top_title (what would
    come first without it). With `replace`, the same for replacing the item by its most
    similar other item (by embedding; never an item of the history nor the explained item),
    in a second pass: replacement_item_id,
    replacement_title, replacement_probability_change, replacement_rank_change. With
    `gradients`, each item's integrated gradient of the target's score (`gradient`, see
    integrated_gradients), and in `target` the baseline's score (`baseline_score`).
    """
    started = time.perf_counter()
    model, maxlen = recommender.model, recommender.maxlen
    seen = recommender.to_internal(list(history))
    if len(seen) == 0:
        raise DataError("the history is empty: add at least one item")
    window = seen[-maxlen:]
    pools = sequences.left_padded(seen, np.array([max(0, len(seen) - maxlen - 1)]), np.array([len(seen)]),
                                  len(window) + 1)
    rows = without_each(pools)[0]  # (T+1, T)
    hidden_items = torch.as_tensor(seen if exclude_history else np.zeros(1, dtype=np.int64))
    scores = _scores(model, rows, hidden_items)  # (T+1, N+1)
    if target is None:
        goal = int(scores[0].argmax())
    else:
        goal = int(recommender.to_internal([target])[0])
        if not torch.isfinite(scores[0, goal]):
            raise DataError(f"{target} is in the history, and items of the history are hidden from the predictions")
    probabilities, target_scores, ranks = _target(scores, goal)
    tops = scores.argmax(1).numpy()

    effects = recommender.describe(window)
    effects["score_change"] = (target_scores[1:] - target_scores[0]).numpy()
    effects["probability_change"] = (probabilities[1:] - probabilities[0]).numpy()
    effects["rank_without"] = ranks[1:].numpy()
    effects["rank_change"] = (ranks[1:] - ranks[0]).numpy()
    effects["top_item_id"] = recommender.catalog.loc[tops[1:], "item_id"].to_numpy()
    effects["top_title"] = recommender.catalog.loc[tops[1:], "title"].to_numpy()
    if replace:  # a second pass: the substitute is never the explained item, which the first pass found
        substitutes = nearest_items(model, window, np.append(seen, goal))[:, 0]
        replaced = np.repeat(window[None], len(window), axis=0)
        replaced[np.arange(len(window)), np.arange(len(window))] = substitutes
        replaced_probabilities, _, replaced_ranks = _target(_scores(model, replaced, hidden_items), goal)
        effects["replacement_item_id"] = recommender.catalog.loc[substitutes, "item_id"].to_numpy()
        effects["replacement_title"] = recommender.catalog.loc[substitutes, "title"].to_numpy()
        effects["replacement_probability_change"] = (replaced_probabilities - probabilities[0]).numpy()
        effects["replacement_rank_change"] = (replaced_ranks - ranks[0]).numpy()
    row = recommender.catalog.loc[goal]
    explained = {"item_id": row["item_id"], "title": row["title"], "category": row["category"],
                 "rank": int(ranks[0]), "score": float(target_scores[0]), "probability": float(probabilities[0])}
    if gradients:
        attributions, _, baseline = integrated_gradients(model, torch.as_tensor(window)[None], torch.tensor([goal]))
        effects["gradient"] = attributions[0]
        explained["baseline_score"] = float(baseline[0])
    return Explanation(explained, effects, time.perf_counter() - started)


# Across many users: does the item attention weighs most matter most? And the gradient?

SIGNALS = {"last_layer": "Largest attention, last layer",  # from the predicting position, heads averaged
           "rollout": "Largest rollout",
           "gradient": "Largest integrated gradient",
           "most_recent": "The most recent item",
           "chance": "A random item (chance)"}
# The three ways of naming the item a prediction rests on, compared pairwise in "agreement".
METHODS = {"attention": "Attention (last layer)", "removal": "Removal", "gradient": "Gradient (IG)"}
GRADIENT_FLOATS = 1 << 26  # activations the integrated gradients of the aggregate keep at once (256 MB)


def _largest_gradients(model, windows: torch.Tensor, goals: torch.Tensor, steps: int) -> np.ndarray:
    """The position of each row's largest integrated gradient, in batches of rows whose activations fit GRADIENT_FLOATS."""
    config, width = model.config, windows.shape[1]
    per_row = (steps + 2) * width * config.num_blocks * (14 * config.hidden + config.num_heads * width)
    per_batch = max(1, GRADIENT_FLOATS // per_row)
    largest = []
    for lo in range(0, len(windows), per_batch):
        attributions, _, _ = integrated_gradients(model, windows[lo: lo + per_batch], goals[lo: lo + per_batch], steps)
        largest.append(np.where(windows[lo: lo + per_batch].numpy() != 0, attributions, -np.inf).argmax(1))
    return np.concatenate(largest)


# The most recent items of each history the agreement judges: removing each of W items costs W
# forward passes of W positions, so 200-item histories (ml-100k) cost 16 times 50-item ones.
AGREEMENT_WIDTH = 50


@torch.no_grad()
def attention_effect_agreement(model, dataset, users: np.ndarray, steps: int = GRADIENT_STEPS // 2) -> dict:
    """How often the item that attention points to is the one whose removal lowers the top
    prediction's probability most, over these users' validation histories (rows of the
    validation split, as analysis.sample_users draws them; their AGREEMENT_WIDTH most recent
    items); and how often attention, removal and integrated gradients (of the top prediction's score, `steps` points) name the same item.

    Returns {"users": n, "rates": {signal: share of users}, "agreement": {pair: share of users}}.
    The rates are for the signals of SIGNALS: the last layer's attention from the predicting
    position, the rollout through all layers, the largest integrated gradient, and two
    baselines, always the most recent item and an item drawn at random (the mean of 1 / history
    length). The agreement is for each pair of METHODS ("attention|removal", ...) and for all
    three at once ("all"). Histories of a single item are left out: there is nothing to choose.
    """
    model.eval()
    split = sequences.holdout(dataset, "valid")
    longest = min(model.config.maxlen, AGREEMENT_WIDTH)
    lengths = np.minimum(split.ends[users] - split.starts[users], longest)
    users = users[lengths >= 2][np.argsort(lengths[lengths >= 2], kind="stable")]  # similar lengths batch together
    hits = {name: 0.0 for name in SIGNALS}
    pairs = [f"{a}|{b}" for i, a in enumerate(METHODS) for b in list(METHODS)[i + 1:]]
    agreeing = dict.fromkeys([*pairs, "all"], 0.0)
    per_chunk = max(1, MAX_SCORES // ((model.config.maxlen + 1) * (model.config.num_items + 1)))
    for lo in range(0, len(users), per_chunk):
        rows = users[lo: lo + per_chunk]
        width = int(min(longest, (split.ends[rows] - split.starts[rows]).max()))
        starts, ends = split.starts[rows], split.ends[rows]
        pools = sequences.left_padded(dataset.items, np.maximum(starts, ends - width - 1), ends, width + 1)
        seen = torch.as_tensor(sequences.left_padded(dataset.items, starts, ends, int((ends - starts).max()))).long()
        variants = torch.as_tensor(without_each(pools)).long()  # (b, W+1, W)
        b = len(rows)
        scores = model.score_items(model.last_hidden(variants.flatten(0, 1))[0]).view(b, width + 1, -1)
        sequences.hide_seen(scores.flatten(0, 1), seen.repeat_interleave(width + 1, dim=0))
        top = scores[:, 0].argmax(1)  # (b,)
        log_probabilities = scores.log_softmax(-1).gather(2, top[:, None, None].expand(b, width + 1, 1))[..., 0]
        drop = log_probabilities[:, :1] - log_probabilities[:, 1:]  # (b, W): the same order as the probability drop
        real = torch.as_tensor(pools[:, 1:] != 0)
        most_effective = drop.masked_fill(~real, float("-inf")).argmax(1).numpy()

        windows = torch.as_tensor(pools[:, 1:]).long()
        _, attention = model(windows, need_weights=True)  # (b, L, H, W, W)
        attention = attention.numpy()
        last_layer = attention[:, -1, :, -1, :].mean(1).argmax(1)
        rollout = np.array([attention_rollout(a)[-1].argmax() for a in attention])
        largest_gradient = _largest_gradients(model, windows, top, steps)
        hits["last_layer"] += float((last_layer == most_effective).sum())
        hits["rollout"] += float((rollout == most_effective).sum())
        hits["gradient"] += float((largest_gradient == most_effective).sum())
        hits["most_recent"] += float((most_effective == width - 1).sum())
        hits["chance"] += float((1 / real.sum(1).numpy()).sum())
        named = {"attention": last_layer, "removal": most_effective, "gradient": largest_gradient}
        for pair in pairs:
            first, second = pair.split("|")
            agreeing[pair] += float((named[first] == named[second]).sum())
        agreeing["all"] += float(((last_layer == most_effective) & (largest_gradient == most_effective)).sum())
    n = max(len(users), 1)
    return {"users": len(users), "rates": {name: hit / n for name, hit in hits.items()},
            "agreement": {pair: hit / n for pair, hit in agreeing.items()}}


def agreement_over_validation(model, dataset, num_users: int = 500, seed: int = 0) -> dict:
    """attention_effect_agreement over up to num_users validation users drawn as analysis.sample_users draws them."""
    return attention_effect_agreement(model, dataset, sample_users(dataset, num_users, seed))
