"""EASE's cost and quality. Prints one JSON line.

    python -m bench.ease --sizes 8000 12000 18000            # ways to invert an N x N Gram matrix, timed
    python -m bench.ease --sizes 12000 --eigh 4000 8000      # ... and the eigendecomposition, at these sizes
    python -m bench.ease --data ../shared/data/amazon/Beauty.txt --scan 0.125 0.5 2 8 32

--sizes: for each N, the Gram matrix of a random sparse N-item log (about 8 items per user, like the
Amazon logs) plus λI, inverted as sasrec.ease.weights does (torch.cholesky_inverse of its Cholesky
factor) and, up to 8,000 items, by the factor with triangular solves and a product; --eigh times
torch.linalg.eigh (one decomposition would serve every λ of a grid) at the sizes given, which are
kept small because it is slow.

--data: EASE fitted on the log as the evaluation fits it (ease.fit: λ chosen on validation, refitted
for test), with its test NDCG@10 and HR@10 and the seconds each part took; --scan also prints the
validation NDCG@10 for λ at these multiples of the mean item count, to check that the grid
(ease.LAMBDA_SCALES) brackets the best value.
"""

import argparse
import json
import time

import numpy as np
import torch

from bench.machine import machine_info
from sasrec import ease, sequences
from sasrec.evaluate import rank_metrics, rank_targets, users_per_batch, validation_users


def timed(f):
    """(f(), {"wall_s", "cpu_s"}): CPU seconds too, since a shared machine's wall clock mostly measures its load."""
    started, cpu = time.perf_counter(), time.process_time()
    out = f()
    return out, {"wall_s": round(time.perf_counter() - started, 2), "cpu_s": round(time.process_time() - cpu, 2)}


def random_gram(n: int, users: int | None = None, per_user: int = 8, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    users = users or 2 * n
    popularity = 1 / np.arange(1, n + 1) ** 0.8
    items = rng.choice(np.arange(1, n + 1), size=users * per_user, p=popularity / popularity.sum()).astype(np.int32)
    starts = np.arange(users) * per_user
    G = ease.gram(items, starts, starts + per_user, n)[1:, 1:]
    G.diagonal().add_(float(G.diagonal().mean()) * 2)
    return G


def inverse_times(n: int, with_eigh: bool) -> dict:
    A = random_gram(n)
    out = {"n": n}
    P, out["cholesky_inverse"] = timed(lambda: torch.cholesky_inverse(torch.linalg.cholesky(A)))
    del P

    def cholesky_triangular():
        L = torch.linalg.cholesky(A)
        inverse_L = torch.linalg.solve_triangular(L, torch.eye(n), upper=False)
        del L
        return inverse_L.T @ inverse_L

    if n <= 8000:  # 2.5-2.6x slower at 4,000 and 8,000 items: not worth minutes at the big sizes
        P, out["cholesky_triangular"] = timed(cholesky_triangular)
        del P
    if with_eigh:
        _, out["eigh"] = timed(lambda: torch.linalg.eigh(A))
    print(json.dumps(out), flush=True)
    return out


def on_data(path: str, scan: list[float]) -> dict:
    from sasrec.dataset import load_dataset

    dataset = load_dataset(path)
    test = sequences.holdout(dataset, "test")
    out = {"data": path, "users": dataset.num_users, "items": dataset.num_items, "events": dataset.num_events}
    messages = []
    fitted, out["fit_time"] = timed(lambda: ease.fit(dataset, test, on_progress=messages.append))
    out |= fitted.summary()
    ranked, out["test_ranking_time"] = timed(lambda: rank_targets(
        fitted.score, dataset.items, test, batch_size=users_per_batch(dataset.num_items)))
    out["test"] = rank_metrics(ranked["rank"], ks=(10,))
    if scan:
        valid = validation_users(dataset, ease.VALIDATION_USERS)
        G = ease.gram(dataset.items, dataset.offsets[:-1], sequences.known_ends(dataset, "valid"), dataset.num_items)
        scale = float(G.diagonal()[1:].mean())
        out["mean_item_count"] = scale
        out["scan"] = {}
        for multiple in scan:
            B = ease.weights(G, scale * multiple)
            ranked = rank_targets(ease.scorer(B, dataset.items, valid), dataset.items, valid,
                                  batch_size=users_per_batch(dataset.num_items))
            out["scan"][f"{multiple:g}"] = rank_metrics(ranked["rank"], ks=(10,))["ndcg@10"]
            print(json.dumps({"multiple": multiple, "valid_ndcg@10": out["scan"][f"{multiple:g}"]}), flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    parser.add_argument("--eigh", type=int, nargs="*", default=[], help="sizes at which to time eigh too")
    parser.add_argument("--data", nargs="*", default=[])
    parser.add_argument("--scan", type=float, nargs="*", default=[])
    args = parser.parse_args()
    machine = machine_info()
    results = {"machine": machine, "max_items": ease.MAX_ITEMS, "lambda_scales": ease.LAMBDA_SCALES}
    sizes = sorted(set(args.sizes) | set(args.eigh))
    results["inverse"] = [inverse_times(n, n in args.eigh) for n in sizes]
    results["data"] = [on_data(path, args.scan) for path in args.data]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
