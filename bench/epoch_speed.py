"""Training speed, before and after a change, in one run: positions per second and the fraction
of the machine's peak. Prints one JSON line.

    python -m bench.epoch_speed --before ed593fc                 # this checkout against a commit
    python -m bench.epoch_speed --before ed593fc --rounds 5 --workloads ce-beauty bce-games

Each workload is a log and a preset, trained by the engine's own Trainer (the code under test:
this checkout, and the --before revision checked out by `git worktree` into a temporary folder)
for a fixed number of steps of a real epoch's batches, after a warm-up, in a fresh process per
measurement. Rounds alternate the two versions, so that both see the same machine; the JSON has
the median and every round.

    ce-beauty    full softmax CE, the defaults for Amazon Beauty (12k items)     ../shared/data/amazon/Beauty.txt
    ce-beauty-b32  the same with the batch of 32 windows that was the default before (same settings)
    ce-games     full softmax CE, a generated log of the paper's Games shape (24k items, 31k users, 287k events)
    bce-games    the paper preset (BCE, d=50, maxlen 200, batch 128) on that log
    bce-ml100k   the paper preset on MovieLens 100K                                ../shared/data/ml-100k

The fraction of peak divides the arithmetic a step does (multiply-adds x 2, forward and
backward; counted from the windows: projections and feed-forward 6d^2 per position and block,
attention 2td at position t, and the scores) by the step's time and by the matmul rate measured
in the same run: a 2048^2 bf16 matmul where training runs under bf16 autocast, else fp32.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
GAMES = dict(events=287_000, items=26_000, median_length=6.5, seed=0)  # 31.6k users, 23.8k items used

WORKLOADS = {
    "ce-beauty": dict(data=str(SHARED / "amazon" / "Beauty.txt"), preset="auto", settings={}),
    "ce-beauty-b32": dict(data=str(SHARED / "amazon" / "Beauty.txt"), preset="auto", settings={"batch_size": 32}),
    "ce-games": dict(data="games", preset="auto", settings={"loss": "ce"}),
    "bce-games": dict(data="games", preset="paper", settings={}),
    "bce-ml100k": dict(data=str(SHARED / "ml-100k"), preset="paper", settings={}),
}

# Runs inside the code under test (its own sasrec package first on sys.path): only APIs that the
# versions compared share (Trainer, its train_epoch, estimate.StepClock).
MEASURE = r"""
import json, sys, tempfile, time
import numpy as np, torch
from sasrec.config import DataConfig, RunConfig, configs
from sasrec.dataset import load_dataset
from sasrec.estimate import StepClock
from sasrec.train import Trainer
spec = json.loads(sys.argv[1])
torch.set_num_threads(spec["threads"])
dataset = load_dataset(spec["data"])
config = RunConfig(*configs(spec["preset"], **spec["settings"]), DataConfig(path=spec["data"], name="bench"))
with tempfile.TemporaryDirectory() as scratch:
    trainer = Trainer(dataset, config, scratch)
    trainer.rng = np.random.default_rng([0, 1])
    trainer.started = time.time()
    # An epoch of few steps (ml-100k's paper preset: 9) is timed whole but for a quarter of it, warm-up.
    steps = len(trainer.epoch_batches())
    trainer.rng = np.random.default_rng([0, 1])
    warmup = min(spec["warmup"], steps // 4)
    clock = StepClock(min(warmup + spec["steps"], steps), trainer.device, budget=1e9)
    trainer.train_epoch(1, clock)
    trainer.rng = np.random.default_rng([0, 1])  # the same batches again, to count what the timed steps did
    order = trainer.epoch_batches()
    # A poll follows each step: the interval from poll `warmup` to the last covers the steps after it.
    seconds = clock.times[-1] - clock.times[warmup]
    timed = order[warmup + 1: len(clock.times)]
    windows = [trainer.lengths[rows] for rows in timed]
    model, train = trainer.config.model, trainer.train_config
    print(json.dumps({"seconds": seconds, "positions": int(sum(w.sum() for w in windows)),
                      "window_lengths": [w.tolist() for w in windows], "hidden": model.hidden,
                      "blocks": model.num_blocks, "items": dataset.num_items, "loss": train.loss,
                      "batch_size": train.batch_size, "maxlen": model.maxlen,
                      "precision": str(getattr(trainer, "precision", None))}))
"""


def step_flops(result: dict) -> float:
    """Floating-point operations of the timed steps (see the module's docstring)."""
    d, blocks = result["hidden"], result["blocks"]
    scored = {"ce": result["items"], "bce": 2}.get(result["loss"], 1025)
    macs = 0.0
    for lengths in result["window_lengths"]:
        for length in lengths:
            positions = length
            attention = length * (length + 1)  # 2 t d summed over t = 1..length, over d
            macs += blocks * (6 * d * d * positions + attention * d) + scored * d * positions
    return 3 * 2 * macs  # forward, and a backward of twice its cost


def games_log(folder: Path) -> str:
    from sasrec.synthetic import generate_log

    interactions, items = generate_log(GAMES["events"], GAMES["items"], seed=GAMES["seed"],
                                       median_length=GAMES["median_length"])
    interactions.to_csv(folder / "games.csv", index=False)
    return str(folder / "games.csv")


def measure(code: Path, spec: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(spec)], cwd=code, capture_output=True,
                          text=True, env=os.environ | {"PYTHONPATH": str(code)})
    if done.returncode:
        raise SystemExit(f"measuring {spec['name']} in {code} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="a git revision to compare with (default: none, this checkout only)")
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    import torch

    from bench.machine import machine_info
    from sasrec.machine import matmul_gflops

    machine = machine_info()
    bf16 = machine["bf16"]
    torch.set_num_threads(args.threads)
    peak = {"fp32": matmul_gflops()}
    if bf16:
        peak["bf16"] = matmul_gflops(dtype=torch.bfloat16)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        versions = {"after": ROOT}
        if args.before:
            subprocess.run(["git", "worktree", "add", "--detach", str(tmp / "before"), args.before], cwd=ROOT,
                           check=True, capture_output=True)
            versions = {"before": tmp / "before", "after": ROOT}
        games = games_log(tmp) if any(WORKLOADS[w]["data"] == "games" for w in args.workloads) else None
        results = {}
        try:
            for name in args.workloads:
                workload = WORKLOADS[name]
                data = games if workload["data"] == "games" else workload["data"]
                if not Path(data).exists():
                    print(f"skipping {name}: {data} is missing", file=sys.stderr)
                    continue
                spec = {"name": name, "data": data, "preset": workload["preset"], "settings": workload["settings"],
                        "steps": args.steps, "warmup": args.warmup, "threads": args.threads}
                rounds = {version: [] for version in versions}
                for _ in range(args.rounds):
                    for version, code in versions.items():
                        result = measure(code, spec)
                        flops = step_flops(result)
                        gflops = flops / result["seconds"] / 1e9
                        rounds[version].append({
                            "positions_per_second": result["positions"] / result["seconds"], "gflops": gflops,
                            "fraction_of_peak": gflops / peak["bf16" if "bfloat16" in result["precision"] else "fp32"],
                            "batch_size": result["batch_size"], "precision": result["precision"]})
                        print(f"{name} {version}: {json.dumps(rounds[version][-1])}", file=sys.stderr)
                results[name] = {version: {"median_positions_per_second": round(statistics.median(
                    r["positions_per_second"] for r in runs)), "median_fraction_of_peak": round(statistics.median(
                        r["fraction_of_peak"] for r in runs), 4), "rounds": runs} for version, runs in rounds.items()}
                if "before" in versions:
                    results[name]["speedup"] = round(results[name]["after"]["median_positions_per_second"]
                                                     / results[name]["before"]["median_positions_per_second"], 3)
        finally:
            if args.before:
                subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "before")], cwd=ROOT,
                               capture_output=True)
    print(json.dumps({"bench": "epoch_speed", "before": args.before, "threads": args.threads,
                      "matmul_2048_gflops": {k: round(v, 1) for k, v in peak.items()}, "workloads": results,
                      "machine": machine, "load_average_after": list(os.getloadavg())}))


if __name__ == "__main__":
    main()
