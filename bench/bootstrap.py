"""How long the evaluation's bootstrap takes: 1,000 resamples of the test users' per-user values.

    python -m bench.bootstrap                  # 35,000 users; 1 metric and 88 (what a run stores)
    python -m bench.bootstrap --users 200000 --repeat 7

Times sasrec.stats.resampled_means in CPU seconds and wall seconds, median over --repeat calls.
One JSON line. This was a timed unit test until a busy CI machine took 1.23 CPU-seconds for what
takes 0.51 here (median of 5; one call of the five took 1.26 here too): a speed figure belongs in a
bench that records its machine.
"""

import argparse
import json
import statistics
import time

import numpy as np

from bench.machine import machine_info
from sasrec import stats


def timed(values: np.ndarray, repeat: int) -> dict:
    cpu, wall = [], []
    for _ in range(repeat):
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        stats.resampled_means(values)
        cpu.append(time.process_time() - cpu_started)
        wall.append(time.perf_counter() - wall_started)
    return {"cpu_s": round(statistics.median(cpu), 3), "wall_s": round(statistics.median(wall), 3),
            "cpu_s_range": [round(min(cpu), 3), round(max(cpu), 3)]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=35_000)
    parser.add_argument("--metrics", type=int, default=88)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(json.dumps({"bench": "bootstrap", "users": args.users, "resamples": stats.RESAMPLES, "repeat": args.repeat,
                      "one_metric": timed(rng.random(args.users), args.repeat),
                      f"{args.metrics}_metrics": timed(rng.random((args.users, args.metrics)), args.repeat),
                      **machine_info()}))


if __name__ == "__main__":
    main()
