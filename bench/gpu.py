"""Every GPU figure in one run, for generated logs of three public shapes. Prints one JSON line.

    python -m bench.gpu                                  # on a CUDA machine: all three shapes
    python -m bench.gpu --shapes games --epochs 3        # one shape
    python -m bench.gpu --device cpu --scale 0.01        # a smoke run on any machine

For each shape: the log is generated with sasrec.synthetic.generate_log (Zipf catalog,
planted chains), then trained in this process by the engine's own train() with the
settings it chooses (plus the shape's maxlen and, for the largest, the sampled loss),
validating every epoch. Reported: the median epoch time, positions per second, peak GPU
memory, and the time to the quality target: the first validation whose NDCG@10 beats the
better of the Markov and most-popular baselines on the same split.

Targets on one H100 (issue "GPUs and more than one machine"): games-shaped epoch <= 0.25 s,
ml-1m-shaped <= 0.5 s, ml-20m-shaped <= 10 s with the sampled loss.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.machine import machine_info
from sasrec import sequences
from sasrec.config import DataConfig, RunConfig, configs
from sasrec.dataset import Preprocessing, build_dataset
from sasrec.evaluate import markov_scorer, popularity_scorer, rank_metrics, rank_targets
from sasrec.readers import Columns
from sasrec.synthetic import generate_log
from sasrec.train import train

# users, items, events, maxlen, settings given beyond the engine's own choices
SHAPES = {
    "games": dict(users=31_000, items=24_000, events=287_000, maxlen=50, settings={}),
    "ml-1m": dict(users=6_040, items=3_400, events=1_000_000, maxlen=200, settings={}),
    "ml-20m": dict(users=138_000, items=27_000, events=20_000_000, maxlen=200, settings={"loss": "sampled-ce"}),
}


def baseline_ndcg(dataset, device) -> float:
    """The better baseline's validation NDCG@10: what SASRec has to beat."""
    split = sequences.holdout(dataset, "valid")
    best = 0.0
    for scorer in (markov_scorer, popularity_scorer):
        ranks = rank_targets(scorer(dataset, split, "valid", device), dataset.items, split, device=device,
                             batch_size=64)["rank"]
        best = max(best, rank_metrics(ranks, ks=(10,))["ndcg@10"])
    return best


def bench_shape(name: str, shape: dict, scale: float, epochs: int, device: str, folder: Path) -> dict:
    events = max(int(shape["events"] * scale), 1000)
    items = max(int(shape["items"] * min(1.0, scale * 10)), 100)
    interactions, _ = generate_log(events, items, seed=0, median_length=shape["events"] / shape["users"])
    dataset = build_dataset(interactions, Columns("user_id", "item_id", "timestamp"),
                            preprocessing=Preprocessing(drop_duplicates=False), source=name)
    target = baseline_ndcg(dataset, "cpu")

    settings = {"maxlen": shape["maxlen"], "epochs": epochs, "patience": epochs, "eval_every": 1, "device": device,
                **shape["settings"]}
    config = RunConfig(*configs("auto", **settings), DataConfig(path="", name=name))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.time()
    result = train(dataset, config, folder / name)
    wall = time.time() - started
    metrics = [json.loads(line) for line in (folder / name / "metrics.jsonl").read_text().splitlines()]
    recorded = json.loads((folder / name / "config.json").read_text())
    reached = next((m for m in metrics if m.get("valid_ndcg@10", 0) > target), None)
    steady = [m["epoch_seconds"] for m in metrics[1:]] or [metrics[0]["epoch_seconds"]]  # epoch 1 warms up
    return {
        "shape": name, "users": dataset.num_users, "items": dataset.num_items, "events": dataset.num_events,
        "settings": {k: recorded["train"].get(k, recorded["model"].get(k)) for k in
                     ("loss", "batch_size", "lr", "maxlen", "num_negatives")},
        "device": recorded["device_name"], "epochs": len(metrics), "wall_seconds": round(wall, 1),
        "epoch_seconds_median": round(statistics.median(steady), 3),
        "epoch_seconds": [round(m["epoch_seconds"], 3) for m in metrics],
        "positions_per_second": round(statistics.median(m["examples_per_second"] for m in metrics[1:] or metrics)),
        "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if device == "cuda" else None,
        "baseline_valid_ndcg@10": round(target, 4),
        "best_valid_ndcg@10": round(max(m.get("valid_ndcg@10", 0) for m in metrics), 4),
        "seconds_to_beat_baseline": round(reached["elapsed_seconds"], 1) if reached else None,
        "test_ndcg@10": result.get("test", {}).get("ndcg@10"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each shape's events (for smoke runs)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shapes = [bench_shape(name, SHAPES[name], args.scale, args.epochs, args.device, Path(tmp))
                  for name in args.shapes]
    print(json.dumps({"bench": "gpu", "machine": machine_info(), "scale": args.scale, "shapes": shapes}))


if __name__ == "__main__":
    main()
