"""Where each model wins: NDCG@10 and HR@10 of groups of test users, each with its 95 % interval.

    length      how many items the user had before the test item: terciles (short, medium, long)
    popularity  how popular the test item was in training: head, torso and tail, the most popular
                items holding the first third of the training interactions, the next third, the rest
    recency     when the user was last active (their test item's time): terciles, where the log
                has timestamps

A group of a few dozen users has a wide interval: the tables show it beside the value, so that a
small group's difference is not read as a finding.
"""

import numpy as np
import pandas as pd

from . import stats
from .evaluate import MODELS, per_user_metrics

K = 10
METRICS = (f"ndcg@{K}", f"hr@{K}")
BY = {"length": "History length", "popularity": "Test item's popularity", "recency": "Last active"}


def length_groups(lengths: np.ndarray) -> tuple[np.ndarray, dict]:
    """(group of each user, {group: what it spans}) by history-length terciles. Users with equal lengths
    stay in one group, so heavy ties leave fewer (never empty) groups; one length for all is "all"."""
    low, high = np.quantile(lengths, [1 / 3, 2 / 3])
    groups = np.where(lengths <= low, "short", np.where(lengths <= high, "medium", "long"))
    labels = [label for label in ("short", "medium", "long") if (groups == label).any()]
    if len(labels) == 1:
        groups = np.full(len(lengths), "all")
        labels = ["all"]
    spans = {label: f"{lengths[groups == label].min():,}–{lengths[groups == label].max():,} items" for label in labels}
    return groups, spans


def popularity_groups(target_popularity: np.ndarray, popularity: np.ndarray) -> tuple[np.ndarray, dict]:
    """(group of each user, {group: its items}) by the test item's popularity: head, torso and tail are
    the most popular items that hold the first third of the training interactions, the next third,
    and the rest (items never seen in training among them). popularity: (num_items + 1,) per item."""
    counts = np.sort(popularity[1:])[::-1].astype(np.float64)
    before = (np.cumsum(counts) - counts) / max(counts.sum(), 1)  # the share held by more popular items
    head_items, torso_items = int((before < 1 / 3).sum()), int((before < 2 / 3).sum())
    # An item's group follows from its count: the least popular head item's count is the head's bar.
    head_bar = counts[head_items - 1] if head_items else np.inf
    torso_bar = counts[torso_items - 1] if torso_items else np.inf
    groups = np.where(target_popularity >= head_bar, "head", np.where(target_popularity >= torso_bar, "torso", "tail"))
    sizes = {"head": int((popularity[1:] >= head_bar).sum())}
    sizes["torso"] = int((popularity[1:] >= torso_bar).sum()) - sizes["head"]
    sizes["tail"] = len(counts) - sizes["head"] - sizes["torso"]
    return groups, {label: f"{sizes[label]:,} item{'s' if sizes[label] != 1 else ''}"
                    for label in ("head", "torso", "tail") if (groups == label).any()}


def recency_groups(last_active: np.ndarray) -> tuple[np.ndarray, dict] | None:
    """(group of each user, {group: its dates}) by terciles of when the user was last active (epoch
    seconds); None when there are no timestamps or they are all the same."""
    if last_active is None or not len(last_active) or np.isnan(last_active).any() or np.ptp(last_active) == 0:
        return None
    low, high = np.quantile(last_active, [1 / 3, 2 / 3])
    groups = np.where(last_active <= low, "earliest", np.where(last_active <= high, "middle", "latest"))

    def day(seconds):
        return pd.Timestamp(int(seconds), unit="s").strftime("%Y-%m-%d")

    return groups, {label: f"{day(last_active[groups == label].min())} – {day(last_active[groups == label].max())}"
                    for label in ("earliest", "middle", "latest") if (groups == label).any()}


def breakdown(per_user: pd.DataFrame, by: str, groups: np.ndarray, spans: dict, models: list[str]) -> pd.DataFrame:
    """One row per (group, model): users, and each of METRICS with its interval (columns m, m_low, m_high)."""
    rows = []
    for label, span in spans.items():
        chosen = per_user[groups == label]
        values = {}
        for prefix in models:
            metrics = per_user_metrics(chosen[prefix + "rank"].to_numpy(), ks=(K,))
            values |= {(prefix, m): metrics[m] for m in METRICS}
        resampled = stats.resampled_means(np.column_stack(list(values.values())))
        low, high = stats.interval(resampled)
        for prefix in models:
            row = {"by": by, "group": label, "span": span, "users": len(chosen), "model": MODELS[prefix]}
            for m in METRICS:
                at = list(values).index((prefix, m))
                row |= {m: float(values[prefix, m].mean()), f"{m}_low": float(low[at]), f"{m}_high": float(high[at])}
            rows.append(row)
    return pd.DataFrame(rows)


def breakdowns(per_user: pd.DataFrame, popularity: np.ndarray, models: list[str]) -> pd.DataFrame:
    """Every breakdown the data allows, stacked (column "by"). per_user: report.py's table, with
    history_length, target_popularity and last_active (NaN without timestamps)."""
    tables = [breakdown(per_user, "length", *length_groups(per_user["history_length"].to_numpy()), models),
              breakdown(per_user, "popularity", *popularity_groups(per_user["target_popularity"].to_numpy(),
                                                                    popularity), models)]
    by_time = recency_groups(per_user["last_active"].to_numpy(dtype=np.float64))
    if by_time is not None:
        tables.append(breakdown(per_user, "recency", *by_time, models))
    return pd.concat(tables, ignore_index=True)
