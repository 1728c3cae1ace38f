"""Leave-one-out evaluation: full ranking, the paper's sampled protocol, and baselines.

The histories and targets come from sequences.holdout: validation predicts the second to
last item from everything before it, test the last. Users too short for a split are
skipped and counted (`users`, `skipped_users` in every report).

The baselines learn from everything known before the split's targets (known_positions): the
most popular items, a first-order Markov chain, and EASE (ease.py) when the catalog allows.
"""

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from . import ease, sequences
from .sequences import Holdout

KS = (1, 5, 10, 20)
NUM_SAMPLED = 100  # negatives per user in the paper's protocol
# Scores held at once while ranking: users per batch shrink as the catalog grows, so that a
# 1M-item catalog never needs more than this many floats (256 MB).
MAX_SCORES = 1 << 26
TOP_K = 10  # each test user's list kept for the beyond-accuracy metrics (beyond.py)
# report prefix -> name; EASE is there when the catalog allowed it (ease.MAX_ITEMS)
MODELS = {"": "SASRec", "markov_": "Markov", "pop_": "Most popular", "ease_": "EASE"}
BASELINES = tuple(prefix for prefix in MODELS if prefix)


def per_user_metrics(ranks: np.ndarray, ks=KS, prefix: str = "") -> dict[str, np.ndarray]:
    """Each user's HR@K (hit or not), NDCG@K and reciprocal rank, from 1-based ranks of the true item:
    the values whose means are the metrics."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {}
    for k in ks:
        hit = ranks <= k
        out[f"{prefix}hr@{k}"] = hit.astype(np.float64)
        out[f"{prefix}ndcg@{k}"] = hit / np.log2(ranks + 1)
    out[f"{prefix}mrr"] = 1.0 / ranks
    return out


def rank_metrics(ranks: np.ndarray, ks=KS, prefix: str = "") -> dict[str, float]:
    """HR@K, NDCG@K and MRR from 1-based ranks of the true item (NaN for no users)."""
    return {name: float(values.mean()) if len(values) else float("nan")
            for name, values in per_user_metrics(ranks, ks, prefix).items()}


def sample_negatives(dataset, users: np.ndarray, num: int = NUM_SAMPLED, seed: int = 0) -> np.ndarray:
    """(len(users), num) items drawn uniformly, with replacement as in the paper's code, among
    those each user never interacted with.

    A user who has seen (almost) the whole catalog gets padding (item 0) where no unseen
    item turned up: padding always scores -inf, so they are ranked among fewer items.
    """
    rng = np.random.default_rng(seed)
    num_items = dataset.num_items
    lengths = np.diff(dataset.offsets)[users]
    positions = sequences.positions(dataset.offsets[:-1][users], dataset.offsets[1:][users])
    row_of = np.repeat(np.arange(len(users)), lengths)
    seen = np.unique(row_of.astype(np.int64) * (num_items + 1) + dataset.items[positions])
    negatives = rng.integers(1, num_items + 1, size=(len(users), num))
    row = np.arange(len(users))[:, None]
    for _ in range(100):
        clash = np.isin(row * (num_items + 1) + negatives, seen)
        if not clash.any():
            break
        negatives[clash] = rng.integers(1, num_items + 1, size=int(clash.sum()))
    else:
        negatives[clash] = 0
    return negatives


def users_per_batch(num_items: int, most: int = 256) -> int:
    return int(np.clip(MAX_SCORES // (num_items + 1), 1, most))


@torch.no_grad()
def rank_targets(score_fn, items, split: Holdout, *, exclude_history=True, negatives=None,
                 batch_size=256, device="cpu", top_k: int = 0) -> dict[str, np.ndarray]:
    """Rank each target among all items (and among its sampled negatives, if given).

    score_fn(rows) returns (len(rows), N+1) scores for those rows of the split; column 0 is
    padding. History items are hidden by sequences.hide_seen, never the target itself. With
    top_k, out["top"] (len(split), top_k) int32 holds the items ranked first, as ranked (0 where
    fewer items are left to rank).
    """
    # Users of similar history length share a batch: each batch is cut to its longest
    # history, so this keeps the padding (and the attention cost) small.
    order = np.argsort(split.ends - split.starts, kind="stable")
    out = {"rank": np.zeros(len(split), dtype=np.int64)}
    if negatives is not None:
        out["sampled_rank"] = np.zeros(len(split), dtype=np.int64)
    if top_k:
        out["top"] = np.zeros((len(split), top_k), dtype=np.int32)
    for lo in range(0, len(split), batch_size):
        rows = order[lo: lo + batch_size]
        scores = score_fn(rows).float()
        scores[:, 0] = float("-inf")
        target = torch.as_tensor(split.targets[rows], device=device).long()
        target_score = scores.gather(1, target[:, None])
        if negatives is not None:
            negative_scores = scores.gather(1, torch.as_tensor(negatives[rows], device=device).long())
            out["sampled_rank"][rows] = ((negative_scores > target_score).sum(1) + 1).cpu().numpy()
        if exclude_history:
            width = int(max(1, (split.ends[rows] - split.starts[rows]).max()))
            seen = sequences.left_padded(items, split.starts[rows], split.ends[rows], width)
            sequences.hide_seen(scores, torch.as_tensor(seen, device=device).long(), keep=target)
        out["rank"][rows] = ((scores > target_score).sum(1) + 1).cpu().numpy()
        if top_k:
            best, chosen = scores.topk(min(top_k, scores.shape[1]), dim=1)
            out["top"][rows, :chosen.shape[1]] = torch.where(best > float("-inf"), chosen, 0).cpu().numpy()
    return out


def sasrec_scorer(model, items, split: Holdout, device):
    def score(rows):
        history = sequences.model_inputs(items, split.starts[rows], split.ends[rows], model.config.maxlen)
        last, _ = model.last_hidden(torch.as_tensor(history, device=device).long())
        return model.score_items(last)

    return score


def known_positions(dataset, split: str) -> np.ndarray:
    """Every position the baselines may learn from when predicting `split`: each history of the
    split, and all items of the users too short to have it."""
    return sequences.positions(dataset.offsets[:-1], sequences.known_ends(dataset, split))


def popularity_scorer(dataset, split: Holdout, split_name: str, device):
    """Most-popular: interaction counts over everything known before the split's targets."""
    counts = np.bincount(dataset.items[known_positions(dataset, split_name)], minlength=dataset.num_items + 1)
    counts = torch.as_tensor(counts, device=device).float()
    return lambda rows: counts.repeat(len(rows), 1)


