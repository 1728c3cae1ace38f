"""What the Playground and the Attention page show about a run as a whole, computed once when
training ends (report.write_evaluation calls write_insights) and then only read:

    insights.json
      head_importance  validation NDCG@10 with each attention head, and each whole layer, switched off
      examples         dataset users worth showing, each with a line on why
      agreement        attention, removal and integrated gradients compared over validation users

A run from before this file existed gets it the first time the app needs it (ui/caches.py).
"""

import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import analysis, explain, rundir, sequences
from .evaluate import rank_metrics, rank_targets, users_per_batch, validation_users

FILE = "insights.json"
HEAD_IMPORTANCE_USERS = 1_000  # a fixed sample of validation users, the same for every mask
AGREEMENT_USERS = 300
EXAMPLE_USERS = 5_000  # users the examples are drawn from (all but the Markov one), a fixed sample of a bigger log
PROBE_EVERY = 10  # the agreement's time is taken on every 10th of its users (expected_seconds)
LONG_ENOUGH = 5  # history items an example needs to show a pattern (all but the short one)
SHORT = 3  # the short history's items


def ranked_users(config, users: int) -> int:
    """Users head_importance ranks every item for, for a model of this ModelConfig on a log of
    `users` users, and those example_customers reads (each costs less than a ranking)."""
    return (min(HEAD_IMPORTANCE_USERS, users) * (1 + config.num_blocks * (config.num_heads + 1))
            + min(EXAMPLE_USERS, users))


