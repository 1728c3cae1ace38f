"""Training: batches, losses, and the loop that writes a run directory.

An epoch visits every position of every user's training sequence once, as in the paper.
A sequence longer than maxlen is cut from the end into windows of maxlen positions, so
old positions are trained on too. The windows are built once as two integer matrices
and kept on the device; an epoch is a permutation of their rows.
"""

import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import rundir
from .evaluate import evaluate, left_padded, validation_metrics
from .model import SASRec, SASRecConfig

LOSSES = ("ce", "bce", "sampled-ce")


@dataclass
class TrainConfig:
    loss: str = "ce"  # "ce": full softmax (SASRec+); "bce": the paper's; "sampled-ce": for huge catalogs
    num_negatives: int = 256  # for sampled-ce
    epochs: int = 200
    # Validations without improvement before stopping. On ml-100k, validation NDCG@10 can
    # stall for 10 epochs and then climb again (bench/train_eval.py, seeds 42-46).
    patience: int = 20
    eval_every: int = 1  # epochs between validations
    lr: float = 2e-3
    beta2: float = 0.98
    # Windows, not positions, per batch. Small batches mean more updates per epoch: on
    # ml-100k, 32 at lr 2e-3 reaches a better validation score in fewer seconds than the
    # paper's 128 at 1e-3 (bench/train_eval.py).
    batch_size: int = 32
    device: str = "auto"
    seed: int = 42
    threads: int = 0  # 0 = all cores

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")


@dataclass
class Preset:
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)


PRESETS = {
    "sasrec+": Preset(),  # the defaults of SASRecConfig and TrainConfig
    "paper": Preset(
        model=dict(hidden=50, num_blocks=2, num_heads=1, dropout=0.2, maxlen=200),
        train=dict(loss="bce", lr=1e-3, beta2=0.98, batch_size=128),
    ),
    # The bundled demo model: the sample's patterns are learned in a few epochs, so it
    # retrains in under a minute on two cores.
    "demo": Preset(model=dict(maxlen=50), train=dict(epochs=10)),
}


# The CLI's names for the model settings; the training settings keep their field names.
MODEL_FLAGS = {"maxlen": "maxlen", "hidden": "hidden", "blocks": "num_blocks", "heads": "num_heads",
               "dropout": "dropout", "norm": "norm"}


def configs_from_flags(preset: str = "sasrec+", **flags) -> tuple[SASRecConfig, TrainConfig]:
    """The configs a training command builds: the defaults, the preset on top, then the
    flags (by CLI name, e.g. heads=1, batch_size=256; None means not given)."""
    given = {flag: value for flag, value in flags.items() if value is not None}
    unknown = set(given) - set(MODEL_FLAGS) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
    model = PRESETS[preset].model | {MODEL_FLAGS[f]: v for f, v in given.items() if f in MODEL_FLAGS}
    train = PRESETS[preset].train | {f: v for f, v in given.items() if f not in MODEL_FLAGS}
    return SASRecConfig(num_items=0, **model), TrainConfig(**train)


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


