"""The run directory: what a training process writes and what the app and the CLI read.

    config.json          the run's RunConfig (config.py), with what was chosen and the dataset's shape
    launch.json          written once by whoever started the process (the app): its pid and start time
    queued.json          while the run waits for a training slot (training_queue.py): when, by whom, its place
    status.json          {"state": running|finished|stopped|failed, "message": ...}; only the trainer writes it
    progress.json        the latest step: epoch, step, ETA, a thinned loss curve
    metrics.jsonl        one JSON object per epoch
    best.safetensors     weights with the best validation NDCG@10
    last.safetensors     weights at the end of the latest epoch (or at the stop)
    checkpoint.safetensors  weights, optimizer state and counters in one file, for resuming
    snapshots/epoch-0004.safetensors  weights at epochs 1, 2, 4, 8, ..., within SNAPSHOT_BUDGET_BYTES
    items.parquet        internal id -> original id, title, category
    test_metrics.json    test-split report, written once training has ended
    evaluation/          everything the Evaluate page shows, written once at the end (report.py)
    insights.json        head importance, example customers, attribution agreement, at the end (insights.py)
    train.log            the process's output, when the app started it
    STOP                 created by anyone who wants the run to end

Every file is replaced atomically (write a temporary file, then rename), so a reader never
sees half a file, and a process killed at any moment leaves the previous complete version.
Weights are safetensors and state is JSON: nothing read from a run directory is unpickled.
"""

import json
import os
import re
import time
from pathlib import Path

import psutil
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .files import atomic_write

RUNNING, FINISHED, STOPPED, FAILED = "running", "finished", "stopped", "failed"
INTERRUPTED = "interrupted"  # the status says running, but its process has gone
QUEUED = "queued"  # waiting for a training slot: nothing runs for it yet
QUEUE_FILE = "queued.json"
CHECKPOINT = "checkpoint.safetensors"
OUTPUTS = ("STOP", "best.safetensors", "last.safetensors", CHECKPOINT, "metrics.jsonl", "progress.json",
           "test_metrics.json", "insights.json")
SNAPSHOTS = "snapshots"
# The most disk one run's snapshots take (the demo model's are 0.75 MB each); an epoch whose
# snapshot would pass it keeps none, so a big model keeps its earliest epochs only.
SNAPSHOT_BUDGET_BYTES = 64 * 2**20
SNAPSHOT_FILE = re.compile(r"epoch-(\d{4,})\.safetensors")


class RunError(Exception):
    """A run directory that is missing, incomplete or not usable as asked."""


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=1, default=str)))


def read_json(path: Path, default=None):
    """The JSON in `path`, or `default` if the file is missing or is not JSON (a file is only ever
    replaced whole, so an unreadable one was not written by this program)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError, json.JSONDecodeError):
        return default


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in rows)))


def read_jsonl(path: Path) -> list[dict]:
    try:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    return [row for row in rows if isinstance(row, dict)]


def save_weights(model: torch.nn.Module, path: Path) -> None:
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; RunError, never a traceback, for anything else."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(f"{Path(path).name} in run {Path(path).parent.name} is not a readable safetensors weights "
                       f"file ({type(err).__name__}: {str(err)[:120]})") from err


def load_model_weights(model: torch.nn.Module, path: Path) -> None:
    """Load weights into `model`; RunError if they are not this model's (another size, missing tensors)."""
    try:
        model.load_state_dict(load_weights(path))
    except RuntimeError as err:
        raise RunError(f"{Path(path).name} in run {Path(path).parent.name} does not fit the model its config.json "
                       f"describes: {str(err).splitlines()[0][:160]}") from err


def is_snapshot_epoch(epoch: int) -> bool:
    """Epochs 1, 2, 4, 8, 16, ...: log-spaced, since a model changes most early on, and a long
    run keeps few."""
    return epoch > 0 and epoch & (epoch - 1) == 0


