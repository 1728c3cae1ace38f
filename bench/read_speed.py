"""How long reading and cleaning a large interaction log takes. Prints one JSON line.

    python -m bench.read_speed                   # 1M rows in-process, 10M rows through the CLI, 3 repeats
    python -m bench.read_speed --big-rows 0      # without the 10M-row run
    python -m bench.read_speed --rows 5000000 --repeat 5

Writes synthetic CSVs (user_id, item_id, rating, timestamp) to a temporary folder, then:
- "in_process": times load_dataset on the --rows file (reading, id mapping, ordering, the default
  preprocessing), medians over --repeat runs;
- "cli_stats": runs `python -m sasrec stats FILE` on the --big-rows file in a child process, its
  wall time (Python start-up and imports included), its CPU time (user + system: what the wall time
  would be near on one free core, whatever else the machine runs) and its peak resident memory,
  medians over --repeat runs;
- "amazon": load_dataset on ../shared/data/amazon/*.txt (one line per user), where that folder exists.
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

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from bench.machine import machine_info
from sasrec.dataset import load_dataset

REPO = Path(__file__).resolve().parents[1]
AMAZON = REPO.parent / "shared" / "data" / "amazon"


def write_log(path: Path, rows: int) -> None:
    """About 50 events per user, Zipf-popular items, ratings 1-5, epoch seconds over six years, random order."""
    rng = np.random.default_rng(0)
    table = pa.table({"user_id": rng.integers(1, rows // 50, rows), "item_id": rng.zipf(1.3, rows) % 50_000,
                      "rating": rng.integers(1, 6, rows), "timestamp": rng.integers(1_500_000_000, 1_700_000_000, rows)})
    with open(path, "wb") as f:
        f.write(b"user_id,item_id,rating,timestamp\n")
        pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False))


def time_in_process(path: Path, repeat: int) -> dict:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        dataset = load_dataset(path)
        seconds.append(time.perf_counter() - started)
    return {"file": path.name, "file_mb": round(path.stat().st_size / 1e6, 1), "users": dataset.num_users,
            "items": dataset.num_items, "events": dataset.num_events,
            "median_seconds": round(statistics.median(seconds), 3), "all_seconds": [round(s, 3) for s in seconds]}


def time_cli_stats(path: Path, repeat: int) -> dict:
    """Wall time, CPU time and peak RSS of `python -m sasrec stats`, each run its own child (os.wait4 gives
    its rusage)."""
    seconds, cpu, peaks = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "sasrec", "stats", str(path), "--json"], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        output = child.stdout.read()
        error = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
        seconds.append(time.perf_counter() - started)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"sasrec stats failed: {error.decode()[-2000:]}")
        cpu.append(usage.ru_utime + usage.ru_stime)
        peaks.append(usage.ru_maxrss / 2**20)  # KiB on Linux -> GiB
    stats = json.loads(output)
    return {"command": f"python -m sasrec stats {path.name}", "file_mb": round(path.stat().st_size / 1e6, 1),
            "users": stats["users"], "items": stats["items"], "events": stats["interactions"],
            "median_seconds": round(statistics.median(seconds), 2), "all_seconds": [round(s, 2) for s in seconds],
            "median_cpu_seconds": round(statistics.median(cpu), 2), "all_cpu_seconds": [round(c, 2) for c in cpu],
            "median_peak_rss_gb": round(statistics.median(peaks), 2), "all_peak_rss_gb": [round(p, 2) for p in peaks]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the in-process log")
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="rows of the CLI log (0: skip)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    result = {"machine": machine_info(), "repeat": args.repeat}
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / f"log_{args.rows}.csv"
        write_log(small, args.rows)
        result["in_process"] = time_in_process(small, args.repeat) | {"rows": args.rows}
        small.unlink()
        if args.big_rows:
            big = Path(tmp) / f"log_{args.big_rows}.csv"
            write_log(big, args.big_rows)
            result["cli_stats"] = time_cli_stats(big, args.repeat) | {"rows": args.big_rows}
    if AMAZON.is_dir():
        result["amazon"] = [time_in_process(path, args.repeat) for path in sorted(AMAZON.glob("*.txt"))]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
