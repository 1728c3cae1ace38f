"""Training: batches, losses, and the loop that writes a run directory.

An epoch visits every position of every user's training sequence once, as in the paper.
A sequence longer than maxlen is cut from the end into windows of maxlen positions, so
old positions are trained on too. The windows are built once as two integer matrices
and kept on the device; an epoch is a permutation of their rows.
"""

import gc
import math
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from . import defaults, rundir
from .distributed import Distributed
from .evaluate import validation_metrics, validation_users
from .losses import negative_log_q, sequence_loss
from .model import SASRec
from .report import extra_seconds, ranked_users, write_evaluation
from .schedule import FIRST_PLAN_STEPS, Pace, Schedule, duration
from .sequences import holdout, training_windows


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' (CUDA, then Apple MPS, then the CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'; RunError when
    the device is not there."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = str(name).partition(":")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if kind not in available or (index and (kind != "cuda" or not index.isdigit())):
        raise rundir.RunError(f"unknown device {name!r}: choose auto, cpu, cuda, cuda:N or mps")
    if not available[kind] or (index and int(index) >= torch.cuda.device_count()):
        raise rundir.RunError(f"device {name!r} was asked for but is not available on this machine")
    return torch.device(name)


def length_batches(lengths: np.ndarray, batch_size: int, rng) -> list[np.ndarray]:
    """Batches of windows of similar length, in random order.

    Each batch is cut to its longest window, so grouping by length keeps the padding, and
    the attention cost that grows with the square of the width, small. Windows of equal
    length are shuffled among themselves, and the order of the batches is random.
    """
    order = np.lexsort((rng.random(len(lengths)), lengths))
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


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


class StepModel(torch.nn.Module):
    """The loss of a batch as a module's forward, so that DistributedDataParallel sees every use
    of the shared item table (input lookup and output scores) inside one forward."""

    def __init__(self, model: SASRec):
        super().__init__()
        self.model = model

    def forward(self, inputs, targets, loss: str, num_negatives: int, item_log_q=None):
        return sequence_loss(self.model, inputs, targets, loss, num_negatives, item_log_q)


# With several processes, ranks agree on stopping and divergence every this many steps: often
# enough to stop within a second, rarely enough to cost nothing next to the gradient all-reduce.
SYNC_EVERY = 16


