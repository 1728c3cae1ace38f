"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): the usual strong
non-sequential baseline, an item-item linear model in closed form.

X is the binary user x item matrix of everything known before a split's targets (the positions
the other baselines learn from, evaluate.known_positions). EASE's weights minimise
||X - XB||² + λ||B||² with a zero diagonal; with P = (XᵀX + λI)⁻¹ they are B = I - P diag(1/diag P).
A user's scores are the row x_u B: items that co-occur with their history, weighted by how much
each explains the others. The ranking hides the history as for every other model.

The Gram matrix XᵀX and its inverse are dense N x N: 4 N² bytes each in float32, and the inverse
(a Cholesky factor, then LAPACK's inverse from it) costs about N³/2 multiply-adds. That is what
limits EASE to MAX_ITEMS: see its comment for the measured figures.
"""

import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import sequences
from .beyond import item_popularity
from .machine import matmul_gflops

# The largest catalog EASE is fitted for. On the development machine's 2 cores (python -m bench.ease) one
# inverse takes 8 CPU-seconds at 8,000 items and 77 at 18,000 (39 s wall on a quiet machine; it grows with
# N³, so about 105 CPU-seconds at 20,000), and the fit holds about three N x N float32 matrices at its
# peak: 4 GB at 18,000 items, 5 GB at 20,000, 11 GB at 30,000.
MAX_ITEMS = 20_000
# λ is chosen on validation among these, as multiples of the mean item count (the mean diagonal of
# XᵀX): the counts set the scale on which λ acts, so one grid serves a 1,000- and a 1,000,000-event log.
LAMBDA_SCALES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
EXTEND = 3  # further doublings (or halvings) tried past an end of the grid while NDCG@10 still rises
# λ is searched on at most this many items, the most popular: a fit there takes about a second, where one
# on 18,000 items takes over a minute (bench/ease.py). On ml-100k and the sample data, searching on a
# third of the catalog chose the λ the whole catalog chose, within one step of the grid.
SEARCH_ITEMS = 4_000
# Validation users the choice of λ is made on (a fixed sample; every user when there are fewer).
VALIDATION_USERS = 5_000
# A stored result's fingerprint includes this: change it when what EASE computes changes.
VERSION = 1
STORED = "ease.npz"  # in a run's evaluation folder
# A float32 Cholesky factor fails where rounding outweighs λ. With λ at least half the mean item count that
# needs a matrix far worse conditioned than any log here gave, but a baseline must not fail a run's
# evaluation: EASE is then absent, with this reason.
NOT_FACTORED = ("EASE could not be fitted: its item x item matrix (with λ = {lam:g}) is too badly conditioned for a "
                "float32 Cholesky factor")


def expected_seconds(num_items: int) -> float:
    """About how long fit() takes here: N³ multiply-adds for each inverse (twice their arithmetic, for
    LAPACK's Cholesky runs at about half the rate of a matrix product, and for the rankings), the search's
    on at most SEARCH_ITEMS items, a few more than the grid, at the rate this machine multiplies matrices now."""
    if too_big(num_items):
        return 0.0
    multiply_adds_per_second = matmul_gflops(1024, repeat=3) * 1e9 / 2
    searched = min(num_items, SEARCH_ITEMS)
    return (num_items ** 3 + (len(LAMBDA_SCALES) + 2) * searched ** 3) / multiply_adds_per_second


def too_big(num_items: int) -> str | None:
    """Why EASE is not fitted for a catalog this size, or None if it is."""
    if num_items <= MAX_ITEMS:
        return None
    gigabytes = 3 * 4 * num_items ** 2 / 2**30
    return (f"EASE is fitted only for catalogs of up to {MAX_ITEMS:,} items: its item x item matrix and inverse "
            f"would need about {gigabytes:.0f} GB here ({num_items:,} items) and the inverse grows with the cube "
            "of the catalog")


def held_items(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) of every distinct item each slice items[start:end] holds, sorted by row then item:
    the binary user x item matrix X, as coordinates (an item consumed twice counts once)."""
    rows = np.repeat(np.arange(len(starts)), np.maximum(ends - starts, 0))
    cells = np.unique(rows * (num_items + 1) + items[sequences.positions(starts, ends)])
    return cells // (num_items + 1), cells % (num_items + 1)


def user_item_matrix(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, num_items: int) -> torch.Tensor:
    """X for the slices, as a sparse (len(starts), num_items + 1) tensor (column 0, padding, stays empty)."""
    rows, columns = held_items(items, starts, ends, num_items)
    index = torch.as_tensor(np.stack([rows, columns]))
    return torch.sparse_coo_tensor(index, torch.ones(len(rows)), (len(starts), num_items + 1),
                                   is_coalesced=True, check_invariants=False)  # unique and sorted by construction


def gram(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, num_items: int,
         block: int = 2048) -> torch.Tensor:
    """XᵀX for the slices, dense float32 (num_items + 1)²: how many slices hold both items i and j, the
    count of i on the diagonal. Sparse products Xᵀ X[:, columns], `block` item columns at a time, so that no
    sparse result holds more than (num_items + 1) x block entries. Enumerating every pair of items within a
    history instead cost sum(length²): 2.2 s on ml-100k's long histories, where this takes 0.17 s; on Sports'
    short ones it took 0.4 s where this takes 1.2 s, next to the inverse's 44 s."""
    rows, columns = held_items(items, starts, ends, num_items)
    X_t = user_item_matrix(items, starts, ends, num_items).t()
    G = torch.zeros(num_items + 1, num_items + 1)
    # torch warns that its sparse CSR support is in beta, on every training's stderr; the products are
    # checked against XᵀX in tests/test_ease.py.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        for lo in range(0, num_items + 1, block):
            G[:, lo:lo + block] = torch.sparse.mm(X_t, _column_block(rows, columns, len(starts), lo,
                                                                     min(block, num_items + 1 - lo))).to_dense()
    return G


def _column_block(rows: np.ndarray, columns: np.ndarray, num_rows: int, lo: int, width: int) -> torch.Tensor:
    """The sparse (num_rows, width) matrix of the cells whose column is in lo..lo + width - 1."""
    inside = (columns >= lo) & (columns < lo + width)  # sorted by row: coalesced
    return torch.sparse_coo_tensor(torch.as_tensor(np.stack([rows[inside], columns[inside] - lo])),
                                   torch.ones(int(inside.sum())), (num_rows, width), is_coalesced=True,
                                   check_invariants=False)


def weights(G: torch.Tensor, lam: float, overwrite: bool = False) -> torch.Tensor:
    """EASE's B from the Gram matrix G: B = I - P diag(1/diag P), P = (G + λI)⁻¹, zero on the diagonal.
    overwrite: G may be changed (it is not needed after), which saves a copy of it."""
    A = G if overwrite else G.clone()
    A.diagonal().add_(lam)
    # At 18,000 items this takes 39 s where an inverse by halves in matrix products took 51 s; a Cholesky
    # factor with triangular solves takes 2.6x longer at 8,000 items, and an eigendecomposition (which would
    # serve every λ of the grid) 7x longer at 4,000 (python -m bench.ease).
    factor = torch.linalg.cholesky(A)
    del A
    # LAPACK fills one triangle and torch mirrors it: P is exactly symmetric, but column-major, which made
    # the sparse products that score users with B 15x slower; its transpose is the same matrix, row-major.
    P = torch.cholesky_inverse(factor).mT
    del factor
    B = P.div_(-P.diagonal().clone())  # column j divided by -P_jj; the diagonal becomes -1 ...
    B.diagonal().zero_()  # ... and I - P/diag(P) has zeros there
    return B


def scorer(B: torch.Tensor, items: np.ndarray, split: sequences.Holdout):
    """score_fn(rows) for evaluate.rank_targets: each history's items times B."""
    num_items = B.shape[0] - 1

    def score(rows):
        X = user_item_matrix(items, split.starts[rows], split.ends[rows], num_items)
        return torch.sparse.mm(X, B)

    return score


@dataclass
class Fit:
    """An EASE fit for the test split, with how λ was chosen; `reason` says why there is none."""
    score: object = None  # score_fn for rank_targets over the test split, or None
    lam: float | None = None
    validation: dict = field(default_factory=dict)  # λ -> validation NDCG@10
    validation_users: int = 0
    searched_items: int = 0
    seconds: float = 0.0
    reason: str | None = None

    def summary(self) -> dict:
        if self.reason:
            return {"computed": False, "reason": self.reason}
        return {"computed": True, "lambda": self.lam,
                "validation_ndcg@10": {f"{lam:g}": ndcg for lam, ndcg in self.validation.items()},
                "validation_users": self.validation_users, "searched_items": self.searched_items,
                "seconds": round(self.seconds, 1)}


def search_problem(dataset, valid: sequences.Holdout, most: int):
    """The validation problem λ is chosen on: (items, starts, ends, num_items, holdout) over the `most` items
    most popular before the validation targets, ids renumbered 1..most, every other item dropped from the
    histories, and only the users whose validation item is among them; the whole problem when the catalog
    is no bigger."""
    starts, ends = dataset.offsets[:-1], sequences.known_ends(dataset, "valid")
    if dataset.num_items <= most:
        return dataset.items, starts, ends, dataset.num_items, valid
    positions = sequences.positions(starts, ends)
    popularity = np.bincount(dataset.items[positions], minlength=dataset.num_items + 1)[1:]
    renumbered = np.zeros(dataset.num_items + 1, dtype=np.int32)
    renumbered[np.argsort(-popularity, kind="stable")[:most] + 1] = np.arange(1, most + 1)
    items = renumbered[dataset.items[positions]]
    user = np.repeat(np.arange(dataset.num_users), np.maximum(ends - starts, 0))[items > 0]
    offsets = np.zeros(dataset.num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=dataset.num_users), out=offsets[1:])
    kept = np.flatnonzero(renumbered[valid.targets] > 0)
    users = valid.users[kept]
    holdout = sequences.Holdout(users, offsets[users], offsets[users + 1], renumbered[valid.targets[kept]], 0)
    return items[items > 0], offsets[:-1], offsets[1:], most, holdout


def fit(dataset, test: sequences.Holdout, *, device="cpu", on_progress=None, seed: int = 0) -> Fit:
    """EASE for the test split. λ is chosen on (a sample of) the validation split, each candidate fitted on
    what is known before the validation targets; a catalog bigger than SEARCH_ITEMS is searched on its most
    popular SEARCH_ITEMS items (search_problem), where a fit takes a second. Then EASE is fitted once with
    that λ on the whole catalog, on what is known before the test targets."""
    from .evaluate import rank_metrics, rank_targets, users_per_batch, validation_users  # evaluate imports this module

    reason = too_big(dataset.num_items)
    if reason:
        return Fit(reason=reason)
    started = time.perf_counter()
    report = on_progress or (lambda message: None)
    valid = validation_users(dataset, VALIDATION_USERS, seed)
    items, starts, ends, num_items, searched = search_problem(dataset, valid, SEARCH_ITEMS)
    # λ acts against the counts in XᵀX: the grid is set by the whole catalog's mean count (its mean diagonal).
    mean_count = float(item_popularity(dataset, "valid")[1:].mean()) or 1.0
    grid = [float(f"{mean_count * multiple:.3g}") for multiple in LAMBDA_SCALES]
    searched_gram = gram(items, starts, ends, num_items).to(device)
    validation, candidates = {}, list(grid)
    while candidates:
        lam = candidates.pop(0)
        report(f"EASE: trying λ = {lam:g} on validation ({len(validation) + 1} of {len(grid)} or a few more)")
        try:
            B = weights(searched_gram, lam)
        except torch.linalg.LinAlgError:  # see below; a bigger λ conditions the matrix better
            continue
        ranked = rank_targets(scorer(B, items, searched), items, searched, device=device,
                              batch_size=users_per_batch(num_items))
        validation[lam] = rank_metrics(ranked["rank"], ks=(10,))["ndcg@10"]
        best = max(validation, key=validation.get)
        if not candidates and len(validation) < len(grid) + EXTEND and best in (min(validation), max(validation)):
            # the best at an end of what was tried: one doubling (or halving) further
            candidates.append(float(f"{best * 2 if best == max(validation) else best / 2:.3g}"))
    del searched_gram
    if not validation:
        return Fit(reason=NOT_FACTORED.format(lam=max(grid)))
    best = max(validation, key=validation.get)
    report(f"EASE: fitting with λ = {best:g} on all {dataset.num_items:,} items")
    test_gram = gram(dataset.items, dataset.offsets[:-1], sequences.known_ends(dataset, "test"), dataset.num_items)
    try:
        B = weights(test_gram.to(device), best, overwrite=True)
    except torch.linalg.LinAlgError:
        return Fit(reason=NOT_FACTORED.format(lam=best))
    del test_gram
    return Fit(scorer(B, dataset.items, test), best, validation, len(searched), num_items,
               time.perf_counter() - started)


# EASE depends on the data alone, not on the run: a run reuses what an earlier run on the same data stored.

def fingerprint(dataset, *settings) -> str:
    """What EASE's test results depend on: every user's sequence, how λ is searched, and the caller's
    settings (the seed of the sampled negatives, the length of the lists kept)."""
    digest = hashlib.sha256()
    for array in (dataset.offsets, dataset.items):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    digest.update(repr((VERSION, LAMBDA_SCALES, EXTEND, SEARCH_ITEMS, VALIDATION_USERS, settings)).encode())
    return digest.hexdigest()


def store(path, key: str, summary: dict, ranked: dict) -> None:
    """Keep EASE's test results (rank, sampled_rank, top from evaluate.rank_targets) with their fingerprint."""
    with open(path, "wb") as file:  # a file object: np.savez would add ".npz" to a name
        np.savez_compressed(file, fingerprint=np.array(key), summary=np.array(json.dumps(summary)), **ranked)


def find_stored(paths, key: str) -> dict | None:
    """{"summary", "ranked"} from the first of `paths` (files store() wrote) with this fingerprint, or None.
    Read without pickle; anything unreadable is passed over."""
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["fingerprint"]) != key:
                    continue
                summary = json.loads(str(stored["summary"]))
                ranked = {name: stored[name] for name in ("rank", "sampled_rank", "top")}
        except (OSError, ValueError, KeyError):
            continue
        return {"summary": summary | {"reused_from": Path(path).parent.parent.name}, "ranked": ranked}
    return None