def training_windows(dataset, maxlen: int):
    """(inputs, targets), each (num_windows, maxlen), left-padded, over the training part
    of every sequence (all but the last two items)."""
    starts, ends = dataset.offsets[:-1], dataset.offsets[1:] - 2
    num_positions = np.maximum(ends - starts - 1, 0)  # targets are items 1.. of the sequence
    num_windows = -(-num_positions // maxlen)
    user = np.repeat(np.arange(len(starts)), num_windows)
    window = np.arange(num_windows.sum()) - np.repeat(np.cumsum(num_windows) - num_windows, num_windows)
    target_end = ends[user] - window * maxlen  # window 0 ends at the newest position
    target_start = np.maximum(starts[user] + 1, target_end - maxlen)
    targets = left_padded(dataset.items, target_start, target_end, maxlen)
    inputs = left_padded(dataset.items, target_start - 1, target_end - 1, maxlen)
    return inputs, targets


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


def train(dataset, model_config: SASRecConfig, config: TrainConfig, run_dir, data_config: dict | None = None,
          on_progress=None, resume: bool = False) -> dict:
    """Train SASRec on `dataset`, writing the run directory; returns the final status dict.

    on_progress(event) receives {"kind": "step", ...progress} about twice a second and
    {"kind": "epoch", ...metrics} after each epoch.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = resolve_device(config.device)
    model_config = replace(model_config, num_items=dataset.num_items)
    model = SASRec(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, config.beta2), fused=True)

    run = rundir.Run(run_dir)
    state = {"epoch": 0, "best_epoch": 0, "best_valid_ndcg@10": -1.0, "stale": 0, "elapsed_seconds": 0.0}
    history, curve = [], LossCurve()
    if resume:
        model.load_state_dict(rundir.load_weights(run.checkpoint("last")))
        saved = torch.load(run_dir / "optimizer.pt", weights_only=True, map_location=device)
        optimizer.load_state_dict(saved["optimizer"])
        state = rundir.read_json(run_dir / "train_state.json")
        history, curve = run.metrics(), LossCurve(run.progress().get("loss_curve"))
        rng = np.random.default_rng([config.seed, state["epoch"]])
        (run_dir / "STOP").unlink(missing_ok=True)
    else:
        for stale in ("STOP", "best.safetensors", "last.safetensors", "metrics.jsonl", "test_metrics.json"):
            (run_dir / stale).unlink(missing_ok=True)

    rundir.write_json(run_dir / "config.json", {
        "model": model_config.to_dict(), "train": asdict(config), "data": data_config or {},
        "dataset": dataset.stats(), "device": str(device), "device_name": device_name(device),
        "bf16_autocast": bf16_autocast(device), "torch": torch.__version__, "created": time.time(),
    })
    catalog = dataset.catalog.rename_axis("index").reset_index()
    rundir.atomic_write(run_dir / "items.parquet", lambda tmp: catalog.to_parquet(tmp, index=False))

    inputs, targets = (torch.as_tensor(a, device=device).long() for a in training_windows(dataset, model_config.maxlen))
    lengths = (inputs != 0).sum(1).cpu().numpy()
    steps_per_epoch = math.ceil(len(inputs) / config.batch_size)
    positions_per_epoch = int((targets != 0).sum())
    mean_positions = positions_per_epoch / steps_per_epoch
    if positions_per_epoch == 0:
        raise rundir.RunError("no training positions: every sequence is shorter than 3 items")

    def checkpoint(extra_state=None):
        rundir.save_weights(model, run_dir / "last.safetensors")
        torch.save({"optimizer": optimizer.state_dict()}, run_dir / "optimizer.pt.tmp")
        os.replace(run_dir / "optimizer.pt.tmp", run_dir / "optimizer.pt")
        rundir.write_json(run_dir / "train_state.json", state | (extra_state or {}))

    def progress(**fields):
        report = {"epochs": config.epochs, "steps_per_epoch": steps_per_epoch, "device": str(device),
                  "loss_curve": curve.points, **fields}
        rundir.write_json(run_dir / "progress.json", report)
        if on_progress:
            on_progress({"kind": "step", **report})

    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16_autocast(device))
    run_started = time.time() - state["elapsed_seconds"]
    rundir.write_status(run_dir, rundir.RUNNING, f"training on {device_name(device)}", started=run_started,
                        resumed=resume)
    outcome, message = rundir.FINISHED, ""
    with StopRequest(run_dir) as stop:
        while state["epoch"] < config.epochs and not stop:
            epoch = state["epoch"] + 1
            model.train()
            epoch_started = last_report = time.time()
            batches = length_batches(lengths, config.batch_size, rng)
            epoch_loss = torch.zeros((), device=device)
            interval_loss, interval_positions = torch.zeros((), device=device), 0
            for step in range(1, steps_per_epoch + 1):
                rows = batches[step - 1]
                width = int(lengths[rows].max())  # trim the all-padding columns on the left
                positions = int(lengths[rows].sum())
                rows = torch.as_tensor(rows, device=device)
                with autocast:
                    loss = sequence_loss(model, inputs[rows, -width:], targets[rows, -width:],
                                         config.loss, config.num_negatives)
                optimizer.zero_grad(set_to_none=True)
                # A batch of short windows holds fewer positions than one of long windows:
                # weighting by its share makes every position count the same, as it does
                # with random batches.
                (loss * (positions / mean_positions)).backward()
                optimizer.step()
                epoch_loss += loss.detach() * positions
                interval_loss += loss.detach() * positions
                interval_positions += positions
                now = time.time()
                if now - last_report > 0.5 or step == steps_per_epoch:
                    mean_loss = float(interval_loss) / interval_positions  # the only host sync in the loop
                    if not math.isfinite(mean_loss):
                        outcome = rundir.FAILED
                        message = (f"the loss became {mean_loss} at epoch {epoch}, step {step}: "
                                   f"training diverged; try a lower learning rate (now {config.lr})")
                        break
                    global_step = (epoch - 1) * steps_per_epoch + step
                    curve.add(global_step, mean_loss)
                    elapsed = now - run_started
                    seconds_per_step = (now - epoch_started) / step
                    progress(epoch=epoch, step=step, global_step=global_step, loss=mean_loss,
                             elapsed_seconds=elapsed,
                             eta_seconds=seconds_per_step * (config.epochs * steps_per_epoch - global_step),
                             examples_per_second=positions_per_epoch * step / steps_per_epoch / (now - epoch_started))
                    interval_loss.zero_()
                    interval_positions, last_report = 0, now
                if stop:
                    break
            if outcome == rundir.FAILED:
                break
            if stop:  # mid-epoch: keep the weights, redo this epoch on resume
                checkpoint()
                break

            epoch_seconds = time.time() - epoch_started
            metrics = {"epoch": epoch, "loss": float(epoch_loss) / positions_per_epoch,
                       "epoch_seconds": epoch_seconds,
                       "examples_per_second": positions_per_epoch / epoch_seconds}
            state["epoch"] = epoch
            if epoch % config.eval_every == 0 or epoch == config.epochs:
                metrics |= validation_metrics(model, dataset, device)
                if metrics["valid_ndcg@10"] > state["best_valid_ndcg@10"]:
                    state |= {"best_epoch": epoch, "best_valid_ndcg@10": metrics["valid_ndcg@10"], "stale": 0}
                    rundir.save_weights(model, run_dir / "best.safetensors")
                else:
                    state["stale"] += 1
            state["elapsed_seconds"] = metrics["elapsed_seconds"] = time.time() - run_started
            history.append(metrics)
            rundir.write_jsonl(run_dir / "metrics.jsonl", history)
            checkpoint()
            if on_progress:
                on_progress({"kind": "epoch", **metrics})
            if state["stale"] >= config.patience:
                message = f"early stop: no validation gain for {config.patience} validations"
                break

        if outcome != rundir.FAILED and stop:
            outcome, message = rundir.STOPPED, f"stopped by request after {state['epoch']} epochs"

    summary = {"epochs": state["epoch"], "best_epoch": state["best_epoch"],
               "best_valid_ndcg@10": state["best_valid_ndcg@10"], "elapsed_seconds": time.time() - run_started,
               "device": str(device), "started": run_started}
    if outcome == rundir.FINISHED:
        message = message or f"finished {config.epochs} epochs"
        model.load_state_dict(rundir.load_weights(run.checkpoint("best")))
        report = evaluate(model, dataset, "test", device=device)
        rundir.write_json(run_dir / "test_metrics.json", report.metrics)
        summary["test"] = report.metrics
    rundir.write_status(run_dir, outcome, message, **summary)
    return {"state": outcome, "message": message, **summary}


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
