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
from dataclasses import dataclass
from pathlib import Path

from . import rundir

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"
DEMO_RUN = SAMPLE_DATA / "demo_run"
SAMPLE_NAME, DEMO_NAME = "sample", "demo"


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
        sample = SavedDataset(SAMPLE_NAME, SAMPLE_DATA, {"source": "bundled sample"}, builtin=True)
        return [sample] + saved

    def dataset(self, name: str) -> SavedDataset:
        for entry in self.datasets():
            if entry.name == name:
                return entry
        raise rundir.RunError(f"no dataset named {name!r} in {self.root}")

    def save_dataset(self, dataset, name: str, fingerprint: dict) -> SavedDataset:
        """Save a dataset; if one with the same fingerprint (source hash, roles, preprocessing)
        exists already, return that instead of a duplicate."""
        key = json.dumps(fingerprint, sort_keys=True, default=str)
        for entry in self.datasets()[1:]:
            if entry.meta.get("fingerprint") == key:
                return entry
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
        runs.sort(key=lambda r: r.status().get("started", 0), reverse=True)
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
        rundir.write_status(out, rundir.RUNNING, "starting", started=time.time(), dataset=dataset.name)
        with open(out / "train.log", "wb") as log:
            process = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        rundir.write_status(out, rundir.RUNNING, "starting", pid=process.pid, started=time.time(), dataset=dataset.name)
        # Reap the child when it ends so that it does not linger as a zombie that looks alive.
        threading.Thread(target=process.wait, daemon=True).start()
        return rundir.Run(out)

    def stop_run(self, run: rundir.Run) -> None:
        run.request_stop()

    def delete_run(self, run: rundir.Run) -> None:
        if self.is_builtin(run):
            raise rundir.RunError("the bundled demo model cannot be deleted")
        if run.status().get("state") == rundir.RUNNING and run.is_alive():
            os.kill(int(run.status()["pid"]), signal.SIGTERM)
        shutil.rmtree(run.path, ignore_errors=True)
