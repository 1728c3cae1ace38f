"""How long the evaluation written at the end of training takes (report.write_evaluation: every model and
baseline ranked for every test user, EASE fitted, the intervals, beyond-accuracy metrics, breakdowns and
the snapshots). Prints one JSON line.

    python -m bench.evaluation_step ../shared/data/amazon/Sports_and_Outdoors.txt
    python -m bench.evaluation_step DATA --run RUN_DIR     # a trained run on DATA: its weights and snapshots

Without --run, the model is untrained, with the settings the defaults choose for the data (the cost of
ranking does not depend on the weights), and --snapshots copies of it stand in for the snapshots a run
keeps (epochs 1, 2, 4, ...: seven for a run of 64-127 epochs). The figures are wall seconds and CPU
seconds (all threads): on a shared machine the wall clock mostly measures the others' load, and the CPU
seconds compare with a training run's, which keeps both cores busy.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from bench.machine import machine_info
from sasrec import defaults, report, rundir
from sasrec.config import DataConfig, RunConfig, configs
from sasrec.dataset import load_dataset
from sasrec.evaluate import evaluated_models
from sasrec.inference import Recommender
from sasrec.model import SASRec


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--run", type=Path, help="a run trained on DATA")
    parser.add_argument("--snapshots", type=int, default=7, help="stand-in snapshots, without --run")
    args = parser.parse_args()
    machine = machine_info()
    dataset = load_dataset(args.data)
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(scratch) / "run"
        if args.run:
            shutil.copytree(args.run / rundir.SNAPSHOTS, run_dir / rundir.SNAPSHOTS)
            model = Recommender.from_run(args.run).model
        else:
            config = defaults.resolve(RunConfig(*configs("auto"), data=DataConfig(path=args.data)), dataset,
                                      torch.device("cpu"))
            model = SASRec(config.model.__class__(**(config.model.to_dict() | {"num_items": dataset.num_items})))
            run_dir.mkdir()
            for epoch in [2 ** i for i in range(args.snapshots)]:
                rundir.save_snapshot(run_dir, model, epoch)
        messages = []
        started, cpu = time.perf_counter(), time.process_time()
        metrics = report.write_evaluation(run_dir, model, dataset, on_progress=messages.append)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    models = {name: {metric: [metrics[prefix + metric], *metrics["ci95"][prefix + metric]]
                     for metric in ("ndcg@10", "hr@10", "coverage@10", "avg_popularity@10")}
              for prefix, name in evaluated_models(metrics).items()}
    print(json.dumps({"data": args.data, "run": str(args.run) if args.run else None, "users": metrics["users"],
                      "items": dataset.num_items, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                      "parts_wall_s": metrics["seconds"], "ease": metrics["ease"],
                      "snapshots": len(metrics["snapshots"]), "models (value, 95% low, high)": models,
                      "versus": {baseline: tests["ndcg@10"] for baseline, tests in metrics["versus"].items()},
                      "machine": machine}))


if __name__ == "__main__":
    main()
