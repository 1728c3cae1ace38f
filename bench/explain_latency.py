"""How long "why this prediction?" and two models side by side take on the server, with the
bundled demo model (sample_data/demo_run) or another run.

    python -m bench.explain_latency
    python -m bench.explain_latency --history 50 --repeat 50
    python -m bench.explain_latency --run workspace/runs/NAME   # another run directory

Times, on one torch thread as in the app (app.py):
- removal: explain.removal_effects for a history of --history items (the demo model reads 50),
  every removal in one batched forward pass; the target is <= 100 ms;
- removal_and_replacement: the same with the optional replacement of each item by its most
  similar other item (a second pass);
- removal_and_gradients: the same with the integrated gradients of the target's score
  (explain.GRADIENT_STEPS points in one batch), as the Playground's "Gradients" switch shows them;
- counterfactual_flip: counterfactual.search for the fewest edits that put another item first,
  and counterfactual_bring for those that bring the item at rank 2k into the top k; the
  target is <= 1 s each (found or not: a search that finds nothing runs all its steps);
- recommend: Recommender.recommend alone, for scale;
- side_by_side: what the Playground adds for a second model: the second model's top-k and the
  table of both (charts.side_by_side); the second model is the demo's first snapshot if it
  has one, else its last checkpoint;
- agreement: explain.agreement_over_validation over --agreement-users validation users, the
  Attention page's aggregate with the three-way comparison of attention, removal and
  gradients (computed once per run, when it finishes: insights.py);
- insights: everything insights.compute stores in a finished run (head importance, example
  customers, the agreement), once.

Each history is a new draw of catalog items. Prints one JSON line: medians and 90th
percentiles over --repeat runs after --warmup untimed ones, and the machine (bench.machine).
"""

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.machine import machine_info
from sasrec import counterfactual, explain, insights, report, rundir
from sasrec.inference import Recommender, load_run_dataset
from sasrec.ui import charts
from sasrec.workspace import DEMO_RUN

logging.getLogger("streamlit").setLevel(logging.ERROR)  # ui's caches warn outside a running app


def percentiles(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    return {"median_ms": round(statistics.median(ms), 2), "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
            "runs": len(ms)}


def timed(function, inputs, warmup: int) -> dict:
    seconds = []
    for index, value in enumerate(inputs):
        started = time.perf_counter()
        function(value)
        if index >= warmup:
            seconds.append(time.perf_counter() - started)
    return percentiles(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=50, help="history length (the demo model reads 50)")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the app uses 1)")
    parser.add_argument("--agreement-users", type=int, default=300)
    parser.add_argument("--agreement-repeat", type=int, default=3)
    parser.add_argument("--run", type=Path, default=DEMO_RUN, help="run directory (default: the bundled demo model)")
    args = parser.parse_args()
    if not (args.run / "config.json").exists():
        sys.exit(f"no run directory at {args.run}")
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    first = Recommender.from_run(args.run)
    snapshots = rundir.Run(args.run).snapshots()
    second_checkpoint = f"epoch-{snapshots[0]:04d}" if snapshots else "last"
    second = Recommender.from_run(args.run, second_checkpoint)
    ids = first.catalog["item_id"].to_numpy()
    histories = [list(rng.choice(ids, args.history, replace=False)) for _ in range(args.warmup + args.repeat)]

    def side_by_side(history):
        shown = first.recommend(history, k=args.k)  # on the page already, for the first model
        started = time.perf_counter()
        other = second.recommend(history, k=args.k)
        charts.side_by_side(shown.items, other.items)
        return time.perf_counter() - started

    side_seconds = [side_by_side(h) for h in histories][args.warmup:]
    explained = explain.removal_effects(first, histories[-1])
    assert len(explained.effects) == min(args.history, first.maxlen)
    searches = {"flip": [], "bring": []}  # (result, CPU seconds)
    for history in histories:
        target = first.recommend(history, k=2 * args.k).items["item_id"].iloc[-1]
        for goal in searches:
            started = time.process_time()
            found = counterfactual.search(first, history, goal, target=target if goal == "bring" else None, k=args.k)
            searches[goal].append((found, time.process_time() - started))

    def search_summary(searched: list) -> dict:
        found, cpu = zip(*searched[args.warmup:])
        return percentiles([f.seconds for f in found]) | {
            "max_ms": round(max(f.seconds for f in found) * 1000, 2), "cpu_median_ms": round(statistics.median(cpu) * 1000, 2),
            "cpu_max_ms": round(max(cpu) * 1000, 2), "target_ms": 1000, "found": sum(f.found for f in found),
            "median_edits": statistics.median(len(f.edits) for f in found),
            "median_histories_scored": statistics.median(f.candidates for f in found)}

    dataset = load_run_dataset(args.run)
    agreement_seconds, agreement = [], None
    for _ in range(args.agreement_repeat):
        started = time.perf_counter()
        agreement = explain.agreement_over_validation(first.model, dataset, args.agreement_users)
        agreement_seconds.append(time.perf_counter() - started)

    started = time.perf_counter()
    insights.compute(first.model, dataset, report.read_evaluation(args.run)["per_user"])
    insights_seconds = time.perf_counter() - started

    print(json.dumps({
        "machine": machine_info(),
        "model": first.model.config.to_dict(), "run": args.run.name, "snapshots": snapshots,
        "history": args.history, "items_read": len(explained.effects), "k": args.k,
        "removal": timed(lambda h: explain.removal_effects(first, h), histories, args.warmup) | {"target_ms": 100},
        "removal_and_replacement": timed(lambda h: explain.removal_effects(first, h, replace=True), histories,
                                         args.warmup),
        "removal_and_gradients": timed(lambda h: explain.removal_effects(first, h, gradients=True), histories,
                                       args.warmup) | {"steps": explain.GRADIENT_STEPS},
        "counterfactual_flip": search_summary(searches["flip"]),
        "counterfactual_bring": search_summary(searches["bring"]) | {"from_rank": 2 * args.k},
        "recommend": timed(lambda h: first.recommend(h, k=args.k), histories, args.warmup),
        "side_by_side": percentiles(side_seconds) | {"second_model": f"{args.run.name} at {second_checkpoint}"},
        "agreement": percentiles(agreement_seconds) | {"users": agreement["users"], "rates": agreement["rates"],
                                                       "three_way": agreement["agreement"]},
        "insights_s": round(insights_seconds, 2),
    }))


if __name__ == "__main__":
    main()
