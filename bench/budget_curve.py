"""What a run gets for its length: test NDCG@10 of runs planned for 5, 10, 20, 40 ... epochs (the
learning rate decaying to zero at each run's end, as a time budget plans it). Prints one JSON line.

    python -m bench.budget_curve ../shared/data/amazon/Beauty.txt --epochs 5 10 20 40
    python -m bench.budget_curve ../shared/data/ml-100k --epochs 10 20 40 80 -- --dropout 0.3

Everything after `--` goes to `python -m sasrec train`. Each run has early stopping off, so that it
trains its planned epochs; "share_of_best" divides each run's test NDCG@10 by the best of them.
The Train page's estimate says where a model usually is after the epochs a time budget buys from
the workspace's own finished runs on the same data (schedule.usual_progress), not from these shares.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import machine_info
from sasrec.rundir import Run

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--seed", type=int, default=42)
    args, train_flags = parser.parse_known_args()
    train_flags = [f for f in train_flags if f != "--"]
    machine = machine_info()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for epochs in args.epochs:
            out = Path(tmp) / f"e{epochs}"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sasrec", "train", args.data, "--out", str(out), "--epochs",
                            str(epochs), "--patience", "10000", "--seed", str(args.seed), *train_flags], cwd=ROOT,
                           check=True, stdout=subprocess.DEVNULL)
            run = Run(out)
            test = run.test_metrics()
            runs.append({"epochs": epochs, "wall_seconds": round(time.perf_counter() - started, 1),
                         "test_ndcg@10": test["ndcg@10"], "test_hr@10": test["hr@10"],
                         "markov_ndcg@10": test["markov_ndcg@10"], "best_epoch": run.status()["best_epoch"]})
            print(json.dumps(runs[-1]), file=sys.stderr)
        config = run.config()
    best = max(r["test_ndcg@10"] for r in runs)
    for r in runs:
        r["share_of_best"] = round(r["test_ndcg@10"] / best, 4)
    print(json.dumps({"bench": "budget_curve", "data": args.data, "train_flags": train_flags,
                      "dataset": config["dataset"], "chosen": config.get("chosen", {}), "runs": runs,
                      "machine": machine}))


if __name__ == "__main__":
    main()
