"""Train and evaluate SASRec on a dataset, several times, and print one JSON line.

    python -m bench.train_eval ../shared/data/ml-100k                      # the defaults, chosen from the data
    python -m bench.train_eval ../shared/data/ml-100k --repeat 5 -- --preset paper --epochs 20

Everything after `--` goes to `python -m sasrec train`. Each repeat uses seed 42 + i and
runs in its own process (--parallel of them side by side), timed from the command's start to its end (data loading,
training with early stopping, and the final test evaluation over every user with the
baselines). The JSON holds the machine (bench/machine.py), the dataset statistics, the
config with what the defaults chose and why, medians over the repeats with their ranges
(min, max) and every repeat's values: full-ranking and sampled NDCG@10/HR@10 on test, the
most-popular and Markov baselines, and SASRec's ratio to the better baseline per metric.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import machine_info
from sasrec.rundir import Run

ROOT = Path(__file__).resolve().parents[1]


REPORTED = ["ndcg@10", "hr@10", "mrr", "sampled_ndcg@10", "sampled_hr@10", "pop_ndcg@10", "pop_hr@10",
            "markov_ndcg@10", "markov_hr@10", "ease_ndcg@10", "ease_hr@10"]  # EASE: when the catalog allowed it


def over_better_baseline(metrics: dict, metric: str) -> float:
    return metrics[metric] / max(metrics.get(prefix + metric, 0.0) for prefix in ("pop_", "markov_", "ease_"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=1,
                        help="repeats run side by side (each run's wall time then includes the others' load)")
    args, train_flags = parser.parse_known_args()
    train_flags = [f for f in train_flags if f != "--"]
    machine = machine_info()  # before the runs, so that its matmul does not compete with them

    with tempfile.TemporaryDirectory() as tmp:
        runs = [Path(tmp) / f"run{i}" for i in range(args.repeat)]
        commands = [[sys.executable, "-m", "sasrec", "train", args.data, "--out", str(out), "--seed", str(42 + i),
                     *train_flags] for i, out in enumerate(runs)]
        walls = {}
        for first in range(0, args.repeat, args.parallel):
            started = time.perf_counter()
            batch = {i: subprocess.Popen(commands[i], cwd=ROOT, stdout=subprocess.DEVNULL)
                     for i in range(first, min(first + args.parallel, args.repeat))}
            while batch:  # each run's wall time ends when its own process does
                for i, process in list(batch.items()):
                    if process.poll() is None:
                        continue
                    if process.returncode:
                        raise SystemExit(f"repeat {i + 1} failed ({process.returncode})")
                    walls[i] = time.perf_counter() - started
                    del batch[i]
                time.sleep(0.2)
        repeats = []
        for i, out in enumerate(runs):
            run = Run(out)
            epochs, test = run.metrics(), run.test_metrics()
            validated = [m["valid_ndcg@10"] for m in epochs if "valid_ndcg@10" in m]
            status = run.status()
            repeats.append({"wall_seconds": walls[i], "epochs": sum(m.get("epoch_fraction", 1.0) for m in epochs),
                            "ended_by": status.get("ended_by"),
                            "evaluation_seconds": status.get("evaluation_seconds"),
                            "seconds_per_epoch": statistics.median(m["epoch_seconds"] for m in epochs),
                            "best_epoch": status["best_epoch"], "best_valid_ndcg@10": max(validated),
                            **{k: test[k] for k in REPORTED if k in test},
                            "ndcg@10_over_markov": test["ndcg@10"] / test["markov_ndcg@10"],
                            "ndcg@10_over_better_baseline": over_better_baseline(test, "ndcg@10"),
                            "hr@10_over_better_baseline": over_better_baseline(test, "hr@10")})
            config = run.config()
            print(f"repeat {i + 1}/{args.repeat}: {json.dumps(repeats[-1])}", file=sys.stderr)

    numbers = [key for key, value in repeats[0].items() if isinstance(value, (int, float))]
    median = {key: statistics.median(r[key] for r in repeats) for key in numbers}
    spread = {key: [min(r[key] for r in repeats), max(r[key] for r in repeats)] for key in numbers}
    print(json.dumps({
        "data": args.data, "train_flags": train_flags, "dataset": config["dataset"],
        "model": config["model"], "train": config["train"], "chosen": config.get("chosen", {}),
        "device": config["device_name"], "repeats": args.repeat, "parallel": args.parallel, "median": median, "range": spread,
        "all": repeats, "machine": machine, "load_average_after": list(os.getloadavg()),
    }))


if __name__ == "__main__":
    main()
