"""How long the Playground takes, on the server, from an edit of the history to new predictions.

    python -m bench.playground_latency                       # 200-item history, 25,000-item catalog
    python -m bench.playground_latency --items 100000 --search-items 1000000

Builds an untrained SASRec with the default architecture over a synthetic catalog in
memory (no data files), then times what the page does after each edit: the top-k with
the attention weights (Recommender.recommend), the rank moves since the previous edit and
the table shown (state.what_if's comparison and charts.prediction_table). Every timed edit
appends one item to a 200-item history, so each run is a new input. The same edits are
timed with one attention head switched off (--heads-off, the Playground's head switches),
alone and with what else the Playground computes on every edit, "why this prediction?"
(explain.removal_effects) and its chart; these report the process's CPU time too, the
figure the Playground's budget of 60 ms per edit is about. Also times the type-ahead search
over a catalog of --search-items items. Prints one JSON line with medians and 90th
percentiles over --repeat edits, after --warmup untimed ones, and the machine's load
average. Torch uses one thread, as in the app (app.py), unless --threads says otherwise.
"""

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.machine import machine_info
from sasrec.explain import removal_effects
from sasrec.inference import Recommender
from sasrec.model import SASRec, SASRecConfig
from sasrec.search import SubstringIndex
from sasrec.ui import charts

ROOT = Path(__file__).resolve().parents[1]
logging.getLogger("streamlit").setLevel(logging.ERROR)  # ui's caches warn outside a running app


WORDS = ("Harbor", "Iron", "Silent", "Golden", "Midnight", "Paper", "Velvet", "Northern", "Hollow", "Crimson",
         "Glass", "Silver", "Winter", "Summer", "Broken", "Wild", "Quiet", "Distant", "Lucky", "Electric")
CATEGORIES = ("Drama", "Comedy", "Horror", "Sci-Fi", "Romance", "Thriller", "Animation", "Documentary")


def catalog(num_items: int, rng) -> pd.DataFrame:
    first, second = rng.choice(np.array(WORDS), (2, num_items))
    titles = [f"{a} {b} {i}" for i, (a, b) in enumerate(zip(first, second))]
    return pd.DataFrame({"item_id": pd.array([f"i{i:06d}" for i in range(1, num_items + 1)], dtype="string"),
                         "title": pd.array(titles, dtype="string"),
                         "category": pd.array(rng.choice(np.array(CATEGORIES), num_items), dtype="string")},
                        index=pd.RangeIndex(1, num_items + 1, name="item"))


def percentiles(seconds: list[float], prefix: str = "") -> dict:
    ms = sorted(s * 1000 for s in seconds)
    return {f"{prefix}median_ms": round(statistics.median(ms), 2), f"{prefix}p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2)}


def timed_edits(recommender, history: list[str], ids, rng, args, explain: bool) -> dict:
    """Median wall and CPU time of the Playground's work per edit (see the module's docstring)."""
    shown, wall, cpu = None, [], []
    for edit in range(args.warmup + args.repeat):
        history = history[1:] + [str(rng.choice(ids))]
        started, started_cpu = time.perf_counter(), time.process_time()
        result = recommender.recommend(history, k=args.k)
        table = charts.prediction_table(result.items, shown, target=history[0])
        if explain:
            explanation = removal_effects(recommender, history)
            charts.why_chart(explanation.effects, None).to_dict()
        if edit >= args.warmup:
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        shown = list(result.items["item_id"])
    assert "change" in table and len(table) == args.k
    return percentiles(wall) | percentiles(cpu, "cpu_") | {"runs": args.repeat}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=25_000, help="catalog size")
    parser.add_argument("--history", type=int, default=200, help="history length (the model's maxlen is 200)")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the app uses 1)")
    parser.add_argument("--search-items", type=int, default=1_000_000, help="catalog size for the search timing")
    parser.add_argument("--heads-off", default="1,1", help="the head switched off, as layer,head (1-based)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)

    recommender = Recommender(SASRec(SASRecConfig(num_items=args.items, maxlen=200)), catalog(args.items, rng))
    ids = recommender.catalog["item_id"].to_numpy()
    history = list(rng.choice(ids, args.history))
    layer, head = (int(n) - 1 for n in args.heads_off.split(","))
    masked = recommender.without_heads([(layer, head)])
    edits = timed_edits(recommender, history, ids, rng, args, explain=False)
    masked_edits = timed_edits(masked, history, ids, rng, args, explain=False)
    masked_edits_why = timed_edits(masked, history, ids, rng, args, explain=True)

    titles = catalog(args.search_items, rng)
    started = time.perf_counter()
    index = SubstringIndex(titles["item_id"], titles["title"])
    build_seconds = time.perf_counter() - started
    queries = ["h", "ho", "hol", "holl", "hollow", "hollow s", "i0123", "zzz", "Velvet Paper 99999"]
    search_seconds, scan_seconds = [], []
    for query in queries * 3:
        started = time.perf_counter()
        titles.iloc[index.find(query, 9)]
        search_seconds.append(time.perf_counter() - started)
    lowered = titles["title"].str.lower()
    for query in queries:
        started = time.perf_counter()
        titles[lowered.str.contains(query.lower(), regex=False)].head(9)
        scan_seconds.append(time.perf_counter() - started)

    print(json.dumps({
        "catalog_items": args.items, "history": args.history, "k": args.k,
        "model": recommender.model.config.to_dict() | {"num_items": args.items},
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_average": os.getloadavg()[0],
        "torch": torch.__version__,
        "edit_to_predictions": edits,
        "heads_off": [[layer + 1, head + 1]],
        "edit_to_predictions_heads_off": masked_edits,
        "edit_to_predictions_and_why_heads_off": masked_edits_why | {"target_cpu_ms": 60},
        "search": percentiles(search_seconds) | {"max_ms": round(max(search_seconds) * 1000, 2),
                                                 "catalog_items": args.search_items, "runs": len(search_seconds),
                                                 "index_build_s": round(build_seconds, 2)},
        "pandas_str_contains": percentiles(scan_seconds) | {"runs": len(scan_seconds)},
        "machine": machine_info(),
    }))


if __name__ == "__main__":
    main()
