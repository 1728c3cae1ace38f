"""Training: batches, losses, and the loop that writes a run directory.

An epoch visits every position of every user's training sequence once, as in the paper.
A sequence longer than maxlen is cut from the end into windows of maxlen positions, so
old positions are trained on too. The windows are built once as two integer matrices
and kept on the device; an epoch is a permutation of their rows.
"""

import math
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import defaults, rundir
from .evaluate import validation_metrics, validation_users
from .model import SASRec
from .report import write_evaluation
from .sequences import training_windows


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if name not in available:
        raise rundir.RunError(f"unknown device {name!r}: choose auto, cpu, cuda or mps")
    if not available[name]:
        raise rundir.RunError(f"device {name!r} was asked for but is not available on this machine")
    return torch.device(name)


def sequence_loss(model, inputs, targets, loss: str, num_negatives: int = 256):
    """Mean loss over the real (non-padding) positions of a batch."""
    hidden, _ = model(inputs)
    is_target = targets != 0
    hidden, targets = hidden[is_target], targets[is_target]  # (M, d), (M,)
    table = model.item_embedding.weight  # (N+1, d)
    num_items = table.shape[0] - 1
    if loss == "ce":  # over items 1..N; slicing the table, not the logits, keeps the backward small
        return F.cross_entropy(hidden @ table[1:].T, targets - 1)
    if loss == "bce":  # the positive's term plus the negative's, as in the paper
        candidates = torch.stack([targets, negatives_excluding(targets, num_items)], dim=1)  # (M, 2)
        logits = (hidden[:, None] * F.embedding(candidates, table)).sum(-1)  # (M, 2)
        labels = torch.tensor([1.0, 0.0], device=logits.device).expand_as(logits)
        return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(1).mean()
    # sampled-ce: one shared set of negatives per batch; a negative that is some row's positive is masked out there.
    negatives = torch.randint(1, num_items + 1, (num_negatives,), device=targets.device)
    positive_logits = (hidden * table[targets]).sum(-1, keepdim=True)  # (M, 1)
    negative_logits = (hidden @ table[negatives].T).masked_fill(negatives[None] == targets[:, None], float("-inf"))
    logits = torch.cat([positive_logits, negative_logits], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def length_batches(lengths: np.ndarray, batch_size: int, rng) -> list[np.ndarray]:
    """Batches of windows of similar length, in random order.

    Each batch is cut to its longest window, so grouping by length keeps the padding, and
    the attention cost that grows with the square of the width, small. Windows of equal
    length are shuffled among themselves, and the order of the batches is random.
    """
    order = np.lexsort((rng.random(len(lengths)), lengths))
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def negatives_excluding(positives, num_items: int):
    """One uniform negative per positive, never equal to it: draw from the N-1 other
    items, then shift the draws at or above the positive up by one."""
    negatives = torch.randint(1, num_items, positives.shape, device=positives.device)
    return negatives + (negatives >= positives).long()


class StopRequest:
    """SIGTERM, SIGINT or a STOP file in the run directory asks the loop to end cleanly."""

    def __init__(self, run_dir: Path):
        self.run = rundir.Run(run_dir)
        self.signalled = False

    def __enter__(self):
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        if self.signalled:  # a second Ctrl-C means now
            raise KeyboardInterrupt
        self.signalled = True

    def __bool__(self):
        return self.signalled or self.run.stop_requested()


class LossCurve:
    """Mean batch loss per reporting interval, thinned by halving to stay small."""

    def __init__(self, points=None, max_points: int = 1000):
        self.points = list(points or [])
        self.max_points = max_points

    def add(self, step: int, loss: float):
        self.points.append([step, round(loss, 5)])
        if len(self.points) > self.max_points:
            self.points = self.points[::2]


class Trainer:
    """One training run, step by step: set up (or restore) the model, then epochs of batches,
    each followed by validation and a checkpoint, until the budget, early stopping or a stop
    request; then the final test evaluation. The run directory says where it stands
    throughout (see rundir.py); only this process writes its status.

    on_progress(event) receives {"kind": "step", ...progress} about twice a second and
    {"kind": "epoch", ...metrics} after each epoch.
    """

    def __init__(self, dataset, config, run_dir, on_progress=None, resume: bool = False):
        self.dataset, self.run_dir, self.on_progress = dataset, Path(run_dir), on_progress
        self.run = rundir.Run(self.run_dir)
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        torch.manual_seed(config.train.seed)
        self.device = resolve_device(config.train.device)
        if not resume:  # what the config leaves open is chosen from the data (a resumed run chose already)
            config = defaults.resolve(config, dataset, self.device)
        self.config = config = replace(config, model=replace(config.model, num_items=dataset.num_items))
        self.train_config = train_config = config.train
        self.model = SASRec(config.model).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train_config.lr,
                                          betas=(0.9, train_config.beta2), fused=True)
        self.status = rundir.StatusWriter(self.run_dir)
        self.state = {"epoch": 0, "best_epoch": 0, "best_valid_ndcg@10": None, "stale": 0, "elapsed_seconds": 0.0}
        self.history, self.curve = [], LossCurve()
        if resume:
            self.restore()
        else:
            self.run.clear_outputs()
        self.rng = np.random.default_rng([train_config.seed, self.state["epoch"]])
        self.write_config()

        windows = training_windows(dataset, config.model.maxlen)
        self.inputs, self.targets = (torch.as_tensor(a, device=self.device).long() for a in windows)
        self.lengths = (self.inputs != 0).sum(1).cpu().numpy()
        self.steps_per_epoch = math.ceil(len(self.inputs) / train_config.batch_size)
        self.positions_per_epoch = int(self.lengths.sum())
        if self.positions_per_epoch == 0:
            raise rundir.RunError("no training positions: every sequence is shorter than 2 items")
        self.mean_positions = self.positions_per_epoch / self.steps_per_epoch
        self.validation_split = validation_users(dataset, train_config.valid_users, seed=train_config.seed)
        self.autocast = torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                                       enabled=bf16_autocast(self.device))

    def restore(self) -> None:
        self.state = rundir.load_checkpoint(self.run_dir / rundir.CHECKPOINT, self.model, self.optimizer)
        self.history, self.curve = self.run.metrics(), LossCurve(self.run.progress().get("loss_curve"))
        (self.run_dir / "STOP").unlink(missing_ok=True)

    def write_config(self) -> None:
        recorded = self.config.to_dict() | {
            "dataset": self.dataset.stats(), "device": str(self.device), "device_name": device_name(self.device),
            "bf16_autocast": bf16_autocast(self.device), "torch": torch.__version__, "created": time.time()}
        rundir.write_json(self.run_dir / "config.json", recorded)
        catalog = self.dataset.catalog.rename_axis("index").reset_index()
        rundir.atomic_write(self.run_dir / "items.parquet", lambda tmp: catalog.to_parquet(tmp, index=False))

    def checkpoint(self) -> None:
        rundir.save_weights(self.model, self.run_dir / "last.safetensors")
        rundir.save_checkpoint(self.run_dir / rundir.CHECKPOINT, self.model, self.optimizer, self.state)

    def report_step(self, epoch: int, step: int, epoch_started: float, mean_loss: float) -> None:
        now = time.time()
        global_step = (epoch - 1) * self.steps_per_epoch + step
        self.curve.add(global_step, mean_loss)
        seconds_per_step = (now - epoch_started) / step
        report = {"epochs": self.train_config.epochs, "steps_per_epoch": self.steps_per_epoch,
                  "device": str(self.device), "loss_curve": self.curve.points, "epoch": epoch, "step": step,
                  "global_step": global_step, "loss": mean_loss, "elapsed_seconds": now - self.started,
                  "eta_seconds": seconds_per_step * (self.train_config.epochs * self.steps_per_epoch - global_step),
                  "examples_per_second": self.positions_per_epoch * step / self.steps_per_epoch / (now - epoch_started)}
        rundir.write_json(self.run_dir / "progress.json", report)
        if self.on_progress:
            self.on_progress({"kind": "step", **report})

    def train_epoch(self, epoch: int, stop) -> dict | str:
        """One pass over the windows: the epoch's metrics, or STOPPED, or why training failed."""
        self.model.train()
        config = self.train_config
        epoch_started = last_report = time.time()
        batches = length_batches(self.lengths, config.batch_size, self.rng)
        epoch_loss = torch.zeros((), device=self.device)
        interval_loss, interval_positions = torch.zeros((), device=self.device), 0
        for step, rows in enumerate(batches, start=1):
            width = int(self.lengths[rows].max())  # trim the all-padding columns on the left
            positions = int(self.lengths[rows].sum())
            rows = torch.as_tensor(rows, device=self.device)
            with self.autocast:
                loss = sequence_loss(self.model, self.inputs[rows, -width:], self.targets[rows, -width:],
                                     config.loss, config.num_negatives)
            self.optimizer.zero_grad(set_to_none=True)
            # A batch of short windows holds fewer positions than one of long windows:
            # weighting by its share makes every position count the same, as it does
            # with random batches.
            (loss * (positions / self.mean_positions)).backward()
            self.optimizer.step()
            epoch_loss += loss.detach() * positions
            interval_loss += loss.detach() * positions
            interval_positions += positions
            if time.time() - last_report > 0.5 or step == self.steps_per_epoch:
                mean_loss = float(interval_loss) / interval_positions  # the only host sync in the loop
                if not math.isfinite(mean_loss):
                    return (f"the loss became {mean_loss} at epoch {epoch}, step {step}: "
                            f"training diverged; try a lower learning rate (now {config.lr})")
                self.report_step(epoch, step, epoch_started, mean_loss)
                interval_loss.zero_()
                interval_positions, last_report = 0, time.time()
            if stop:
                return rundir.STOPPED
        seconds = time.time() - epoch_started
        return {"epoch": epoch, "loss": float(epoch_loss) / self.positions_per_epoch, "epoch_seconds": seconds,
                "examples_per_second": self.positions_per_epoch / seconds}

    def validate(self, metrics: dict) -> dict:
        metrics = metrics | validation_metrics(self.model, self.dataset, self.validation_split, self.device)
        best = self.state["best_valid_ndcg@10"]
        if best is None or metrics["valid_ndcg@10"] > best:
            self.state |= {"best_epoch": metrics["epoch"], "best_valid_ndcg@10": metrics["valid_ndcg@10"], "stale": 0}
            rundir.save_weights(self.model, self.run_dir / "best.safetensors")
        else:
            self.state["stale"] += 1
        return metrics

    def end_epoch(self, metrics: dict) -> None:
        self.state["epoch"] = metrics["epoch"]
        self.state["elapsed_seconds"] = metrics["elapsed_seconds"] = time.time() - self.started
        self.history.append(metrics)
        rundir.write_jsonl(self.run_dir / "metrics.jsonl", self.history)
        self.checkpoint()
        if self.on_progress:
            self.on_progress({"kind": "epoch", **metrics})

    def loop(self, stop) -> tuple[str, str]:
        """Epochs until the budget, early stopping, a stop request or divergence: (outcome, message)."""
        config = self.train_config
        while self.state["epoch"] < config.epochs and not stop:
            epoch = self.state["epoch"] + 1
            metrics = self.train_epoch(epoch, stop)
            if metrics == rundir.STOPPED:  # mid-epoch: keep the weights, redo this epoch on resume
                self.checkpoint()
                break
            if isinstance(metrics, str):
                return rundir.FAILED, metrics
            if epoch % config.eval_every == 0 or epoch == config.epochs:
                metrics = self.validate(metrics)
            self.end_epoch(metrics)
            if self.state["stale"] >= config.patience:
                return rundir.FINISHED, f"early stop: no validation gain for {config.patience} validations"
        if stop:
            return rundir.STOPPED, f"stopped by request after {self.state['epoch']} epochs"
        return rundir.FINISHED, f"finished {config.epochs} epochs"

    def finish(self, outcome: str, message: str) -> dict:
        summary = {"epochs": self.state["epoch"], "best_epoch": self.state["best_epoch"],
                   "best_valid_ndcg@10": self.state["best_valid_ndcg@10"],
                   "elapsed_seconds": time.time() - self.started, "device": str(self.device)}
        if outcome == rundir.FINISHED and self.state["best_valid_ndcg@10"] is not None:
            self.status.write(rundir.RUNNING, "evaluating on the test split, with the baselines")
            self.model.load_state_dict(rundir.load_weights(self.run.checkpoint("best")))
            summary["test"] = write_evaluation(self.run_dir, self.model, self.dataset, self.device)
        self.status.write(outcome, message, **summary)
        return {"state": outcome, "message": message, **summary}

    def run_all(self) -> dict:
        self.started = time.time() - self.state["elapsed_seconds"]
        self.status.write(rundir.RUNNING, f"training on {device_name(self.device)}", started=self.started)
        with StopRequest(self.run_dir) as stop:
            outcome, message = self.loop(stop)
        return self.finish(outcome, message)


def train(dataset, config, run_dir, on_progress=None, resume: bool = False) -> dict:
    """Train SASRec on `dataset` as `config` (a resolved config.RunConfig) says, writing the run
    directory; returns the final status dict."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return Trainer(dataset, config, run_dir, on_progress, resume).run_all()


def bf16_autocast(device: torch.device) -> bool:
    """Whether training computes its matmuls in bf16: on CUDA, and on CPUs with native bf16
    dot products, where it halves their time. Elsewhere a CPU would emulate bf16, slowly."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads > 1 else ''}{', bf16' if bf16_autocast(device) else ''})"
