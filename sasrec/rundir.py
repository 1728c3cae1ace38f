"""The run directory: what a training process writes and what the app and the CLI read.

    config.json        model, training and data settings
    status.json        {"state": running|finished|stopped|failed, "message": ...}
    progress.json      the latest step: epoch, step, ETA, a thinned loss curve
    metrics.jsonl      one JSON object per epoch
    best.safetensors   weights with the best validation NDCG@10
    last.safetensors   weights at the end of the latest epoch (or at the stop)
    optimizer.pt       optimizer state and counters, for resuming
    items.parquet      internal id -> original id, title, category
    test_metrics.json  test-split report, written once training has ended
    train.log          the process's output, when the app started it
    STOP               created by anyone who wants the run to end

Every file is replaced atomically (write a temporary file, then rename), so a reader
never sees half a file.
"""

import json
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .data import Columns, Preprocessing, load_dataset
from .files import atomic_write

RUNNING, FINISHED, STOPPED, FAILED = "running", "finished", "stopped", "failed"


class RunError(Exception):
    """A run directory that is missing, incomplete or not usable as asked."""


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=1, default=str)))


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return default


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in rows)))


def read_jsonl(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    except FileNotFoundError:
        return []


def save_weights(model: torch.nn.Module, path: Path) -> None:
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


class Run:
    """Read-only view of a run directory, for the CLI and the app."""

    def __init__(self, path):
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        return (self.path / "config.json").exists()

    def require(self) -> "Run":
        if not self.path.is_dir():
            raise RunError(f"{self.path}: no such run directory")
        if not self.exists():
            raise RunError(f"{self.path}: not a run directory (config.json is missing)")
        return self

    def config(self) -> dict:
        return read_json(self.path / "config.json", {})

    def status(self) -> dict:
        return read_json(self.path / "status.json", {"state": "unknown", "message": ""})

    def progress(self) -> dict:
        return read_json(self.path / "progress.json", {})

    def metrics(self) -> list[dict]:
        return read_jsonl(self.path / "metrics.jsonl")

    def test_metrics(self) -> dict | None:
        return read_json(self.path / "test_metrics.json")

    def checkpoint(self, which: str = "best") -> Path:
        """The best checkpoint (or the latest if asked, or if no validation has run yet)."""
        order = ["best", "last"] if which == "best" else ["last", "best"]
        for name in order:
            path = self.path / f"{name}.safetensors"
            if path.exists():
                return path
        raise RunError(f"{self.path}: no checkpoint yet (the run has not finished an epoch)")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.path / "train.log").read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def request_stop(self) -> None:
        (self.path / "STOP").touch()

    def stop_requested(self) -> bool:
        return (self.path / "STOP").exists()

    def is_alive(self) -> bool:
        """Whether the process that owns a 'running' status is still there."""
        pid = self.status().get("pid")
        if not pid:
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, but another user's
            return True
        return True


def write_status(run_dir: Path, state: str, message: str = "", **extra) -> None:
    """Replace status.json; when and for which dataset the run started carry over."""
    previous = read_json(Path(run_dir) / "status.json", {})
    kept = {key: previous[key] for key in ("started", "dataset") if key in previous}
    status = kept | {"state": state, "message": message, "pid": os.getpid(), "updated": time.time(), **extra}
    write_json(Path(run_dir) / "status.json", status)


def relative_data_config(data: dict, run_dir) -> dict:
    """Record data paths relative to the run directory, so that a run moved together with
    its data (a cloned repo, a copied workspace) still finds it."""
    run_dir = Path(run_dir).resolve()
    relative = lambda p: p and os.path.relpath(Path(p).resolve(), run_dir)  # noqa: E731
    return data | {"path": relative(data["path"]), "items": relative(data.get("items"))}


def absolute_data_config(data: dict, run_dir) -> dict:
    absolute = lambda p: p and str((Path(run_dir) / p).resolve())  # noqa: E731
    return data | {"path": absolute(data["path"]), "items": absolute(data.get("items"))}


def load_data(data: dict):
    """The dataset a data config describes: paths, column roles and preprocessing."""
    return load_dataset(data["path"], items=data.get("items"),
                        roles=Columns(**data["roles"]) if data.get("roles") else None,
                        preprocessing=Preprocessing.from_dict(data.get("preprocessing") or {}))