def save_snapshot(run_dir: Path, model: torch.nn.Module, epoch: int) -> Path | None:
    """Keep the weights after `epoch` as snapshots/epoch-NNNN.safetensors, for watching the model
    learn; None (nothing written) when the run's snapshots would pass SNAPSHOT_BUDGET_BYTES."""
    folder = Path(run_dir) / SNAPSHOTS
    size = sum(v.numel() * 4 for v in model.state_dict().values())  # saved as float32
    used = sum(path.stat().st_size for path in folder.glob("epoch-*.safetensors"))
    if used + size > SNAPSHOT_BUDGET_BYTES:
        return None
    folder.mkdir(exist_ok=True)
    path = folder / f"epoch-{epoch:04d}.safetensors"
    save_weights(model, path)
    return path


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Weights, optimizer moments and the loop's counters in one atomically written file, so that a
    kill at any moment leaves either the previous checkpoint or this one, never a mix."""
    tensors = {f"model.{k}": v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    saved = optimizer.state_dict()
    for index, moments in saved["state"].items():
        for name, value in moments.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().float().cpu().contiguous()
    groups = [{k: v for k, v in group.items()} for group in saved["param_groups"]]
    metadata = {"state": json.dumps(state), "param_groups": json.dumps(groups)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def checkpoint_state(path: Path) -> dict:
    """The loop's counters saved with a checkpoint (epoch, elapsed_seconds, ...), without loading
    its tensors; RunError if it is not a checkpoint."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return json.loads((f.metadata() or {})["state"])
    except (KeyError, json.JSONDecodeError, SafetensorError, OSError) as err:
        raise RunError(f"{Path(path).name}: not a resumable checkpoint ({err})") from err


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore what save_checkpoint wrote; returns the loop's counters."""
    from safetensors import safe_open

    tensors = load_weights(path)
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
        state, groups = json.loads(metadata["state"]), json.loads(metadata["param_groups"])
    except (KeyError, json.JSONDecodeError, SafetensorError) as err:
        raise RunError(f"{Path(path).name}: not a resumable checkpoint ({err})") from err
    model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    moments: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            moments.setdefault(int(index), {})[name] = value
    for group in groups:
        group["betas"] = tuple(group["betas"]) if "betas" in group else group.get("betas")
    device = next(model.parameters()).device
    optimizer.load_state_dict({"state": {i: {k: (v if k == "step" else v.to(device)) for k, v in m.items()}
                                         for i, m in moments.items()}, "param_groups": groups})
    return state


def process_identity(pid: int | None = None) -> dict:
    """{"pid", "process_started", "started_since_boot"}: a process named so that a later process that
    reuses its pid is not taken for it. "process_started" is wall-clock time, for people and for time
    budgets; is_alive compares "started_since_boot", which no change of the system clock moves."""
    process = psutil.Process(pid)
    return {"pid": process.pid, "process_started": process.create_time(), "started_since_boot": _since_boot(process)}


def _since_boot(process: psutil.Process) -> float:
    # psutil adds the boot time to the kernel's ticks-since-boot, and it reads the boot time from the
    # clock now: a clock adjustment (NTP) moves it, and a live trainer would look interrupted (the
    # likeliest cause of a run that one CI run could not stop). Taking it back off leaves the ticks.
    return process.create_time() - psutil.boot_time()


def is_alive(identity: dict) -> bool:
    """Whether the process `identity` names is still running (not a reused pid, not a zombie)."""
    try:
        process = psutil.Process(int(identity["pid"]))
        same = abs(_since_boot(process) - float(identity["started_since_boot"])) < 0.01
        return same and process.status() != psutil.STATUS_ZOMBIE
    except (KeyError, TypeError, ValueError, psutil.Error):
        return False


