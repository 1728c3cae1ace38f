"""How long a run will take, before it starts: the training code itself, on the data, for a few steps.

    python -m sasrec.estimate --config CONFIG.json [--threads N] [--faster]    # prints one JSON line

estimate() sets the run up as `train` does (a Trainer on a scratch directory, so that what the
config leaves open is chosen by defaults.resolve exactly as in the run), trains a few steps on
the epoch's own randomly ordered batches, twice, timing the second pass, and validates a sample
of users. An epoch is then the mean step time times the steps per epoch, plus a validation; the
whole run is every epoch (an upper bound: early stopping usually ends it sooner) plus the final
test evaluation, which ranks every item for every user for SASRec and three baselines, fits EASE,
evaluates the snapshots on a sample of users and computes the insights (Pace.reserve, as training
plans it).

The app runs this in a process of its own, with the threads and priority that training will
get (Workspace.estimate), so that the timing is the run's and the app's threads stay free.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from . import rundir
from .config import RunConfig, with_settings
from .evaluate import validation_metrics
from .readers import DataError

STEPS, WARMUP = 8, 2  # timed training steps, after untimed ones
BUDGET_SECONDS = 20.0  # stop timing steps after this long (a huge catalog), once a few are timed
VALIDATION_SAMPLE = 1000  # users validated to time validation
LONG_SECONDS = 15 * 60  # a run longer than this gets faster settings offered
SCRATCH_PREFIX = ".estimate-"  # the scratch run's folder in the runs folder: a dot, so no run listing shows it


class StepClock:
    """What a Trainer polls after every step to know whether to stop: it notes the time of each
    poll and asks to stop once enough steps are timed."""

    def __init__(self, steps: int, device: torch.device, budget: float = BUDGET_SECONDS):
        self.steps, self.device, self.budget = steps, device, budget
        self.times: list[float] = []

    def __bool__(self) -> bool:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter())
        enough = len(self.times) > self.steps
        too_long = len(self.times) >= 4 and self.times[-1] - self.times[0] > self.budget
        return enough or too_long


def estimate(dataset, config: RunConfig, steps: int = STEPS, warmup: int = WARMUP, runs=None) -> dict:
    """Seconds per epoch and for the whole run of `config` on `dataset`, from timed steps. `runs`: the
    folder the run will be in, whose runs may have stored what its final evaluation would fit (EASE)."""
    from .train import Trainer  # the training code itself, so that the estimate follows it

    # In `runs`, hidden from the workspace's listing by its dot, the trainer plans beside the same
    # runs as the real one will; without it, in a folder of its own, beside none.
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=runs) as scratch:
        run_dir = Path(scratch) if runs else Path(scratch) / "alone"
        run_dir.mkdir(exist_ok=True)
        trainer = Trainer(dataset, config, run_dir)
        resolved, train = trainer.config, trainer.train_config
        trainer.started = time.time()
        # A batch of a width not seen before costs its step extra (kernels are chosen per shape: 24 ms
        # a step against 17 on the sample data), which a run pays in its first epoch only. So the
        # steps are timed on a second pass over the same batches.
        for _ in range(2):
            trainer.rng = np.random.default_rng([train.seed, 1])
            clock = StepClock(warmup + steps, trainer.device)
            trainer.train_epoch(1, clock)
        # The first poll ends step 1; each later interval is one whole step.
        intervals = np.diff(clock.times)[max(warmup - 1, 0):]
        if not len(intervals):  # an epoch of fewer steps than the warm-up: time it all
            intervals = np.diff(clock.times) if len(clock.times) > 1 else np.array([0.0])
        seconds_per_step = float(np.mean(intervals))

        split = trainer.validation_split
        sample = split.subset(np.arange(min(len(split), VALIDATION_SAMPLE)))
        started = time.perf_counter()
        validation_metrics(trainer.model, dataset, sample, trainer.device)
        seconds_per_user = (time.perf_counter() - started) / max(len(sample), 1)

    validation_seconds = seconds_per_user * len(split)
    epoch_seconds = seconds_per_step * trainer.steps_per_epoch + validation_seconds / train.eval_every
    trainer.pace.validation_seconds = validation_seconds
    test_seconds = trainer.pace.reserve()
    total_seconds = epoch_seconds * train.epochs + test_seconds
    epochs = train.epochs
    if train.time_budget:  # what the budget buys: the epochs that fit with the final evaluation
        budget = train.time_budget * 60
        epochs = min(train.epochs, max(0.0, (budget - test_seconds) / max(epoch_seconds, 1e-9)))
        total_seconds = min(total_seconds, budget)
    settings = {name: value for name, value in (("maxlen", resolved.model.maxlen), ("hidden", resolved.model.hidden),
                                                ("loss", train.loss), ("batch_size", train.batch_size),
                                                ("lr", train.lr), ("epochs", train.epochs),
                                                ("patience", train.patience))}
    return {"epoch_seconds": epoch_seconds, "total_seconds": total_seconds, "epochs": epochs,
            "epoch_limit": train.epochs, "time_budget_seconds": train.time_budget and train.time_budget * 60,
            "steps_per_epoch": trainer.steps_per_epoch, "seconds_per_step": seconds_per_step,
            "steps_timed": len(intervals), "validation_seconds": validation_seconds, "test_seconds": test_seconds,
            "settings": settings, "device": str(trainer.device), "threads": torch.get_num_threads()}


def remove_leftovers(runs, older_than: float) -> None:
    """Remove the scratch folders that estimates killed over `older_than` seconds ago left in `runs`
    (an estimate's own cleanup dies with it); a younger one may be a live estimate's."""
    for folder in Path(runs).glob(SCRATCH_PREFIX + "*"):
        try:
            if folder.is_dir() and not folder.is_symlink() and time.time() - folder.stat().st_mtime > older_than:
                shutil.rmtree(folder)
        except OSError:
            pass  # another sweep took it first


def faster_settings(result: dict, num_items: int) -> dict:
    """Settings that train much faster than the estimated ones, by field name: shorter windows,
    bigger batches, sampled negatives over a big catalog, fewer epochs. {} if there are none."""
    settings, faster = result["settings"], {}
    if settings["maxlen"] > 50:
        faster["maxlen"] = 50
    if settings["hidden"] > 64:
        faster["hidden"] = 64
    if settings["batch_size"] < 128:
        faster["batch_size"] = 128
    if settings["loss"] == "ce" and num_items > 10_000:
        faster["loss"] = "sampled-ce"  # its cost does not grow with the catalog
    if settings["epochs"] > 30:
        faster["epochs"] = 30
    if settings["patience"] > 5:
        faster["patience"] = 5
    return faster


def estimate_with_faster(dataset, config: RunConfig, runs=None) -> dict:
    """estimate(), and when the run is long, the faster settings and their estimate ("faster")."""
    result = estimate(dataset, config, runs=runs)
    if result["total_seconds"] > LONG_SECONDS:
        faster = faster_settings(result, dataset.num_items)
        if faster:
            result["faster"] = estimate(dataset, with_settings(config, **faster), runs=runs) | {"changes": faster}
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sasrec.estimate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a run configuration (JSON, as in a run's config.json); "
                                                        "- reads it from stdin")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    parser.add_argument("--faster", action="store_true", help="for a long run, also estimate faster settings")
    parser.add_argument("--runs", type=Path, help="the folder the run will be in: what its runs stored (EASE's fit) "
                                                  "is not planned for again")
    args = parser.parse_args(argv)
    try:
        if args.config == "-":
            config = RunConfig.from_dict(json.loads(sys.stdin.read()))
        else:
            config = RunConfig.read(args.config)
        if args.threads:
            config = replace(config, train=replace(config.train, threads=args.threads))
        dataset = config.data.load()
        if args.runs is not None and not args.runs.is_dir():
            raise ValueError(f"--runs {args.runs} is not a folder")
        result = (estimate_with_faster if args.faster else estimate)(dataset, config, runs=args.runs)
    except (DataError, rundir.RunError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
