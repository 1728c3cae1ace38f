"""Big logs: generate one, train on it with the defaults, evaluate it; time and peak memory of each.

    python -m bench.big_logs                                  # 10M events, 1M items
    python -m bench.big_logs --events 50M --items 1M --train-seconds 60

Each phase runs in a process of its own, which reports its own peak resident memory
(getrusage), so the figures are the phase's and not the bench's:

1. generate: `python -m sasrec make-log` (a Zipf catalog cut into chains, planted chain
   continuations and category tastes: sasrec/synthetic.py);
2. train: `python -m sasrec train LOG --out RUN --epochs 1` with no other flags, stopped by a
   STOP file after --train-seconds (an epoch of 10M events takes longer than a bench should);
   the JSON keeps what the defaults chose and the training speed;
3. evaluate: the model as trained so far, on a fixed random sample of --eval-users test users,
   with the code the final test evaluation runs (full ranking over every item, most-popular and
   Markov baselines); its peak memory does not grow with the number of users, since users are
   scored in chunks of at most evaluate.MAX_SCORES scores. Also the planted-pattern check: how
   often a user whose last item has a chain successor gets it in the top 10.

Prints one JSON line.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import machine_info

ROOT = Path(__file__).resolve().parents[1]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(*args, timeout=None, stop_after=None, run_dir=None) -> dict:
    """Run `python -m bench.big_logs --phase ...` and return the JSON line it prints last."""
    process = subprocess.Popen([sys.executable, "-m", "bench.big_logs", *map(str, args)], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    if stop_after is not None:
        from sasrec.rundir import Run

        deadline = time.time() + stop_after
        while process.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        if process.poll() is None:
            Run(run_dir).request_stop()
    out, _ = process.communicate(timeout=timeout)
    if process.returncode:
        raise SystemExit(f"phase {args[1]} failed ({process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def phase_generate(folder, events, items, seed):
    from sasrec.cli import main as sasrec

    started = time.perf_counter()
    sasrec(["make-log", str(folder), "--events", str(events), "--items", str(items), "--seed", str(seed)])
    size = sum(p.stat().st_size for p in Path(folder).iterdir())
    return {"seconds": time.perf_counter() - started, "bytes_on_disk": size}


def phase_train(folder, run_dir):
    from sasrec.cli import main as sasrec
    from sasrec.rundir import Run

    started = time.perf_counter()
    sasrec(["train", str(folder), "--out", str(run_dir), "--epochs", "1"])
    run = Run(run_dir)
    config, progress = run.config(), run.progress()
    train, model = config["train"], config["model"]
    return {"seconds": time.perf_counter() - started, "state": run.status()["state"], "dataset": config["dataset"],
            "chosen": config["chosen"], "model": model, "train": train, "device": config["device_name"],
            "steps": progress.get("global_step"), "positions_per_second": progress.get("examples_per_second"),
            # what one step's score tensor would hold with a full softmax: batch windows x maxlen x catalog, fp32
            "full_softmax_scores_bytes": train["batch_size"] * model["maxlen"] * (model["num_items"] + 1) * 4}


def phase_evaluate(folder, run_dir, users, seed):
    import numpy as np
    import pandas as pd

    from sasrec import evaluate, sequences
    from sasrec.dataset import load_dataset
    from sasrec.inference import Recommender
    from sasrec.synthetic import next_in_chain

    started = time.perf_counter()
    dataset = load_dataset(folder)
    loaded = time.perf_counter() - started
    model = Recommender.from_run(run_dir, "last").model
    test = sequences.holdout(dataset, "test")
    rows = np.sort(np.random.default_rng(seed).choice(len(test), size=min(users, len(test)), replace=False))
    split = test.subset(rows)
    negatives = evaluate.sample_negatives(dataset, split.users, seed=seed)
    common = dict(negatives=negatives, batch_size=evaluate.users_per_batch(dataset.num_items))
    scorers = {"": evaluate.sasrec_scorer(model.eval(), dataset.items, split, "cpu"),
               "pop_": evaluate.popularity_scorer(dataset, split, "test", "cpu"),
               "markov_": evaluate.markov_scorer(dataset, split, "test", "cpu")}
    metrics, seconds, ranks = {}, {}, {}
    for prefix, scorer in scorers.items():
        began = time.perf_counter()
        ranked = evaluate.rank_targets(scorer, dataset.items, split, **common)
        seconds[prefix + "seconds"] = time.perf_counter() - began
        ranks[prefix] = ranked["rank"]
        metrics |= evaluate.rank_metrics(ranked["rank"], ks=(10,), prefix=prefix)
        metrics |= evaluate.rank_metrics(ranked["sampled_rank"], ks=(10,), prefix=prefix + "sampled_")
    # The planted pattern: users whose last item has a successor in its chain, and whose target is it.
    items = pd.read_parquet(Path(folder) / "items.parquet")
    successor = next_in_chain(items)
    internal = pd.Series(np.arange(len(dataset.item_ids)), index=dataset.item_ids)
    last = dataset.item_ids[dataset.items[split.ends - 1]].astype(np.int64)
    nxt = np.array([successor.get(int(i), 0) for i in last])
    follows = (nxt > 0) & (internal.reindex(nxt.astype(str)).to_numpy() == split.targets)
    chain = {f"{p}hr@10_on_chain_continuations": float((ranks[p][follows] <= 10).mean()) for p in scorers}
    return {"load_seconds": loaded, "users": len(split), "of_users": len(test), **metrics, **seconds,
            "chain_continuations": int(follows.sum()), **chain,
            "users_per_chunk": common["batch_size"], "dataset_items": dataset.num_items}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", default="10M")
    parser.add_argument("--items", default="1M")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-seconds", type=float, default=180)
    parser.add_argument("--eval-users", type=int, default=5000)
    parser.add_argument("--phase", choices=["generate", "train", "evaluate"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        if args.phase == "generate":
            result = phase_generate(args.folder, args.events, args.items, args.seed)
        elif args.phase == "train":
            result = phase_train(args.folder, args.run)
        else:
            result = phase_evaluate(args.folder, args.run, args.eval_users, args.seed)
        print(json.dumps(result | {"peak_rss_mib": round(peak_mib())}))
        return

    with tempfile.TemporaryDirectory(prefix="big-log-") as tmp:
        folder, run_dir = Path(tmp) / "log", Path(tmp) / "run"
        generated = child("--phase", "generate", "--folder", folder, "--events", args.events, "--items", args.items,
                          "--seed", args.seed)
        print(f"generated: {json.dumps(generated)}", file=sys.stderr)
        trained = child("--phase", "train", "--folder", folder, "--run", run_dir, stop_after=args.train_seconds,
                        run_dir=run_dir)
        print(f"trained: {json.dumps(trained)}", file=sys.stderr)
        evaluated = child("--phase", "evaluate", "--folder", folder, "--run", run_dir, "--eval-users",
                          args.eval_users, "--seed", args.seed)
    print(json.dumps({"events": args.events, "items": args.items, "generate": generated, "train": trained,
                      "evaluate": evaluated, "machine": machine_info()}))


if __name__ == "__main__":
    main()