def expected_seconds(model, dataset) -> float:
    """What write_insights spends beyond ranked_users: the agreement's removals and integrated
    gradients. Their cost depends on history lengths, the model and the machine, not the weights,
    so it is timed, on every PROBE_EVERY-th of the agreement's users in order of length (a copy
    of the model, on the CPU as write_insights runs it), and scaled up."""
    split = sequences.holdout(dataset, "valid")
    users = analysis.sample_users(dataset, AGREEMENT_USERS)
    probed = users[np.argsort(split.ends[users] - split.starts[users], kind="stable")][PROBE_EVERY // 2::PROBE_EVERY]
    probe = copy.deepcopy(model).cpu()
    started = time.perf_counter()
    explain.attention_effect_agreement(probe, dataset, probed)
    return (time.perf_counter() - started) * len(users) / max(len(probed), 1)


def write_insights(run_dir, model, dataset) -> dict:
    """Compute everything above for `model` (the run's best weights) and write it into the run."""
    run_dir = Path(run_dir)
    try:
        per_user = pd.read_parquet(run_dir / "evaluation" / "per_user.parquet")
    except (OSError, ValueError):
        per_user = None
    found = compute(model, dataset, per_user)
    rundir.write_json(run_dir / FILE, found)
    return found


def read_insights(run_dir) -> dict | None:
    """What write_insights wrote, or None if the run has not written it (yet)."""
    found = rundir.read_json(Path(run_dir) / FILE)
    return found if isinstance(found, dict) and {"head_importance", "examples", "agreement"} <= set(found) else None


def compute(model, dataset, per_user: pd.DataFrame | None) -> dict:
    model = model.cpu().eval()
    return {"head_importance": head_importance(model, dataset),
            "examples": example_customers(model, dataset, per_user),
            "agreement": explain.agreement_over_validation(model, dataset, AGREEMENT_USERS)}


# Head importance

@torch.no_grad()
def head_importance(model, dataset, num_users: int = HEAD_IMPORTANCE_USERS, seed: int = 0) -> dict:
    """Validation NDCG@10 (full ranking, history hidden) of the model as it is and with each head,
    then each whole layer, switched off, over one fixed sample of validation users.

    Returns {"users", "ndcg@10", "masked": [{"layer", "head" (None: the whole layer), "ndcg@10",
    "drop"}, ...]} with layers and heads 1-based; drop is the loss of NDCG@10 (negative: the
    model does better without it).
    """
    split = validation_users(dataset, num_users, seed)
    config = model.config

    def ndcg(head_mask) -> float:
        def score(rows):
            history = sequences.model_inputs(dataset.items, split.starts[rows], split.ends[rows], config.maxlen)
            return model.score_items(model.last_hidden(torch.as_tensor(history).long(), head_mask=head_mask)[0])

        ranks = rank_targets(score, dataset.items, split, batch_size=users_per_batch(dataset.num_items))["rank"]
        return rank_metrics(ranks, ks=(10,))["ndcg@10"]

    full = ndcg(None)
    masked = []
    for layer in range(config.num_blocks):
        for head in [*range(config.num_heads), None]:
            mask = torch.ones(config.num_blocks, config.num_heads)
            mask[layer, slice(None) if head is None else head] = 0.0
            value = ndcg(mask)
            masked.append({"layer": layer + 1, "head": None if head is None else head + 1, "ndcg@10": value,
                           "drop": full - value})
    return {"users": len(split), "ndcg@10": full, "masked": masked}


# Example customers

def _ndcg(ranks) -> np.ndarray:
    return 1 / np.log2(np.asarray(ranks, dtype=np.float64) + 1)


@torch.no_grad()
def _user_vectors(model, dataset, split, batch_size: int = 256) -> np.ndarray:
    """The model's representation of each user of the split: the last hidden state after their history, (n, d)."""
    vectors = []
    for lo in range(0, len(split), batch_size):
        rows = np.arange(lo, min(lo + batch_size, len(split)))
        history = sequences.model_inputs(dataset.items, split.starts[rows], split.ends[rows], model.config.maxlen)
        vectors.append(model.last_hidden(torch.as_tensor(history).long())[0].numpy())
    return np.concatenate(vectors) if vectors else np.zeros((0, model.config.hidden))


def example_customers(model, dataset, per_user: pd.DataFrame | None, seed: int = 0) -> list[dict]:
    """A few real users of the dataset worth showing, each once: a typical one (nearest the centre
    of the model's user representations), a loyal fan of one category (when the catalog has
    categories), an explorer, a short history of SHORT items and the user where the model beats
    the Markov baseline by most on the test item (from per_user, the evaluation's table).

    Each is {"kind", "label", "user_id", "history" (original item ids, oldest first, without the
    last), "target" (the last item, held out as in the Playground), "why"}. The history and the
    target are the test split's, the same as the Playground shows for a dataset user.
    """
    split = sequences.holdout(dataset, "test")
    if not len(split):
        return []
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(split), size=min(EXAMPLE_USERS, len(split)), replace=False))
    lengths = split.ends - split.starts
    window_starts = np.maximum(split.starts, split.ends - model.config.maxlen)
    chosen, examples = set(), []

    def add(kind: str, label: str, row: int, why: str) -> None:
        chosen.add(int(row))
        history = dataset.item_ids[dataset.items[split.starts[row]: split.ends[row]]]
        examples.append({"kind": kind, "label": label, "user_id": str(dataset.user_ids[split.users[row]]),
                         "history": [str(i) for i in history], "target": str(dataset.item_ids[split.targets[row]]),
                         "why": why})

    def best(rows: np.ndarray, *keys: np.ndarray) -> int | None:
        """The row of `rows` not chosen yet that sorts first by keys (the first key most significant, ascending)."""
        free = np.array([row not in chosen for row in rows], dtype=bool)
        if not free.any():
            return None
        order = np.lexsort(tuple(key[free] for key in reversed(keys)))
        return int(rows[free][order[0]])

    long_enough = sample[lengths[sample] >= LONG_ENOUGH]
    if len(long_enough):
        vectors = _user_vectors(model, dataset, split.subset(long_enough))
        distance = np.linalg.norm(vectors - vectors.mean(0), axis=1)
        row = best(long_enough, distance)
        add("typical", "Typical", row,
            f"Their {lengths[row]} items put the model's picture of them nearest the middle of {len(long_enough):,} "
            "users': an ordinary customer, as the model sees it.")

    code, names = analysis.category_codes(dataset)
    read = np.minimum(lengths, model.config.maxlen)

    def items_read(row) -> str:
        """'23 items', or 'last 50 items' when the history is longer than what the model reads."""
        return f"{read[row]} items" if read[row] == lengths[row] else f"last {read[row]} items"

    # the items each of these users' windows holds, flat, with the window they belong to
    positions = sequences.positions(window_starts[long_enough], split.ends[long_enough])
    window_of = np.repeat(np.arange(len(long_enough)), read[long_enough])
    if names and len(long_enough):
        codes = code[dataset.items[positions]]
        counts = np.zeros((len(long_enough), len(names)), dtype=np.int64)
        np.add.at(counts, (window_of[codes >= 0], codes[codes >= 0]), 1)
        size = counts.sum(1)
        share = counts.max(1) / np.maximum(size, 1)
        keep = size >= LONG_ENOUGH
        row = best(long_enough[keep], -share[keep], -size[keep]) if keep.any() else None
        if row is not None:
            at = np.searchsorted(long_enough, row)
            how_many = "All" if counts[at].max() == read[row] else f"{counts[at].max()} of the"
            add("loyal", "Loyal fan", row, f"{how_many} {items_read(row)} are {names[counts[at].argmax()]}: "
                                           "the model should stay in that category.")
        distinct = (counts > 0).sum(1)
        shares = counts / np.maximum(size, 1)[:, None]
        entropy = -(shares * np.log(np.where(shares > 0, shares, 1))).sum(1)
        row = best(long_enough, -distinct, -entropy)
        if row is not None:
            at = np.searchsorted(long_enough, row)
            add("explorer", "Explorer", row, f"{distinct[at]} categories in {items_read(row)}: no single taste to follow.")
    elif len(long_enough):
        table = torch.nn.functional.normalize(model.item_embedding.weight.detach(), dim=1).numpy()
        first_of_window = np.r_[0, np.cumsum(read[long_enough])[:-1]]
        centres = np.add.reduceat(table[dataset.items[positions]], first_of_window) / read[long_enough][:, None]
        spread = 1 - np.linalg.norm(centres, axis=1)  # 0: every item the same direction
        row = best(long_enough, -spread)
        if row is not None:
            add("explorer", "Explorer", row, f"Their {items_read(row)} lie further apart in the model's item space than "
                                             "any other user's: no single taste to follow.")

    ranks = None
    if per_user is not None and {"user_id", "rank", "markov_rank"} <= set(per_user.columns):
        ranked = per_user.set_index(per_user["user_id"].astype(str))
        users = pd.Index(dataset.user_ids[split.users])
        found = users.isin(ranked.index)
        ranks = np.full(len(split), np.nan)
        markov = np.full(len(split), np.nan)
        ranks[found] = ranked.loc[users[found], "rank"].to_numpy()
        markov[found] = ranked.loc[users[found], "markov_rank"].to_numpy()

    short = np.flatnonzero(lengths == SHORT)
    if not len(short):
        short = np.flatnonzero(lengths == lengths.min())
    row = best(short, np.nan_to_num(ranks[short], nan=np.inf) if ranks is not None else np.zeros(len(short)))
    if row is not None:
        told = f", and the model ranks their next one at {int(ranks[row])}" if ranks is not None and \
            np.isfinite(ranks[row]) else ""
        add("short", "Short history", row, f"Only {lengths[row]} items{told}: what the model makes of a newcomer.")

    if ranks is not None:
        rows = np.flatnonzero(np.isfinite(ranks) & np.isfinite(markov))
        gain = _ndcg(ranks[rows]) - _ndcg(markov[rows])
        row = best(rows, -gain, -markov[rows]) if len(rows) else None
        if row is not None and ranks[row] < markov[row]:
            add("beats_markov", "Beats Markov", row,
                f"The model ranks their next item at {int(ranks[row])}; the Markov baseline, which only looks at "
                f"the last item, at {int(markov[row]):,}.")
    return examples
