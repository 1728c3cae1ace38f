"""Leave-one-out evaluation: full ranking, the paper's sampled protocol, and baselines.

A user's history is a slice [start, end) of the dataset's flat item array and the target
is the item right after it, so the validation and test splits need no copies:
validation predicts the second-to-last item from everything before it, test the last.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .inference import Recommender, load_run_dataset

KS = (1, 5, 10, 20)
NUM_SAMPLED = 100  # negatives per user in the paper's protocol


def left_padded(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """The last `width` items of each slice items[start:end], left-padded with 0: (len(starts), width)."""
    index = ends[:, None] - width + np.arange(width)  # (n, width)
    valid = index >= starts[:, None]
    if not len(items):
        return np.zeros(index.shape, dtype=np.int64)
    return np.where(valid, items[np.clip(index, 0, None)], 0)


def history_bounds(dataset, split: str):
    """(starts, ends, targets) of each user's history for 'valid' or 'test'."""
    held_out = {"valid": 2, "test": 1}[split]
    starts, ends = dataset.offsets[:-1], dataset.offsets[1:] - held_out
    return starts, ends, dataset.items[ends]


def rank_metrics(ranks: np.ndarray, ks=KS, prefix: str = "") -> dict[str, float]:
    """HR@K, NDCG@K and MRR from 1-based ranks of the true item."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {}
    for k in ks:
        hit = ranks <= k
        out[f"{prefix}hr@{k}"] = float(hit.mean())
        out[f"{prefix}ndcg@{k}"] = float((hit / np.log2(ranks + 1)).mean())
    out[f"{prefix}mrr"] = float((1.0 / ranks).mean())
    return out


def sample_negatives(dataset, num: int = NUM_SAMPLED, seed: int = 0) -> np.ndarray:
    """(num_users, num) items drawn uniformly, with replacement as in the paper's code, among
    those the user never interacted with.

    A user who has seen (almost) the whole catalog gets padding (item 0) where no unseen
    item turned up: padding always scores -inf, so they are ranked among fewer items.
    """
    rng = np.random.default_rng(seed)
    num_users, num_items = dataset.num_users, dataset.num_items
    users = np.repeat(np.arange(num_users), np.diff(dataset.offsets))
    seen = np.unique(users.astype(np.int64) * (num_items + 1) + dataset.items)
    negatives = rng.integers(1, num_items + 1, size=(num_users, num))
    row = np.arange(num_users)[:, None]
    for _ in range(100):
        clash = np.isin(row * (num_items + 1) + negatives, seen)
        if not clash.any():
            break
        negatives[clash] = rng.integers(1, num_items + 1, size=int(clash.sum()))
    else:
        negatives[clash] = 0
    return negatives


@torch.no_grad()
def rank_targets(score_fn, items, starts, ends, targets, *, exclude_history=True, negatives=None,
                 batch_size=256, device="cpu") -> dict[str, np.ndarray]:
    """Rank each target among all items (and among its sampled negatives, if given).

    score_fn(rows) returns (len(rows), N+1) scores for those users; column 0 is padding.
    Excluding the history never excludes the target itself, so repeat consumption is
    still scored fairly.
    """
    # Users of similar history length share a batch: each batch is cut to its longest
    # history, so this keeps the padding (and the attention cost) small.
    order = np.argsort(ends - starts, kind="stable")
    out = {"rank": np.zeros(len(targets), dtype=np.int64)}
    if negatives is not None:
        out["sampled_rank"] = np.zeros(len(targets), dtype=np.int64)
    for lo in range(0, len(targets), batch_size):
        rows = order[lo: lo + batch_size]
        scores = score_fn(rows).float()
        scores[:, 0] = float("-inf")
        target = torch.as_tensor(targets[rows], device=device).long().unsqueeze(1)
        target_score = scores.gather(1, target)
        if negatives is not None:
            negative_scores = scores.gather(1, torch.as_tensor(negatives[rows], device=device).long())
            out["sampled_rank"][rows] = ((negative_scores > target_score).sum(1) + 1).cpu().numpy()
        if exclude_history:
            width = int((ends[rows] - starts[rows]).max())
            history = left_padded(items, starts[rows], ends[rows], max(width, 1))
            scores.scatter_(1, torch.as_tensor(history, device=device).long(), float("-inf"))
            scores.scatter_(1, target, target_score)
        out["rank"][rows] = ((scores > target_score).sum(1) + 1).cpu().numpy()
    return out


def sasrec_scorer(model, items, starts, ends, device):
    maxlen = model.config.maxlen

    def score(rows):
        width = int(min(maxlen, max(1, (ends[rows] - starts[rows]).max())))
        history = left_padded(items, np.maximum(starts[rows], ends[rows] - maxlen), ends[rows], width)
        last, _ = model.last_hidden(torch.as_tensor(history, device=device).long())
        return model.score_items(last)

    return score


def popularity_scorer(items, starts, ends, num_items, device):
    """Most-popular: interaction counts over everyone's history."""
    counts = np.bincount(items[_positions(starts, ends)], minlength=num_items + 1)
    counts = torch.as_tensor(counts, device=device).float()
    return lambda rows: counts.repeat(len(rows), 1)


