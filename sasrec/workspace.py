"""The app's workspace: saved datasets and training runs on disk.

Everything the app knows is read back from here, so a reload, a second tab or a server
restart loses nothing. The bundled sample data and demo model are listed first and are
read-only.

    workspace/
      uploads/<sha256>/<file>        uploaded files, stored once per content
      datasets/<name>/               Dataset.save(): interactions.parquet, items.parquet, meta.json
      runs/<name>/                   run directories (see rundir.py)
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import rundir
from .data import (ITEM_NAMES, RATING_NAMES, TIMESTAMP_NAMES, USER_NAMES, Columns, DataError, Preprocessing, RawLog,
                   _find_column)
from .train import MODEL_FLAGS, configs_from_flags, resolve_device

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"
DEMO_RUN = SAMPLE_DATA / "demo_run"
SAMPLE_NAME, DEMO_NAME = "sample", "demo"
SAMPLE_ROLES = Columns("user_id", "item_id", "timestamp")
INTERRUPTED = "interrupted"  # status says running, but the process has gone
STARTING = "starting: loading the data and building the model"
# How to read back a saved dataset: as it was saved, since it is clean already.
AS_SAVED = Preprocessing(drop_duplicates=False, min_seq_len=0)


def default_root() -> Path:
    return Path(os.environ.get("SASREC_WORKSPACE") or REPO / "workspace")


def slug(name: str) -> str:
    """A safe folder name: letters, digits, '-', '_' and '.'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.")
    return cleaned[:60] or "unnamed"


@dataclass
class SavedDataset:
    name: str
    path: Path
    meta: dict
    builtin: bool = False