def markov_scorer(dataset, split: Holdout, split_name: str, device):
    """First-order Markov chain: counts of item -> next item in everything known before the
    split's targets, ties broken by popularity."""
    starts, ends = dataset.offsets[:-1], sequences.known_ends(dataset, split_name)
    positions = sequences.positions(starts, ends)
    num_items, items = dataset.num_items, dataset.items
    counts = np.bincount(items[positions], minlength=num_items + 1).astype(np.float64)
    # A pair (j, j+1) is a transition when both lie inside the same known part.
    has_next = np.ones(len(positions), dtype=bool)
    known = ends - starts
    has_next[np.cumsum(known)[known > 0] - 1] = False
    sources, following = items[positions[has_next]], items[positions[has_next] + 1]
    # The transition counts as a CSR matrix over item ids: row i lists what followed item i.
    pairs, counts_of_pair = np.unique(sources.astype(np.int64) * (num_items + 1) + following, return_counts=True)
    source_of_pair, next_of_pair = pairs // (num_items + 1), pairs % (num_items + 1)
    row_start = np.searchsorted(source_of_pair, np.arange(num_items + 2))
    tie_break = torch.as_tensor(counts / (counts.max() + 1), device=device).float()  # < 1: never beats a count

    def score(rows):
        last = items[split.ends[rows] - 1]
        lo, hi = row_start[last], row_start[last + 1]
        pair = sequences.positions(lo, hi)
        scores = tie_break.repeat(len(rows), 1)
        scores[torch.as_tensor(np.repeat(np.arange(len(rows)), hi - lo), device=device),
               torch.as_tensor(next_of_pair[pair], device=device)] += torch.as_tensor(
            counts_of_pair[pair], device=device, dtype=torch.float)
        return scores

    return score


@dataclass
class Report:
    metrics: dict  # flat, e.g. "ndcg@10", "sampled_ndcg@10", "pop_ndcg@10", "markov_hr@10", "users"
    per_user: pd.DataFrame  # user_id, history_length, rank, sampled_rank, pop_rank, markov_rank, ..., ease_rank
    top: dict = field(default_factory=dict)  # prefix -> (users, TOP_K) int32: the items each model ranked first
    ease: dict = field(default_factory=dict)  # ease.Fit.summary(): its λ, or why it is absent
    seconds: dict = field(default_factory=dict)  # model name -> seconds its fit and ranking took

    def add(self, prefix: str, ranked: dict, ks=KS) -> None:
        """One model's rank_targets output (rank, sampled_rank, top) into the report."""
        self.metrics |= rank_metrics(ranked["rank"], ks, prefix) | rank_metrics(ranked["sampled_rank"], ks,
                                                                                prefix + "sampled_")
        self.per_user[prefix + "rank"] = ranked["rank"]
        self.per_user[prefix + "sampled_rank"] = ranked["sampled_rank"]
        self.top[prefix] = ranked["top"]


