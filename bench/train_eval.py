"""Train and evaluate SASRec on a dataset, several times, and print one JSON line.

    python -m bench.train_eval ../shared/data/ml-100k                      # defaults (SASRec+)
    python -m bench.train_eval ../shared/data/ml-100k --repeat 5 -- --preset paper --epochs 20

Everything after `--` goes to `python -m sasrec train`. Each repeat uses seed 42 + i and
runs in its own process, timed from the command's start to its end (data loading,
training with early stopping, and the final test evaluation). The JSON holds the dataset
statistics, the config, medians over the repeats (and every repeat's value), full-ranking
and sampled NDCG@10/HR@10 on test, and the most-popular and Markov baselines.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sasrec.rundir import Run

ROOT = Path(__file__).resolve().parents[1]


REPORTED = ["ndcg@10", "hr@10", "mrr", "sampled_ndcg@10", "sampled_hr@10", "pop_ndcg@10", "pop_hr@10",
            "markov_ndcg@10", "markov_hr@10"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--repeat", type=int, default=3)
    args, train_flags = parser.parse_known_args()
    train_flags = [f for f in train_flags if f != "--"]

    repeats = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            out = Path(tmp) / f"run{i}"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sasrec", "train", args.data, "--out", str(out),
                            "--seed", str(42 + i), *train_flags], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - started
            run = Run(out)
            epochs = run.metrics()
            repeats.append({"wall_seconds": wall, "epochs": len(epochs),
                            "seconds_per_epoch": statistics.median(m["epoch_seconds"] for m in epochs),
                            "best_epoch": run.status()["best_epoch"], **{k: run.test_metrics()[k] for k in REPORTED}})
            config = run.config()
            print(f"repeat {i + 1}/{args.repeat}: {json.dumps(repeats[-1])}", file=sys.stderr)

    median = {key: statistics.median(r[key] for r in repeats) for key in repeats[0]}
    better_baseline = max(median["pop_ndcg@10"], median["markov_ndcg@10"])
    print(json.dumps({
        "data": args.data, "train_flags": train_flags, "dataset": config["dataset"],
        "model": config["model"], "train": config["train"], "device": config["device_name"],
        "repeats": args.repeat, "median": median, "ndcg@10_over_better_baseline": median["ndcg@10"] / better_baseline,
        "all": repeats,
    }))


if __name__ == "__main__":
    main()