class Workspace:
    def __init__(self, root=None):
        self.root = Path(root or default_root())
        for folder in ("uploads", "datasets", "runs"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    # Uploads and datasets

    def store_upload(self, filename: str, content: bytes) -> Path:
        """Keep an uploaded file under its content hash; the same bytes are stored once."""
        digest = hashlib.sha256(content).hexdigest()
        path = self.root / "uploads" / digest[:16] / slug(Path(filename).name)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            rundir.atomic_write(path, lambda tmp: Path(tmp).write_bytes(content))
        return path

    def datasets(self) -> list[SavedDataset]:
        saved = []
        for folder in (self.root / "datasets").iterdir():
            meta = rundir.read_json(folder / "meta.json")
            if meta is not None:
                saved.append(SavedDataset(folder.name, folder, meta))
        saved.sort(key=lambda d: d.meta.get("saved", 0), reverse=True)
        # The sample as the Data page reads it with default settings is the sample itself, not a new dataset.
        fingerprint = _fingerprint_key(self.fingerprint(SAMPLE_DATA, None, SAMPLE_ROLES, Preprocessing()))
        sample = SavedDataset(SAMPLE_NAME, SAMPLE_DATA, {"source": "bundled sample", "fingerprint": fingerprint},
                              builtin=True)
        return [sample] + saved

    def dataset(self, name: str) -> SavedDataset:
        for entry in self.datasets():
            if entry.name == name:
                return entry
        raise rundir.RunError(f"no dataset named {name!r} in {self.root}")

    def fingerprint(self, source, catalog, roles: Columns, preprocessing: Preprocessing) -> dict:
        """What a dataset is made of: the content of its log and catalog, the column roles and
        the preprocessing. Uploads are named by content hash, so the same bytes uploaded twice
        give the same fingerprint."""
        return {"source": self._content_id(source), "catalog": catalog and self._content_id(catalog),
                "roles": asdict(roles), "preprocessing": preprocessing.to_dict()}

    def _content_id(self, path) -> str:
        path = Path(path).resolve()
        if path.parent.parent == (self.root / "uploads").resolve():
            return path.parent.name
        return os.path.relpath(path, REPO)

    def find_dataset(self, fingerprint: dict) -> SavedDataset | None:
        """The dataset saved (or bundled) with this fingerprint, if any."""
        key = _fingerprint_key(fingerprint)
        return next((entry for entry in self.datasets() if entry.meta.get("fingerprint") == key), None)

    def save_dataset(self, dataset, name: str, fingerprint: dict) -> SavedDataset:
        """Save a dataset; if one with the same fingerprint (source hash, roles, preprocessing)
        exists already, return that instead of a duplicate."""
        existing = self.find_dataset(fingerprint)
        if existing is not None:
            return existing
        key = _fingerprint_key(fingerprint)
        name, taken = slug(name), {d.name for d in self.datasets()}
        unique = name if name not in taken else next(f"{name}-{i}" for i in range(2, 10_000) if f"{name}-{i}" not in taken)
        folder = self.root / "datasets" / unique
        dataset.save(folder)
        meta = rundir.read_json(folder / "meta.json", {}) | {"fingerprint": key, "saved": time.time()}
        rundir.write_json(folder / "meta.json", meta)
        return SavedDataset(unique, folder, meta)

    # Runs

    def runs(self) -> list[rundir.Run]:
        runs = [rundir.Run(p) for p in (self.root / "runs").iterdir() if (p / "config.json").exists()
                or (p / "status.json").exists()]
        # A run that failed early may have no start time in its status: its directory's time is close.
        runs.sort(key=lambda r: r.status().get("started") or r.path.stat().st_mtime, reverse=True)
        demo = [rundir.Run(DEMO_RUN)] if rundir.Run(DEMO_RUN).exists() else []
        return demo + runs

    def run(self, name: str) -> rundir.Run:
        if name == DEMO_NAME:
            return rundir.Run(DEMO_RUN)
        return rundir.Run(self.root / "runs" / name)

    def is_builtin(self, run: rundir.Run) -> bool:
        return run.path == DEMO_RUN

    def run_name(self, run: rundir.Run) -> str:
        return DEMO_NAME if self.is_builtin(run) else run.name

    def new_run_name(self, prefix: str) -> str:
        taken = {r.name for r in self.runs()}
        stem = slug(f"{prefix}-{time.strftime('%m%d-%H%M%S')}")
        return stem if stem not in taken else next(f"{stem}-{i}" for i in range(2, 10_000) if f"{stem}-{i}" not in taken)

    def start_run(self, dataset: SavedDataset, name: str, flags: dict) -> rundir.Run:
        """Start `python -m sasrec train` in its own process and session: it outlives the
        browser session and the script rerun that started it.

        flags maps CLI flag names to values, e.g. {"epochs": 20, "loss": "bce"}.
        """
        check_train_flags(flags)
        name = slug(name)
        out = self.root / "runs" / name
        if out.exists():
            raise rundir.RunError(f"a run named {name!r} exists already")
        out.mkdir(parents=True)
        # One core stays free for the app: page interactions remain responsive on 2 cores.
        threads = max(1, (os.cpu_count() or 2) - 1)
        argv = [sys.executable, "-m", "sasrec", "train", str(dataset.path), "--out", str(out),
                "--name", dataset.name, "--threads", str(threads)]
        for flag, value in flags.items():
            argv += [f"--{flag.replace('_', '-')}", str(value)]
        if shutil.which("nice"):
            argv = ["nice", "-n", "10", *argv]
        rundir.write_status(out, rundir.RUNNING, STARTING, started=time.time(), dataset=dataset.name)
        with open(out / "train.log", "wb") as log:
            process = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        rundir.write_status(out, rundir.RUNNING, STARTING, pid=process.pid, started=time.time(), dataset=dataset.name)
        # Reap the child when it ends so that it does not linger as a zombie that looks alive.
        threading.Thread(target=process.wait, daemon=True).start()
        return rundir.Run(out)

    def run_summary(self, run: rundir.Run) -> dict:
        """One row of the runs table, read from the run directory."""
        status, config, progress = run.status(), run.config(), run.progress()
        state = run_state(run)
        started = status.get("started") or config.get("created") or run.path.stat().st_mtime
        if "elapsed_seconds" in status:  # written when the run ended
            duration = status["elapsed_seconds"]
        else:
            duration = (time.time() if state == rundir.RUNNING else status.get("updated", started)) - started
        valid = [m["valid_ndcg@10"] for m in run.metrics() if "valid_ndcg@10" in m]
        test = run.test_metrics() or {}
        return {"name": self.run_name(run), "dataset": (config.get("data") or {}).get("name") or status.get("dataset"),
                "state": state, "message": status.get("message", ""),
                "best_valid_ndcg@10": max(valid, default=None), "test_ndcg@10": test.get("ndcg@10"),
                "test_hr@10": test.get("hr@10"), "duration_seconds": max(duration, 0.0),
                "device": config.get("device_name") or progress.get("device"), "started": started}

    def stop_run(self, run: rundir.Run) -> None:
        run.request_stop()

    def delete_run(self, run: rundir.Run) -> None:
        if self.is_builtin(run):
            raise rundir.RunError("the bundled demo model cannot be deleted")
        if run.status().get("state") == rundir.RUNNING and run.is_alive():
            os.kill(int(run.status()["pid"]), signal.SIGTERM)
        shutil.rmtree(run.path, ignore_errors=True)


def _fingerprint_key(fingerprint: dict) -> str:
    return json.dumps(fingerprint, sort_keys=True, default=str)


def run_state(run: rundir.Run) -> str:
    """The run's state from its status, or 'interrupted' when the status still says running but
    the process has gone (killed, or the machine restarted): such a run would otherwise look
    as if it ran forever."""
    state = run.status().get("state", "unknown")
    if state != rundir.RUNNING or run.is_alive():
        return state
    state = run.status().get("state", "unknown")  # it may have written its last status and exited meanwhile
    return INTERRUPTED if state == rundir.RUNNING else state


# Training settings

FORM_MODEL_FLAGS = ("maxlen", "hidden", "blocks", "heads", "dropout")
FORM_TRAIN_FLAGS = ("loss", "epochs", "patience", "lr", "batch_size")


def train_settings(preset: str) -> dict:
    """A preset's settings for the training form, by CLI flag name: the engine's defaults with
    the preset on top."""
    model, train = (asdict(config) for config in configs_from_flags(preset))
    return ({flag: model[MODEL_FLAGS[flag]] for flag in FORM_MODEL_FLAGS}
            | {flag: train[flag] for flag in FORM_TRAIN_FLAGS})


def check_train_flags(flags: dict) -> None:
    """Build the configs that the trainer will build, so that settings it would refuse (8 heads
    for a hidden size of 50, a missing GPU) are refused here, with the reason, and not in a
    background process that ends before it has written anything."""
    try:
        _, train = configs_from_flags(**flags)
        resolve_device(train.device)
    except ValueError as err:
        raise rundir.RunError(f"cannot train with these settings: {err}") from err


def devices() -> dict[str, str]:
    """The devices to train on, each with a readable name: auto, then those present."""
    present = {"cpu": "CPU"}
    if torch.cuda.is_available():
        present["cuda"] = f"CUDA: {torch.cuda.get_device_name()}"
    if torch.backends.mps.is_available():
        present["mps"] = "Apple GPU (MPS)"
    return {"auto": f"Auto: {present[resolve_device('auto').type]}", **present}


# Data: column roles and the small tables behind the Data page's charts

ROLE_NAMES = {"user": USER_NAMES, "item": ITEM_NAMES, "timestamp": TIMESTAMP_NAMES, "rating": RATING_NAMES}


def guess_roles(raw: RawLog) -> dict[str, str | None]:
    """Each role's column: as the format fixes it, else found by name as detect_roles does. Role
    by role, so that a missing or ambiguous column leaves only that role open (None) for the
    user to choose, instead of failing them all."""
    if raw.roles is not None:
        return asdict(raw.roles)
    guesses = {}
    for role, names in ROLE_NAMES.items():
        try:
            guesses[role] = _find_column(raw.events.columns, names, role, raw.source)
        except DataError:  # two columns fit
            guesses[role] = None
    return guesses


def length_histogram(dataset, bins: int = 40) -> pd.DataFrame:
    """Users per sequence length, in even bins [start, end) up to the 99th percentile. The longest
    1 % are counted in the last bin: the tail is long, and drawn to its end it would squeeze
    everyone else into a few bars."""
    lengths = np.diff(dataset.offsets)
    low = int(lengths.min())
    top = max(int(np.percentile(lengths, 99)), low)
    width = -(-(top + 1 - low) // bins)
    counts = np.bincount((np.minimum(lengths, top) - low) // width)
    starts = low + width * np.arange(len(counts))
    return pd.DataFrame({"start": starts, "end": starts + width, "users": counts})


def popularity_curve(dataset, points: int = 200) -> pd.DataFrame:
    """Interactions per item against popularity rank, at log-spaced ranks (a log-log plot needs no
    more), with the share of all interactions that the items up to each rank receive."""
    counts = np.sort(np.bincount(dataset.items, minlength=dataset.num_items + 1)[1:])[::-1]
    ranks = np.unique(np.geomspace(1, len(counts), points).round().astype(np.int64))
    share = np.cumsum(counts) / counts.sum()
    return pd.DataFrame({"rank": ranks, "interactions": counts[ranks - 1], "share": share[ranks - 1]})


def top_share(dataset, fraction: float = 0.1) -> float:
    """The share of all interactions that the most popular `fraction` of items receive."""
    counts = np.sort(np.bincount(dataset.items, minlength=dataset.num_items + 1)[1:])[::-1]
    return float(counts[:max(1, round(len(counts) * fraction))].sum() / counts.sum())


def activity(dataset) -> tuple[pd.DataFrame, str] | None:
    """Interactions per day, week or month (whichever keeps the bars countable) and that unit;
    None when the log has no timestamps."""
    if dataset.timestamps is None or not len(dataset.timestamps):
        return None
    days = dataset.timestamps // 86_400
    first = int(days.min())
    per_day = pd.Series(np.bincount(days - first),
                        index=pd.to_datetime((np.arange(days.max() - first + 1) + first) * 86_400, unit="s"))
    unit, rule = (("day", "D") if len(per_day) <= 180 else ("week", "W-MON") if len(per_day) <= 3 * 365
                  else ("month", "MS"))
    return per_day.resample(rule, label="left", closed="left").sum().rename_axis("period").reset_index(
        name="interactions"), unit


def sample_sequences(dataset, num: int = 6, shown: int = 12, seed: int = 0) -> pd.DataFrame:
    """A few random users' sequences as titles, oldest first; a long one shows its latest
    `shown` items after a '…'."""
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(dataset.num_users, size=min(num, dataset.num_users), replace=False))
    titles = dataset.catalog["title"].astype(str)
    rows = []
    for user in users:  # a handful
        sequence = dataset.sequence(user)
        rows.append({"user": dataset.user_ids[user], "length": len(sequence),
                     "items": ["…"] * (len(sequence) > shown) + titles.loc[sequence[-shown:]].tolist()})
    return pd.DataFrame(rows)