class StatusWriter:
    """The training process's status.json. It alone writes the file, whole, from what it holds:
    no other process reads it back and rewrites it."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "status.json"
        self.identity = process_identity()
        self.fields = {}

    def write(self, state: str, message: str = "", **fields) -> None:
        self.fields |= fields
        write_json(self.path, {"state": state, "message": message, **self.identity, **self.fields,
                               "updated": time.time()})


class Run:
    """Read-only view of a run directory, for the CLI and the app."""

    def __init__(self, path, name: str | None = None):
        self.path = Path(path)
        self.name = name or self.path.name  # the bundled demo's folder is not its name

    def exists(self) -> bool:
        return (self.path / "config.json").is_file()

    def require(self) -> "Run":
        if not self.path.is_dir():
            raise RunError(f"{self.path}: no such run directory")
        if not self.exists():
            raise RunError(f"{self.path}: not a run directory (config.json is missing)")
        if not isinstance(self.config().get("model"), dict):
            raise RunError(f"{self.path}: config.json is not a run configuration")
        return self

    def config(self) -> dict:
        config = read_json(self.path / "config.json", {})
        return config if isinstance(config, dict) else {}

    def launch(self) -> dict:
        return read_json(self.path / "launch.json", {}) or {}

    def status(self) -> dict:
        """status.json as the trainer last wrote it; or, for a run queued or launched whose trainer has
        not written yet, its state with "earlier_seconds": the time of a resumed run's earlier sessions
        (0 for a new run), taken from the same read of status.json, which the new trainer may replace."""
        status = read_json(self.path / "status.json")
        earlier = {"earlier_seconds": status["updated"] - status["started"]
                   if isinstance(status, dict) and {"updated", "started"} <= set(status) else 0.0}
        queued = read_json(self.path / QUEUE_FILE)
        if isinstance(queued, dict):
            return {"state": QUEUED, "message": "waiting for a free training slot", **queued, **earlier}
        launch = self.launch()
        # A launch after the trainer's last word (a resumed run) is a process that has not written yet.
        # (launch.json's "started" is the launcher's clock right after the start, before the new trainer
        # can have written anything: it needs seconds to import torch. "process_started" is no good here:
        # psutil derives it from the boot time in whole seconds.)
        relaunched = isinstance(status, dict) and launch.get("started", 0) > status.get("updated", float("inf"))
        if isinstance(status, dict) and "state" in status and not relaunched:
            return status
        if launch:  # started, but the trainer has not written yet
            return {"state": RUNNING, "message": "starting: loading the data and building the model", **launch, **earlier}
        return {"state": "unknown", "message": ""}

    def state(self) -> str:
        """The status's state, or 'interrupted' when it says running but its process has gone
        (killed, or the machine restarted): such a run would otherwise look as if it ran forever."""
        status = self.status()
        if status["state"] != RUNNING or self.is_alive():
            return status["state"]
        status = self.status()  # it may have written its last status and exited meanwhile
        return INTERRUPTED if status["state"] == RUNNING else status["state"]

    def resumable(self) -> bool:
        """Stopped or interrupted, or finished by its time budget: it can train on from its checkpoint."""
        state = self.state()
        return state in (STOPPED, INTERRUPTED) or (state == FINISHED and self.status().get("ended_by") == "budget")

    def is_alive(self) -> bool:
        """Whether the process that owns this run is still there."""
        return is_alive(self.status())

    def progress(self) -> dict:
        return read_json(self.path / "progress.json", {}) or {}

    def metrics(self) -> list[dict]:
        return read_jsonl(self.path / "metrics.jsonl")

    def test_metrics(self) -> dict | None:
        return read_json(self.path / "test_metrics.json")

    def snapshots(self) -> list[int]:
        """The epochs whose weights were kept as snapshots, in order (none for a run from before them)."""
        found = (SNAPSHOT_FILE.fullmatch(path.name) for path in (self.path / SNAPSHOTS).glob("epoch-*.safetensors"))
        return sorted(int(match.group(1)) for match in found if match)

    def checkpoint(self, which: str = "best") -> Path:
        """The best checkpoint (or the latest if asked, or if no validation has run yet), or the
        snapshot named "epoch-NNNN" (one of snapshots(); any other name is a RunError)."""
        if which.startswith("epoch-"):
            epoch = re.fullmatch(r"epoch-(\d{1,9})", which, re.ASCII)
            if not epoch or int(epoch.group(1)) not in self.snapshots():
                raise RunError(f"run {self.name} has no snapshot {which[:40]!r}")
            return self.path / SNAPSHOTS / f"epoch-{int(epoch.group(1)):04d}.safetensors"
        if which not in ("best", "last"):
            raise RunError(f"run {self.name} has no checkpoint {which[:40]!r} (best, last or a snapshot's epoch-NNNN)")
        order = ["best", "last"] if which == "best" else ["last", "best"]
        for name in order:
            path = self.path / f"{name}.safetensors"
            if path.exists():
                return path
        raise RunError("no checkpoint yet: the first one is written at the end of epoch 1")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.path / "train.log").read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def request_stop(self) -> None:
        (self.path / "STOP").touch()

    def stop_requested(self) -> bool:
        return (self.path / "STOP").exists()

    def remove_temporaries(self) -> None:
        """Remove the temporary files of writes that a killed process cut short (atomic_write's
        hidden .tmp files: never read, since the rename never happened)."""
        for path in self.path.glob(".*.tmp"):
            path.unlink(missing_ok=True)

    def clear_outputs(self) -> None:
        """Remove what an earlier training into this directory left, before a fresh start."""
        for name in OUTPUTS:
            (self.path / name).unlink(missing_ok=True)
        for snapshot in (self.path / SNAPSHOTS).glob("epoch-*.safetensors"):
            snapshot.unlink()


def relative_to(run_dir, path: str | None) -> str | None:
    """A data path as recorded in a run: relative to the run directory, so that a run moved
    together with its data (a cloned repo, a copied workspace) still finds it."""
    return path and os.path.relpath(Path(path).resolve(), Path(run_dir).resolve())


def resolved_from(run_dir, path: str | None) -> str | None:
    return path and str((Path(run_dir) / path).resolve())