def markov_scorer(items, starts, ends, num_items, device):
    """First-order Markov chain: counts of item -> next item within histories, ties broken by popularity."""
    positions = _positions(starts, ends)
    counts = np.bincount(items[positions], minlength=num_items + 1).astype(np.float64)
    # A pair (j, j+1) is a transition when both lie inside the same history.
    has_next = np.ones(len(positions), dtype=bool)
    has_next[np.cumsum(ends - starts)[ends - starts > 0] - 1] = False
    sources, following = items[positions[has_next]], items[positions[has_next] + 1]
    transitions = torch.sparse_coo_tensor(
        np.stack([sources, following]), np.ones(len(sources)), (num_items + 1, num_items + 1), check_invariants=True
    ).coalesce().float().to(device)
    tie_break = torch.as_tensor(counts / (counts.max() + 1), device=device).float()  # < 1: never beats a count

    def score(rows):
        last = torch.as_tensor(items[ends[rows] - 1], device=device).long()
        return transitions.index_select(0, last).to_dense() + tie_break

    return score


def _positions(starts, ends) -> np.ndarray:
    """Flat indices of every item in the slices [start, end), in order."""
    lengths = ends - starts
    offsets_in_slice = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets_in_slice


@dataclass
class Report:
    metrics: dict[str, float]  # flat, e.g. "ndcg@10", "sampled_ndcg@10", "pop_ndcg@10", "markov_hr@10"
    per_user: pd.DataFrame  # user_id, history_length, rank, sampled_rank, pop_rank, markov_rank


def evaluate(model, dataset, split="test", *, ks=KS, exclude_history=True, device="cpu",
             seed=0, batch_size=256) -> Report:
    """SASRec against the most-popular and Markov baselines on one leave-one-out split."""
    model.eval()
    starts, ends, targets = history_bounds(dataset, split)
    negatives = sample_negatives(dataset, seed=seed)
    common = dict(exclude_history=exclude_history, negatives=negatives, batch_size=batch_size, device=device)
    scorers = {
        "": sasrec_scorer(model, dataset.items, starts, ends, device),
        "pop_": popularity_scorer(dataset.items, starts, ends, dataset.num_items, device),
        "markov_": markov_scorer(dataset.items, starts, ends, dataset.num_items, device),
    }
    metrics, per_user = {}, {"user_id": dataset.user_ids, "history_length": ends - starts}
    for prefix, scorer in scorers.items():
        ranked = rank_targets(scorer, dataset.items, starts, ends, targets, **common)
        metrics |= rank_metrics(ranked["rank"], ks, prefix)
        metrics |= rank_metrics(ranked["sampled_rank"], ks, prefix + "sampled_")
        per_user[prefix + "rank"] = ranked["rank"]
        per_user[prefix + "sampled_rank"] = ranked["sampled_rank"]
    return Report(metrics, pd.DataFrame(per_user))


def validation_metrics(model, dataset, device="cpu", batch_size=256) -> dict[str, float]:
    """Full-ranking NDCG@10 and HR@10 on the validation split, for model selection."""
    model.eval()
    starts, ends, targets = history_bounds(dataset, "valid")
    scorer = sasrec_scorer(model, dataset.items, starts, ends, device)
    ranked = rank_targets(scorer, dataset.items, starts, ends, targets, batch_size=batch_size, device=device)
    metrics = rank_metrics(ranked["rank"], ks=(10,))
    return {"valid_ndcg@10": metrics["ndcg@10"], "valid_hr@10": metrics["hr@10"]}


def evaluate_run(run_dir, split: str = "test", exclude_history: bool = True) -> Report:
    """Evaluate a run's best checkpoint on the data it was trained on."""
    dataset = load_run_dataset(run_dir)
    model = Recommender.from_run(run_dir).model
    return evaluate(model, dataset, split, exclude_history=exclude_history)
