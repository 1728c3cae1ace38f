"""Beyond accuracy: what a model's top-K lists contain, not only whether they hold the true item.

For each test user, the K items a model ranks first (with the history hidden, the lists the
ranking metrics judge). Popularity is counted on the training side of the test split (the
positions every baseline learns from, evaluate.known_positions): an item's popularity is the
number of users who interacted with it there.

    coverage        the share of the catalog that appears in anyone's list
    avg_popularity  the mean popularity of a list's items
    long_tail       the share of a list's items outside the HEAD_SHARE most popular items
    novelty         the mean self-information of a list's items, log2(users / popularity)
                    (Zhou et al. 2010): an item half the users had carries 1 bit, one in 1,024 users 10
    diversity       the share of a list's pairs of items in different categories (intra-list
                    diversity), when the catalog has categories; items without one share a category

All but coverage are per-user values, averaged over users; coverage is a count over all lists.
"""

import numpy as np
import pandas as pd

from . import sequences
from .stats import jackknife_interval

K = 10
HEAD_SHARE = 0.2  # the "short head": the most popular fifth of the catalog
TRADEOFF = ("avg_popularity", "long_tail", "novelty")  # what the trade-off chart sets accuracy against
NAMES = {"coverage": "Coverage", "avg_popularity": "Avg popularity", "long_tail": "Long-tail share",
         "novelty": "Novelty (bits)", "diversity": "Diversity"}


def item_popularity(dataset, split: str = "test") -> np.ndarray:
    """(num_items + 1,) users who interacted with each item before the split's targets (0 for padding)."""
    starts, ends = dataset.offsets[:-1], sequences.known_ends(dataset, split)
    rows = np.repeat(np.arange(len(starts)), np.maximum(ends - starts, 0))
    cells = np.unique(rows * (dataset.num_items + 1) + dataset.items[sequences.positions(starts, ends)])
    return np.bincount(cells % (dataset.num_items + 1), minlength=dataset.num_items + 1)


def head_items(popularity: np.ndarray, share: float = HEAD_SHARE) -> np.ndarray:
    """(num_items + 1,) bool: the ceil(share x N) most popular items (ties by id); never padding."""
    num_items = len(popularity) - 1
    order = np.argsort(-popularity[1:], kind="stable") + 1
    head = np.zeros(len(popularity), dtype=bool)
    head[order[:int(np.ceil(share * num_items))]] = True
    return head


def category_codes(catalog: pd.DataFrame) -> np.ndarray | None:
    """(num_items + 1,) an integer per category (-1 for none), or None when no item has one."""
    if "category" not in catalog or not catalog["category"].notna().any():
        return None
    codes = np.full(int(catalog.index.max()) + 1, -1)
    codes[catalog.index.to_numpy()] = pd.Categorical(catalog["category"].astype("string")).codes
    return codes


def per_user(top: np.ndarray, popularity: np.ndarray, users: int, categories: np.ndarray | None = None) -> dict:
    """Per-user values of each list in top (n, K) internal ids; 0 marks an empty slot (a catalog with
    fewer than K items left to recommend) and counts for nothing. Returns {name: (n,) float array}."""
    listed = top > 0
    size = np.maximum(listed.sum(1), 1)
    head = head_items(popularity)
    item_bits = np.log2(max(users, 1) / np.maximum(popularity, 1))
    out = {"avg_popularity": (popularity[top] * listed).sum(1) / size,
           "long_tail": (~head[top] & listed).sum(1) / size,
           "novelty": (item_bits[top] * listed).sum(1) / size}
    if categories is not None:
        code = categories[top]
        both = listed[:, :, None] & listed[:, None, :]
        differ = (code[:, :, None] != code[:, None, :]) & both
        pairs = both.sum((1, 2)) - listed.sum(1)  # ordered pairs of two different slots
        out["diversity"] = differ.sum((1, 2)) / np.maximum(pairs, 1)
    return out


def coverage(top: np.ndarray, num_items: int) -> tuple[float, list[float]]:
    """(share of the catalog in anyone's list, its 95 % jackknife interval over users)."""
    listed = top[top > 0]
    times = np.bincount(listed, minlength=num_items + 1)
    share = np.count_nonzero(times[1:]) / max(num_items, 1)
    # Without user u, the items only u was given drop out.
    alone = ((times[top] == 1) & (top > 0)).sum(1)
    # an item listed twice for one user is not in the lists rank_targets makes, so `alone` is exact
    return share, jackknife_interval(share, share - alone / max(num_items, 1))


def jaccard(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(n,) |A ∩ B| / |A ∪ B| of each user's two lists (n, K); 0 (empty slots) is no item."""
    shared = ((first[:, :, None] == second[:, None, :]) & (first[:, :, None] > 0)).sum((1, 2))
    union = (first > 0).sum(1) + (second > 0).sum(1) - shared
    return shared / np.maximum(union, 1)