def evaluate(model, dataset, split="test", *, ks=KS, exclude_history=True, device="cpu", seed=0,
             on_progress=None, ease_found: dict | None = None) -> Report:
    """SASRec against the baselines on one leave-one-out split, over every user who has it: most popular
    and Markov, and EASE on the test split when the catalog allows it. ease_found: EASE's stored result
    for this very split (ease.find_stored), used instead of fitting it again. on_progress(message) is
    told what is being done as each model starts."""
    model.eval()
    say = on_progress or (lambda message: None)
    holdout = sequences.holdout(dataset, split)
    negatives = sample_negatives(dataset, holdout.users, seed=seed)
    common = dict(exclude_history=exclude_history, negatives=negatives, device=device,
                  batch_size=users_per_batch(dataset.num_items), top_k=TOP_K)
    report = Report({"users": len(holdout), "skipped_users": holdout.skipped, "items": dataset.num_items}, pd.DataFrame(
        {"user_id": dataset.user_ids[holdout.users], "history_length": holdout.ends - holdout.starts}))

    def rank_with_ease():
        if ease_found is not None and len(ease_found["ranked"]["rank"]) == len(holdout):
            report.ease = ease_found["summary"]
            return ease_found["ranked"]
        fitted = ease.fit(dataset, holdout, device=device, on_progress=say, seed=seed)
        report.ease = fitted.summary()
        if fitted.score is None:  # a catalog too big for EASE
            return None
        return rank_targets(fitted.score, dataset.items, holdout, **common)

    rankings = {  # each made when its turn comes: EASE's weights are big, and only one model's are held at once
        "": lambda: rank_targets(sasrec_scorer(model, dataset.items, holdout, device), dataset.items, holdout, **common),
        "pop_": lambda: rank_targets(popularity_scorer(dataset, holdout, split, device), dataset.items, holdout,
                                     **common),
        "markov_": lambda: rank_targets(markov_scorer(dataset, holdout, split, device), dataset.items, holdout,
                                        **common),
        **({"ease_": rank_with_ease} if split == "test" else {}),
    }
    for step, (prefix, rank) in enumerate(rankings.items()):
        started = time.perf_counter()
        say(f"ranking every item for {len(holdout):,} test users with {MODELS[prefix]} ({step + 1} of {len(rankings)})")
        ranked = rank()
        if ranked is not None:
            report.add(prefix, ranked, ks)
            report.seconds[MODELS[prefix]] = round(time.perf_counter() - started, 2)
    return report


def validation_users(dataset, sample: int | None, seed: int = 0) -> Holdout:
    """The validation split, or a fixed random sample of `sample` of its users (the same every epoch)."""
    split = sequences.holdout(dataset, "valid")
    if not sample or sample >= len(split):
        return split
    rows = np.sort(np.random.default_rng(seed).choice(len(split), size=sample, replace=False))
    return split.subset(rows)


def validation_metrics(model, dataset, split: Holdout, device="cpu") -> dict[str, float]:
    """Full-ranking NDCG@10 and HR@10 on (a sample of) the validation split, for model selection."""
    model.eval()
    scorer = sasrec_scorer(model, dataset.items, split, device)
    ranked = rank_targets(scorer, dataset.items, split, device=device, batch_size=users_per_batch(dataset.num_items))
    metrics = rank_metrics(ranked["rank"], ks=(10,))
    return {"valid_ndcg@10": metrics["ndcg@10"], "valid_hr@10": metrics["hr@10"]}


METRICS = [f"{m}@{k}" for m in ("hr", "ndcg") for k in KS] + ["mrr"]


def evaluated_models(metrics: dict) -> dict[str, str]:
    """prefix -> name of the models a report has metrics for, SASRec first (EASE only where it was fitted)."""
    return {prefix: name for prefix, name in MODELS.items() if prefix + "ndcg@10" in metrics}


def metrics_table(metrics: dict) -> pd.DataFrame:
    """One row per model and protocol (SASRec, Markov, Most popular, EASE, then each '(sampled)'),
    columns HR@K, NDCG@K and MRR."""
    models = evaluated_models(metrics)
    rows = {name: prefix for prefix, name in models.items()} | {
        f"{name} (sampled)": prefix + "sampled_" for prefix, name in models.items()}
    return pd.DataFrame({name: {c.upper(): metrics.get(prefix + c) for c in METRICS}
                         for name, prefix in rows.items()}).T
