"""How long reading and cleaning a large interaction log takes. Prints one JSON line.

    python -m bench.read_speed                 # a 1,000,000-row CSV, 3 repeats
    python -m bench.read_speed --rows 5000000 --repeat 5

Writes a synthetic CSV (user_id, item_id, rating, timestamp) to a temporary folder, then
times load_dataset on it: reading, id mapping, ordering and the default preprocessing.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sasrec.dataset import load_dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    log = pd.DataFrame({
        "user_id": rng.integers(1, args.rows // 50, args.rows),
        "item_id": rng.zipf(1.3, args.rows) % 50_000,
        "rating": rng.integers(1, 6, args.rows),
        "timestamp": rng.integers(1_500_000_000, 1_700_000_000, args.rows),
    })
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.csv"
        log.to_csv(path, index=False)
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            dataset = load_dataset(path)
            seconds.append(time.perf_counter() - started)
        print(json.dumps({"rows": args.rows, "file_mb": round(path.stat().st_size / 1e6, 1),
                          "users": dataset.num_users, "items": dataset.num_items,
                          "median_seconds": round(statistics.median(seconds), 2),
                          "all_seconds": [round(s, 2) for s in seconds]}))


if __name__ == "__main__":
    main()
