"""What running the last block for the newest position alone saves: a validation (full-ranking
NDCG@10 over the validation users, as the trainer runs it every few epochs) and the insights'
attention agreement, timed with SASRec.last_hidden as it is and with the whole forward pass's last
position instead, alternating in one process. Untrained weights, the data's default maxlen.

    python -m bench.last_position ../shared/data/ml-100k
    python -m bench.last_position ../shared/data/amazon/Beauty.txt --maxlen 50 --users 2000

One JSON line: median seconds over --rounds for each, and the machine.
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch

from bench.machine import machine_info
from sasrec import explain, insights, sequences
from sasrec.dataset import load_dataset
from sasrec.evaluate import validation_metrics
from sasrec.model import SASRec, SASRecConfig


def whole_forward(model, items, need_weights=False, head_mask=None):
    """last_hidden as it was: every block at every position, then the last position."""
    hidden, attention = model(items, need_weights, head_mask)
    return hidden[:, -1], attention


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--maxlen", type=int, default=200)
    parser.add_argument("--users", type=int, default=2000, help="validation users, at most")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dataset = load_dataset(args.data)
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=dataset.num_items, maxlen=args.maxlen, dropout=0.3)).eval()
    split = sequences.holdout(dataset, "valid")
    split = split.subset(np.arange(min(len(split), args.users)))
    ways = {"last_position_alone": model.last_hidden,
            "whole_forward": lambda *a, **k: whole_forward(model, *a, **k)}
    seconds = {f"{task}_{way}": [] for task in ("validation", "agreement") for way in ways}
    for _ in range(args.rounds):
        for way, last_hidden in ways.items():
            model.last_hidden = last_hidden  # the instance's, for this round
            started = time.perf_counter()
            validation_metrics(model, dataset, split, torch.device("cpu"))
            seconds[f"validation_{way}"].append(time.perf_counter() - started)
            started = time.perf_counter()
            explain.agreement_over_validation(model, dataset, insights.AGREEMENT_USERS)
            seconds[f"agreement_{way}"].append(time.perf_counter() - started)
    print(json.dumps({"bench": "last_position", "data": args.data, "validation_users": len(split), "maxlen": args.maxlen,
                      "rounds": args.rounds, "median_seconds": {k: round(statistics.median(v), 3) for k, v in seconds.items()},
                      **machine_info()}))


if __name__ == "__main__":
    main()