class Trainer:
    """One training run, step by step: set up (or restore) the model, then epochs of batches,
    each followed by validation and a checkpoint, until the budget, early stopping or a stop
    request; then the final test evaluation. The run directory says where it stands
    throughout (see rundir.py); only this process (rank 0 under torchrun) writes it.

    on_progress(event) receives {"kind": "step", ...progress} about twice a second and
    {"kind": "epoch", ...metrics} after each epoch.
    """

    def __init__(self, dataset, config, run_dir, on_progress=None, resume: bool = False,
                 dist: Distributed = Distributed()):
        self.dataset, self.run_dir, self.dist = dataset, Path(run_dir), dist
        self.on_progress = on_progress if dist.is_main else None
        self.run = rundir.Run(self.run_dir)
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        torch.manual_seed(config.train.seed + dist.rank)  # dropout masks differ by rank; the weights are rank 0's
        self.device = dist.device(resolve_device(config.train.device))
        if not resume:  # what the config leaves open is chosen from the data (a resumed run chose already)
            config = defaults.resolve(config, dataset, self.device)
        config = replace(config, model=replace(config.model, num_items=dataset.num_items), world_size=dist.world_size)
        if dist.active:
            config = replace(config, chosen=config.chosen | {"lr_scaling": LR_SCALING.format(n=dist.world_size)})
        self.config, self.train_config = config, config.train
        self.model = SASRec(config.model).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.train_config.lr,
                                          betas=(0.9, self.train_config.beta2), fused=True)
        self.precision = precision(self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == torch.float16)
        self.status = rundir.StatusWriter(self.run_dir) if dist.is_main else None
        self.state = {"epoch": 0, "best_epoch": 0, "best_valid_ndcg@10": None, "stale": 0, "elapsed_seconds": 0.0}
        self.history, self.curve = [], LossCurve()
        self.ended_by = None  # budget, epochs or early stopping, once the run has finished
        self.announced = False  # whether on_progress has had the plan
        if dist.is_main:
            self.run.remove_temporaries()
        if resume:
            self.restore()
        elif dist.is_main:
            self.run.clear_outputs()
        if dist.is_main:
            self.write_config()
        # Batch order: one stream from the start, or from where a resumed run was; every rank draws
        # the same batches from it and takes its own share (epoch_batches).
        self.rng = np.random.default_rng([config.train.seed, self.state["epoch"]])
        # After the restore: DDP makes every rank start from rank 0's weights.
        step_model = StepModel(self.model)
        self.step_model = DistributedDataParallel(step_model) if dist.active else step_model

        self.validation_split = validation_users(dataset, self.train_config.valid_users, seed=self.train_config.seed)
        windows = training_windows(dataset, config.model.maxlen, validated=self.validation_split.users)
        self.inputs, self.targets = (torch.as_tensor(a, device=self.device).long() for a in windows)
        self.item_log_q = (negative_log_q(self.targets, dataset.num_items) if self.train_config.loss == "sampled-ce"
                           else None)
        self.lengths = (self.inputs != 0).sum(1).cpu().numpy()
        batches = math.ceil(len(self.inputs) / self.train_config.batch_size)
        self.steps_per_epoch = max(batches // dist.world_size, 1)  # per rank
        self.positions_per_epoch = int(self.lengths.sum())
        if self.positions_per_epoch == 0:
            raise rundir.RunError("no training positions: every sequence is shorter than 2 items")
        self.mean_positions = self.positions_per_epoch / batches
        budget = self.train_config.time_budget
        self.schedule = Schedule(self.train_config.lr, self.steps_per_epoch, self.train_config.epochs,
                                 budget_seconds=budget * 60 if budget else None)
        self.global_step = self.first_step = self.state["epoch"] * self.steps_per_epoch  # this rank's steps so far
        share = defaults.validation_share(config.model, self.train_config, dataset.num_items, self.positions_per_epoch,
                                          len(self.validation_split), np.diff(dataset.offsets))
        self.pace = Pace(self.steps_per_epoch, self.train_config.eval_every, share, len(self.validation_split),
                         ranked_users(len(holdout(dataset, "test")), self.train_config.epochs, config.model),
                         extra_seconds(self.run_dir, self.model, dataset) if dist.is_main else 0.0)  # rank 0 plans
        if resume:  # the pace it trained at, so that a resumed run plans at once (more time: a later end)
            self.pace.seconds_per_step = next((m["epoch_seconds"] / self.steps_per_epoch for m in reversed(self.history)
                                               if "epoch_seconds" in m and "epoch_fraction" not in m), None)
            self.pace.validation_seconds = next((m["validation_seconds"] for m in reversed(self.history)
                                                 if "validation_seconds" in m), None)
        self.autocast = torch.autocast(device_type=self.device.type, dtype=self.precision or torch.float32,
                                       enabled=self.precision is not None)

    def restore(self) -> None:
        self.state = rundir.load_checkpoint(self.run_dir / rundir.CHECKPOINT, self.model, self.optimizer)
        self.history, self.curve = self.run.metrics(), LossCurve(self.run.progress().get("loss_curve"))
        if self.dist.is_main:
            (self.run_dir / "STOP").unlink(missing_ok=True)

    def write_config(self) -> None:
        recorded = self.config.to_dict() | {
            "dataset": self.dataset.stats(), "device": str(self.device), "device_name": self.device_name(),
            "precision": str(self.precision).removeprefix("torch.") if self.precision else "float32",
            "torch": torch.__version__, "created": time.time()}
        rundir.write_json(self.run_dir / "config.json", recorded)
        catalog = self.dataset.catalog.rename_axis("index").reset_index()
        rundir.atomic_write(self.run_dir / "items.parquet", lambda tmp: catalog.to_parquet(tmp, index=False))

    def device_name(self) -> str:
        name = device_name(self.device, self.precision)
        return f"{name} x {self.dist.world_size} processes" if self.dist.active else name

    def checkpoint(self) -> None:
        if self.dist.is_main:
            rundir.save_weights(self.model, self.run_dir / "last.safetensors")
            rundir.save_checkpoint(self.run_dir / rundir.CHECKPOINT, self.model, self.optimizer, self.state)

    def report_step(self, epoch: int, step: int, epoch_started: float, mean_loss: float) -> None:
        now = time.time()
        self.curve.add(self.global_step, mean_loss)
        schedule = self.schedule
        report = {"epochs": self.train_config.epochs, "steps_per_epoch": self.steps_per_epoch,
                  "device": str(self.device), "loss_curve": self.curve.points, "epoch": epoch, "step": step,
                  "global_step": self.global_step, "loss": mean_loss, "elapsed_seconds": now - self.started,
                  "end_step": schedule.end_step, "planned_epochs": schedule.end_step / self.steps_per_epoch,
                  "ends_by_budget": schedule.ends_by_budget(), "budget_seconds": schedule.budget_seconds,
                  "learning_rate": schedule.learning_rate(self.global_step),
                  "eta_seconds": self.pace.seconds_left(self.global_step, schedule.end_step),
                  "seconds_per_step": self.pace.seconds_per_step,
                  "examples_per_second": self.positions_per_epoch * step / self.steps_per_epoch / (now - epoch_started)}
        rundir.write_json(self.run_dir / "progress.json", report)
        if self.on_progress:
            self.on_progress({"kind": "step", **report})

    def set_learning_rate(self) -> None:
        """The schedule's rate for the next step; with several processes, times the linear scaling
        with warm-up for their larger global batch (see LR_SCALING)."""
        lr = self.schedule.learning_rate(self.global_step)
        if self.dist.active:
            warm = min(1.0, (self.global_step + 1) / self.steps_per_epoch)
            lr *= 1 + (self.dist.world_size - 1) * warm
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def plan(self) -> None:
        """Rank 0 plans when training ends, at the pace measured so far (Schedule.plan)."""
        if self.dist.is_main:
            self.schedule.plan(self.global_step, time.time() - self.started, self.pace)
            if not self.announced and self.on_progress:
                self.on_progress({"kind": "plan", **self.plan_summary()})
                self.announced = True

    def plan_summary(self) -> dict:
        schedule, pace = self.schedule, self.pace
        return {"end_step": schedule.end_step, "epochs": schedule.end_step / self.steps_per_epoch,
                "epoch_limit": schedule.epoch_limit, "budget_seconds": schedule.budget_seconds,
                "ends_by_budget": schedule.ends_by_budget(),
                "epoch_seconds": (pace.seconds_per_step or 0.0) * self.steps_per_epoch,
                "seconds_left": pace.seconds_left(self.global_step, schedule.end_step)}

    def epoch_batches(self) -> list[np.ndarray]:
        """This rank's batches of the epoch: every rank draws the same shuffled batches, then takes
        every world_size-th, so that ranks share the epoch and each runs the same number of steps."""
        batches = length_batches(self.lengths, self.train_config.batch_size, self.rng)
        return batches[self.dist.rank: self.steps_per_epoch * self.dist.world_size: self.dist.world_size]

    def train_epoch(self, epoch: int, stop) -> dict | str:
        """One pass over the windows: the epoch's metrics, or STOPPED, or why training failed."""
        self.step_model.train()
        config = self.train_config
        epoch_started = last_report = time.time()
        epoch_loss = torch.zeros((), device=self.device)
        interval_loss, interval_positions = torch.zeros((), device=self.device), 0
        batches = self.epoch_batches()
        # The epoch's window order goes to the device once; a step slices it there.
        order = torch.as_tensor(np.concatenate(batches), device=self.device)
        ends = np.cumsum([len(rows) for rows in batches])
        steps_at_start, seen = self.global_step, 0
        for step, rows in enumerate(batches, start=1):
            width = int(self.lengths[rows].max())  # trim the all-padding columns on the left
            positions = int(self.lengths[rows].sum())
            self.set_learning_rate()
            rows = order[ends[step - 1] - len(rows): ends[step - 1]]
            with self.autocast:
                loss = self.step_model(self.inputs[rows, -width:], self.targets[rows, -width:], config.loss,
                                       config.num_negatives, self.item_log_q)
            self.optimizer.zero_grad(set_to_none=True)
            # A batch of short windows holds fewer positions than one of long windows:
            # weighting by its share makes every position count the same, as it does
            # with random batches.
            self.scaler.scale(loss * (positions / self.mean_positions)).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            epoch_loss += loss.detach().float() * positions
            interval_loss += loss.detach().float() * positions
            interval_positions += positions
            seen += positions
            self.global_step += 1
            self.pace.seconds_per_step = (time.time() - epoch_started) / step
            if self.global_step - self.first_step == FIRST_PLAN_STEPS:  # the first plan from measured steps
                self.plan()
            if self.dist.is_main and self.schedule.out_of_time(time.time() - self.started, self.pace):
                self.schedule.end_step = self.global_step
            # With several processes, every rank learns of the end at the same sync point.
            planned_end = not self.dist.active and self.schedule.done(self.global_step)
            last = step == len(batches) or planned_end
            if self.dist.active:  # every rank reaches the same sync points, and leaves together
                if step % SYNC_EVERY and not last:
                    continue
                # Rank 0's plan goes to every rank with the sums: all ranks use one learning rate.
                main_end = float(self.schedule.end_step if self.dist.is_main else 0)
                totals = torch.tensor([0.0, float(interval_positions), float(bool(stop)), main_end], device=self.device)
                totals[0] = interval_loss
                loss_sum, counted, stopping, end_step = self.dist.sum(totals).tolist()
                self.schedule.end_step = int(end_step)
                planned_end = self.schedule.done(self.global_step)
            elif stop:
                return rundir.STOPPED
            elif time.time() - last_report > 0.5 or last:
                loss_sum, counted, stopping = float(interval_loss), interval_positions, 0.0  # the only host sync
            else:
                continue
            mean_loss = loss_sum / counted
            if not math.isfinite(mean_loss):
                return (f"the loss became {mean_loss} at epoch {epoch}, step {step}: "
                        f"training diverged; try a lower learning rate (now {config.lr})")
            if stopping:
                return rundir.STOPPED
            if self.dist.is_main and (time.time() - last_report > 0.5 or last):
                self.report_step(epoch, step, epoch_started, mean_loss)
                last_report = time.time()
            interval_loss.zero_()
            interval_positions = 0
            if planned_end:
                break
        seconds = time.time() - epoch_started
        epoch_loss = self.dist.sum(epoch_loss).item()
        seen = int(self.dist.sum(torch.tensor(float(seen), device=self.device)).item())
        metrics = {"epoch": epoch, "loss": epoch_loss / max(seen, 1), "epoch_seconds": seconds,
                   "examples_per_second": seen / seconds}
        steps = self.global_step - steps_at_start
        if steps < len(batches):  # the plan ended it early
            metrics["epoch_fraction"] = round(steps / len(batches), 4)
        return metrics

    def validate(self, metrics: dict) -> dict:
        started = time.time()
        metrics = metrics | validation_metrics(self.model, self.dataset, self.validation_split, self.device)
        self.pace.validation_seconds = metrics["validation_seconds"] = time.time() - started
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
        if self.dist.is_main and rundir.is_snapshot_epoch(metrics["epoch"]):  # for watching the model learn
            rundir.save_snapshot(self.run_dir, self.model, metrics["epoch"])
        if self.on_progress:
            self.on_progress({"kind": "epoch", **metrics})

    def loop(self, stop) -> tuple[str, str]:
        """Epochs until the planned end (the epoch limit or the time budget), early stopping, a stop
        request or divergence: (outcome, message)."""
        config = self.train_config
        while not self.schedule.done(self.global_step) and not self.dist.any(bool(stop), self.device):
            epoch = self.state["epoch"] + 1
            metrics = self.train_epoch(epoch, stop)
            if metrics == rundir.STOPPED:  # mid-epoch: keep the weights, redo this epoch on resume
                self.checkpoint()
                return rundir.STOPPED, f"stopped by request during epoch {epoch}, after {epoch - 1} complete epochs"
            if isinstance(metrics, str):
                return rundir.FAILED, metrics
            self.state["epoch"] = epoch
            if self.dist.is_main:
                if not self.schedule.done(self.global_step):  # plan again at the pace of the epoch just done
                    self.pace.seconds_per_step = metrics["epoch_seconds"] / self.steps_per_epoch
                    self.plan()
                if epoch % config.eval_every == 0 or self.schedule.done(self.global_step):
                    metrics = self.validate(metrics)
                self.end_epoch(metrics)
            self.schedule.end_step = int(self.dist.number_from_main(self.schedule.end_step, self.device))
            if self.schedule.done(self.global_step):
                return rundir.FINISHED, self.end_message(epoch, metrics)
            patience = self.schedule.patience(config.patience, config.eval_every)
            if self.dist.from_main(self.state["stale"] >= patience, self.device):
                self.ended_by = "early stopping"
                return rundir.FINISHED, f"early stop: no validation gain for {patience} validations"
        if not self.schedule.done(self.global_step):
            return rundir.STOPPED, f"stopped by request after {self.state['epoch']} epochs"
        return rundir.FINISHED, self.end_message(self.state["epoch"], {})

    def end_message(self, epoch: int, metrics: dict) -> str:
        """Why a run that reached its planned end ended there (and ended_by, in a word)."""
        fraction = metrics.get("epoch_fraction")
        epochs = f"{epoch - 1 + fraction:.1f} epochs" if fraction else f"{epoch} epoch{'s' * (epoch != 1)}"
        if self.schedule.ends_by_budget():
            self.ended_by = "budget"
            return f"its time budget of {duration(self.schedule.budget_seconds)} ended it after {epochs}"
        self.ended_by = "epochs"
        return f"finished {epochs}"

    def finish(self, outcome: str, message: str) -> dict:
        # Training's collectives are over: every rank drops its DDP wrapper, whose reducer keeps gloo's
        # last work and its tensors, and leaves the group here, together, while the interpreter is
        # whole. Left to the interpreter's exit, that teardown aborted rank 1 (SIGABRT) in CI.
        if self.dist.active:
            self.step_model = None
            gc.collect()
        self.dist.barrier()
        self.dist.close()
        summary = {"epochs": self.state["epoch"], "best_epoch": self.state["best_epoch"], "ended_by": self.ended_by,
                   "best_valid_ndcg@10": self.state["best_valid_ndcg@10"],
                   "elapsed_seconds": time.time() - self.started, "device": str(self.device)}
        if not self.dist.is_main:
            return {"state": outcome, "message": message, **summary}
        if outcome == rundir.FINISHED and self.state["best_valid_ndcg@10"] is not None:
            self.status.write(rundir.RUNNING, "evaluating on the test split, with the baselines "
                                              f"(about {duration(self.pace.reserve())})")
            rundir.load_model_weights(self.model, self.run.checkpoint("best"))
            evaluation_started = time.time()
            summary["test"] = write_evaluation(self.run_dir, self.model, self.dataset, self.device, on_progress=lambda
                                               message: self.status.write(rundir.RUNNING, f"evaluating: {message}"))
            summary["evaluation_seconds"] = time.time() - evaluation_started
            summary["elapsed_seconds"] = time.time() - self.started
        self.status.write(outcome, message, **summary)
        return {"state": outcome, "message": message, **summary}

    def run_all(self, started: float | None = None) -> dict:
        """Train, then evaluate. `started`: when the clock of a time budget starts (the command's
        start, so that loading the data counts too); by default, now."""
        self.started = (started or time.time()) - self.state["elapsed_seconds"]
        if self.pace.seconds_per_step is not None:
            self.plan()
        else:  # until the first steps are timed
            self.schedule.end_step = self.schedule.limit_step
        self.schedule.end_step = int(self.dist.number_from_main(self.schedule.end_step, self.device))
        if self.dist.is_main:
            self.status.write(rundir.RUNNING, f"training on {self.device_name()}", started=self.started)
        with StopRequest(self.run_dir) as stop:
            outcome, message = self.loop(stop)
        return self.finish(outcome, message)


LR_SCALING = ("linear scaling with warm-up (Goyal et al. 2017): {n} processes make the global batch {n} times "
              "larger, so the learning rate grows from 1x to {n}x over the first epoch")


def train(dataset, config, run_dir, on_progress=None, resume: bool = False,
          dist: Distributed = Distributed(), started: float | None = None) -> dict:
    """Train SASRec on `dataset` as `config` (a config.RunConfig) says, writing the run directory;
    returns the final status dict. Under torchrun, every rank calls this with its `dist`.
    `started`: see Trainer.run_all."""
    if dist.is_main:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    return Trainer(dataset, config, run_dir, on_progress, resume, dist).run_all(started)


def precision(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training on `device`, or None for fp32: bf16 where the hardware
    computes it natively (CUDA GPUs that support it; CPUs with AVX512-BF16 or AMX, where it
    halves the matmul time), fp16 with a grad scaler on older GPUs, fp32 elsewhere (a CPU
    without bf16 would emulate it, slowly). Evaluation and serving are always fp32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return torch.bfloat16
    return None


def device_name(device: torch.device, dtype: torch.dtype | None = None) -> str:
    """'CUDA (NVIDIA H100, bf16)', 'CPU (2 threads, bf16)', 'Apple GPU (MPS)'."""
    kind = {torch.bfloat16: ", bf16", torch.float16: ", fp16"}.get(dtype, "")
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)}{kind})"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads > 1 else ''}{kind})"
