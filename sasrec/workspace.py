"""The app's workspace: saved datasets and training runs on disk, and the one registry of both.

A name that comes from a user, a URL or a file never becomes a path: `run(name)` and
`dataset(name)` look it up among what the workspace lists, and anything else is "no such
run" / "no such dataset". The registry also owns starting, stopping and deleting runs and
knowing whether their process is alive. The bundled sample data ("sample") and demo model
("demo") are listed first, are read-only, and their names are reserved.

It is also the one place that changes the workspace, so it is where roles are checked: a
Workspace acts for a user (access.py), every change first checks that they are an editor
(refusing a viewer with AccessDenied, having changed nothing) and every change and refusal is
a line of the audit log (audit.py). Training starts pass through the queue (training_queue.py).

    workspace/
      uploads/<sha256>/<file>        uploaded files, stored once per content
      datasets/<folder>/             Dataset.save(): interactions.parquet, items.parquet, meta.json
      runs/<name>/                   run directories (see rundir.py)
      recent.json                    the dataset and run used last, for a new visit
      audit.jsonl                    who changed what, and when (audit.py)
      queue.*                        the training queue's lock, settings and runner (training_queue.py)
"""

import copy
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psutil
import torch

from . import access, audit, rundir, training_queue
from .config import DataConfig, RunConfig
from .dataset import Preprocessing
from .estimate import remove_leftovers
from .readers import Columns
from .train import resolve_device

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"
DEMO_RUN = SAMPLE_DATA / "demo_run"
SAMPLE_NAME, DEMO_NAME = "sample", "demo"
RESERVED = {SAMPLE_NAME, DEMO_NAME}
SAMPLE_ROLES = Columns("user_id", "item_id", "timestamp")
# How to read back a saved dataset: exactly as it was saved, since it is clean already.
AS_SAVED = Preprocessing(drop_duplicates=False, min_seq_len=0)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,59}")
MAX_UPLOAD_BYTES = 500 << 20  # as server.maxUploadSize in .streamlit/config.toml, which the browser enforces first
STOP_WAIT_SECONDS = 20  # how long Delete waits for a stopped run to exit before it is killed
TRAINING_NICE = 19  # training yields the CPU to the app whenever a page needs it
# Training the app starts shares the cores with the app, its viewers' browsers and perhaps
# another run. Its OpenMP threads then wait for each other passively: a thread that spins
# while the one it waits for is preempted burns a core the others need. A Beauty epoch with
# two busy processes beside it took 19 s passive and 41 s with OpenMP's default spinning; on an
# idle machine spinning is faster (9 s against 13 s), so the command line keeps the default.
TRAINING_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
ESTIMATE_TIMEOUT = 180  # seconds


def default_root() -> Path:
    return Path(os.environ.get("SASREC_WORKSPACE") or REPO / "workspace")


def slug(name: str) -> str:
    """A safe folder name: letters, digits, '-', '_' and '.', starting with a letter or digit."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-._")
    return cleaned[:60] or "unnamed"


@dataclass
class SavedDataset:
    name: str
    path: Path
    meta: dict
    builtin: bool = False


class Workspace:
    def __init__(self, root=None, user: access.User | Callable[[], access.User] = access.LOCAL):
        """user: whom the changes are made for, or a function that says who it is at the moment of
        each change (the app passes its session's, so that a button on a page drawn before a
        sign-in expired is judged by who clicks it now). The default, the local user, is for the
        command line and the tests; the app never relies on it (ui/state.py)."""
        self.root = Path(root or default_root())
        self._user = user
        for folder in ("uploads", "datasets", "runs"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def acting_as(self, user: access.User | Callable[[], access.User]) -> "Workspace":
        """The same workspace, acting for another user."""
        other = copy.copy(self)
        other._user = user
        return other

    @property
    def user(self) -> access.User:
        return self._user() if callable(self._user) else self._user

    def _change(self, action: str, **target):
        return access.change(self.root, self.user, action, **target)

    # Uploads and datasets

    def store_upload(self, filename: str, content: bytes) -> Path:
        """Keep an uploaded file under its content hash; the same bytes are stored once. The
        file name is only kept, made safe, for its extension and for messages."""
        name = slug(Path(filename.replace("\\", "/")).name)
        with self._change("upload", file=name, bytes=len(content)) as target:
            if len(content) > MAX_UPLOAD_BYTES:
                raise rundir.RunError(f"{name} is {len(content) / 2**20:,.0f} MB; uploads are "
                                      f"limited to {MAX_UPLOAD_BYTES / 2**20:,.0f} MB")
            digest = hashlib.sha256(content).hexdigest()
            path = self.root / "uploads" / digest[:16] / name
            target["sha256"] = digest
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                rundir.atomic_write(path, lambda tmp: Path(tmp).write_bytes(content))
        return path

    def datasets(self) -> list[SavedDataset]:
        saved = []
        for folder in _children(self.root / "datasets"):
            meta = rundir.read_json(folder / "meta.json")
            if isinstance(meta, dict):
                saved.append(SavedDataset(str(meta.get("name") or folder.name), folder, meta))
        saved.sort(key=lambda d: d.meta.get("saved", 0), reverse=True)
        # The sample as the Data page reads it with default settings is the sample itself, not a new dataset.
        fingerprint = _fingerprint_key(self.fingerprint(SAMPLE_DATA, None, SAMPLE_ROLES, Preprocessing()))
        sample = SavedDataset(SAMPLE_NAME, SAMPLE_DATA, {"source": "bundled sample", "fingerprint": fingerprint},
                              builtin=True)
        return [sample] + [d for d in saved if d.name != SAMPLE_NAME]

    def dataset(self, name: str) -> SavedDataset:
        for entry in self.datasets():
            if entry.name == name:
                return entry
        raise rundir.RunError(f"no dataset named {str(name)[:80]!r}")

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
        with self._change("save", dataset=slug(name)) as target:
            existing = self.find_dataset(fingerprint)
            if existing is not None:
                target.update(dataset=existing.name, already_saved=True)
                return existing
            name = self._free_name(slug(name), {d.name for d in self.datasets()})
            folder = self.root / "datasets" / self._free_name(name, {p.name for p in (self.root / "datasets").iterdir()})
            dataset.save(folder)
            meta = rundir.read_json(folder / "meta.json", {}) | {"name": name, "fingerprint": _fingerprint_key(fingerprint),
                                                                 "saved": time.time()}
            rundir.write_json(folder / "meta.json", meta)
            target.update(dataset=name, source=meta.get("source"))
        return SavedDataset(name, folder, meta)

    def runs_using(self, entry: SavedDataset) -> list[str]:
        """The runs trained on this dataset."""
        used = []
        for run in self.runs():
            data = run.config().get("data") or {}
            path = data.get("path") and rundir.resolved_from(run.path, data["path"])
            if path and Path(path) == entry.path.resolve():
                used.append(run.name)
        return used

    def rename_dataset(self, name: str, new_name: str) -> SavedDataset:
        with self._change("rename", dataset=str(name)[:80], to=slug(new_name)):
            entry = self.dataset(name)
            if entry.builtin:
                raise rundir.RunError("the bundled sample cannot be renamed")
            new_name = slug(new_name)
            if new_name in {d.name for d in self.datasets()} - {entry.name} or new_name in RESERVED:
                raise rundir.RunError(f"a dataset named {new_name!r} exists already")
            rundir.write_json(entry.path / "meta.json", entry.meta | {"name": new_name})
        return replace(entry, name=new_name)

    def delete_dataset(self, name: str) -> None:
        with self._change("delete", dataset=str(name)[:80]):
            entry = self.dataset(name)
            if entry.builtin:
                raise rundir.RunError("the bundled sample cannot be deleted")
            _remove(entry.path, self.root / "datasets")

    # Runs

    def runs(self) -> list[rundir.Run]:
        """The demo, then the workspace's runs, newest first."""
        runs = [rundir.Run(p) for p in _children(self.root / "runs")
                if p.name not in RESERVED and NAME.fullmatch(p.name)
                and any((p / f).is_file() for f in ("config.json", "status.json", "launch.json"))]
        # A run that failed early may have no start time in its status: its directory's time is close.
        runs.sort(key=lambda r: r.status().get("started") or r.path.stat().st_mtime, reverse=True)
        demo = [rundir.Run(DEMO_RUN, name=DEMO_NAME)] if rundir.Run(DEMO_RUN).exists() else []
        return demo + runs

    def run(self, name: str) -> rundir.Run:
        """The run listed under `name`; RunError for any other name."""
        for run in self.runs():
            if run.name == name:
                return run
        raise rundir.RunError(f"no run named {str(name)[:80]!r}")

    def is_builtin(self, run: rundir.Run) -> bool:
        return run.path == DEMO_RUN

    def new_run_name(self, prefix: str) -> str:
        return self._free_name(slug(f"{prefix}-{time.strftime('%m%d-%H%M%S')}"), {r.name for r in self.runs()})

    def _free_name(self, name: str, taken: set) -> str:
        taken = taken | RESERVED
        return name if name not in taken else next(f"{name}-{i}" for i in range(2, 100_000) if f"{name}-{i}" not in taken)

    def data_config(self, dataset_name: str) -> DataConfig:
        """How a run reads a saved dataset: the sample as the sample read with default settings (see
        datasets()); a saved dataset exactly as it was saved. Paths are absolute."""
        entry = self.dataset(dataset_name)
        return DataConfig(path=str(entry.path), name=entry.name,
                          roles=asdict(SAMPLE_ROLES) if entry.builtin else None,
                          preprocessing=(Preprocessing() if entry.builtin else AS_SAVED).to_dict(),
                          saved_preprocessing=entry.meta.get("preprocessing"))

    def start_run(self, dataset_name: str, name: str, config: RunConfig, preset: str | None = None,
                  estimate: dict | None = None) -> rundir.Run:
        """Write the run's config into a new run directory and start `python -m sasrec train
        --config` on it, in its own process and session: it outlives the browser session and the
        script rerun that started it; or, when its device's training slots are taken, queue it
        (training_queue.py). `config.data` is filled in here: the run trains on exactly the saved
        dataset. The preset and the estimate the Train page showed are kept in launch.json, for
        the form after a reload and for "the first checkpoint comes in about ..."."""
        with self._change("start", run=slug(name), dataset=str(dataset_name)[:80]) as target:
            data = self.data_config(dataset_name)
            name = slug(name)
            if name in RESERVED:
                raise rundir.RunError(f"{name!r} is the bundled model's name: choose another")
            device = training_queue.device_key(str(check_devices(config)))
            with training_queue.locked(self.root):  # two starts of one name: the second is told it exists
                if name in {r.name for r in self.runs()}:
                    raise rundir.RunError(f"a run named {name!r} exists already")
                out = self.root / "runs" / name
                out.mkdir(parents=True)
                replace(config, data=data.relative_to(out)).write(out / "config.json")
                launched = {"dataset": data.name, "preset": preset} | ({"estimate": estimate} if estimate else {})
                target["queued"] = training_queue.submit(self, rundir.Run(out), {
                    "device": device, "user": self.user.name, "resume": False, "launched": launched})
        return rundir.Run(out)

    def resume_run(self, run: rundir.Run, epochs: int | None = None, more_minutes: float | None = None) -> rundir.Run:
        """Continue a stopped or interrupted run, or one its time budget ended, from its last
        checkpoint, in the background as start_run does (`python -m sasrec train --resume`, through
        the queue), optionally with a new epoch limit and more time."""
        with self._change("resume", run=str(run.name)[:80], epochs=epochs, more_minutes=more_minutes) as target:
            run = self.run(run.name)
            if self.is_builtin(run):
                raise rundir.RunError("the bundled demo model cannot be trained further: start a new run")
            with training_queue.locked(self.root):
                if not run.resumable():
                    raise rundir.RunError(f"run {run.name} is {run.state()}: only a stopped or interrupted run, or "
                                          "one its time budget ended, can be resumed")
                if not (run.path / rundir.CHECKPOINT).is_file():
                    raise rundir.RunError(f"run {run.name} ended before its first checkpoint, so there is nothing to "
                                          "resume: start a new run")
                (run.path / "STOP").unlink(missing_ok=True)  # the stop it obeyed is not a request to stop again
                previous = run.launch()
                recorded = run.config()  # the trainer recorded the device it chose
                device = training_queue.device_key(str(recorded.get("device") or resolve_device(
                    (recorded.get("train") or {}).get("device") or "auto")))
                target["queued"] = training_queue.submit(self, run, {
                    "device": device, "user": self.user.name, "resume": True, "epochs": int(epochs) if epochs else None,
                    "more_minutes": float(more_minutes) if more_minutes else None,
                    "launched": {key: previous[key] for key in ("dataset", "preset") if key in previous}
                    | {"resumed": True}})
        return rundir.Run(run.path)

    def _train_argv(self, out: Path, entry: dict) -> list[str]:
        """The `python -m sasrec` arguments that train the run in `out` as its queue entry says: from its
        config.json, or resumed from its checkpoint (with a new epoch limit and more time if given), on
        every core unless it names a number."""
        if entry.get("resume"):
            argv = ["train", "--resume", str(out)]
            if entry.get("epochs"):
                argv += ["--epochs", str(int(entry["epochs"]))]
            if entry.get("more_minutes"):
                argv += ["--time-budget", f"{float(entry['more_minutes']):g}m"]
        else:
            argv = ["train", "--config", str(out / "config.json"), "--out", str(out)]
        if not (rundir.Run(out).config().get("train") or {}).get("threads"):
            argv += ["--threads", str(training_threads())]
        return argv

    def _launch(self, out: Path, argv: list[str], launched: dict) -> rundir.Run:
        """Start `python -m sasrec ARGV` for the run in `out`, at low priority, and record its
        process in launch.json."""
        argv = [sys.executable, "-m", "sasrec", *argv]
        if shutil.which("nice"):
            argv = ["nice", "-n", str(TRAINING_NICE), *argv]
        with open(out / "train.log", "ab") as log:
            process = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=os.environ | TRAINING_ENV,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            identity = rundir.process_identity(process.pid)
        except psutil.Error:  # it has ended already; its status says how
            identity = {"pid": process.pid, "process_started": None}
        rundir.write_json(out / "launch.json", identity | {"started": time.time()} | launched)
        # Reap the child when it ends so that it does not linger as a zombie that looks alive.
        threading.Thread(target=process.wait, daemon=True).start()
        return rundir.Run(out)

    def estimate(self, dataset_name: str, config: RunConfig, timeout: float = ESTIMATE_TIMEOUT) -> dict:
        """Time a few training steps of `config` on the dataset (estimate.py), in a process of its
        own with the threads and priority a run gets: seconds per epoch and in total, and faster
        settings with their estimate when the run would be long. RunError if it cannot. An editor's
        tool: it takes the cores a run would."""
        access.allowed(self.root, self.user, "estimate", dataset=str(dataset_name)[:80])
        check_devices(config)
        config = replace(config, data=self.data_config(dataset_name))
        remove_leftovers(self.root / "runs", older_than=2 * timeout)
        argv = [sys.executable, "-m", "sasrec.estimate", "--config", "-", "--faster", "--runs", str(self.root / "runs")]
        if not config.train.threads:
            argv += ["--threads", str(training_threads())]
        if shutil.which("nice"):
            argv = ["nice", "-n", str(TRAINING_NICE), *argv]
        try:
            done = subprocess.run(argv, cwd=REPO, input=json.dumps(config.to_dict()), capture_output=True, text=True,
                                  env=os.environ | TRAINING_ENV, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise rundir.RunError(f"timing a few training steps took over {timeout:.0f} s: these settings are very "
                                  "slow on this machine") from err
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            raise rundir.RunError(f"could not time these settings: {lines[-1].removeprefix('error: ') if lines else '?'}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def stop_run(self, run: rundir.Run) -> None:
        """Ask the run to end after its current step (a STOP file, then SIGTERM to its own process);
        a run still waiting in the queue is taken out of it instead (see cancel_run)."""
        with self._change("stop", run=str(run.name)[:80]) as target:
            run = self.run(run.name)
            if self.is_builtin(run):
                return
            with training_queue.locked(self.root):
                if run.state() == rundir.QUEUED:
                    target["was_queued"] = True
                    self._dequeue(run)
                    return
            # Asked already, or its trainer wrote its end meanwhile. (Not state(): a run it takes for
            # interrupted gets the STOP file all the same, in case it is wrong about the process.)
            if run.stop_requested() or run.status()["state"] != rundir.RUNNING:
                target["unchanged"] = True
                return
            _stop(run)

    def cancel_run(self, run: rundir.Run) -> None:
        """Take a waiting run out of the queue: a new run goes with it, as it never trained; a stopped
        run that waited to resume stays as it was."""
        with self._change("cancel", run=str(run.name)[:80]):
            run = self.run(run.name)
            with training_queue.locked(self.root):
                state = run.state()
                if state != rundir.QUEUED:
                    raise rundir.RunError(f"run {run.name} is {state}, not waiting in the queue")
                self._dequeue(run)

    def _dequeue(self, run: rundir.Run) -> None:
        (run.path / rundir.QUEUE_FILE).unlink(missing_ok=True)
        if not any((run.path / name).exists() for name in ("status.json", "launch.json")):
            _remove(run.path, self.root / "runs")

    def queue(self) -> list[dict]:
        """The runs waiting for a training slot, first come first, with their places and estimated
        starts (training_queue.summary)."""
        return training_queue.summary(self)

    def audit_log(self, count: int = 20) -> list[dict]:
        """The latest entries of the audit log, newest first: for editors, as it names who did what."""
        access.allowed(self.root, self.user, "audit")
        return audit.last(self.root, count)

    def delete_run(self, run: rundir.Run, wait: float = STOP_WAIT_SECONDS) -> None:
        """Take the run out of the queue, or stop it if it is alive and wait for its process to exit
        (killing it after `wait` seconds), then remove its directory."""
        with self._change("delete", run=str(run.name)[:80]):
            run = self.run(run.name)
            if self.is_builtin(run):
                raise rundir.RunError("the bundled demo model cannot be deleted")
            with training_queue.locked(self.root):  # not started from the queue while it goes
                (run.path / rundir.QUEUE_FILE).unlink(missing_ok=True)
            if run.is_alive():
                _stop(run)
                deadline = time.time() + wait
                while run.is_alive() and time.time() < deadline:
                    time.sleep(0.1)
                if run.is_alive():
                    _signal(run.status(), signal.SIGKILL)
                    while run.is_alive() and time.time() < deadline + 5:
                        time.sleep(0.1)
                if run.is_alive():
                    raise rundir.RunError(f"run {run.name} did not stop; it was not deleted")
            _remove(run.path, self.root / "runs")

    def run_summary(self, run: rundir.Run) -> dict:
        """One row of the runs table, read from the run directory. Its duration is the trainer's clock:
        from the start of its command (set back by the time of earlier sessions, on resume) to now while
        it runs, and to its last word once it has ended, the final evaluation included. A run whose
        trainer has not written yet (queued, or starting) shows the time of its earlier sessions (none:
        0): the time since its launch would not be on that clock, and could run backwards once it is."""
        status, config, progress = run.status(), run.config(), run.progress()
        state = run.state()
        started = status.get("started") or config.get("created") or run.path.stat().st_mtime
        if "updated" not in status:  # launched, and its trainer has not written yet (see Run.status)
            duration = status.get("earlier_seconds", 0.0)
        else:
            duration = (time.time() if state == rundir.RUNNING else status["updated"]) - started
        valid = [m["valid_ndcg@10"] for m in run.metrics() if "valid_ndcg@10" in m]
        test = run.test_metrics() or {}
        return {"name": run.name, "dataset": (config.get("data") or {}).get("name") or status.get("dataset"),
                "state": state, "message": status.get("message", ""),
                "best_valid_ndcg@10": max(valid, default=None), "test_ndcg@10": test.get("ndcg@10"),
                "test_hr@10": test.get("hr@10"), "duration_seconds": max(duration, 0.0),
                "device": config.get("device_name") or progress.get("device"), "started": started}

    # What was used last, for a new tab or visit

    def recent(self) -> dict:
        recent = rundir.read_json(self.root / "recent.json", {})
        return recent if isinstance(recent, dict) else {}

    def remember(self, **used: str) -> None:
        """Make these the dataset and run a new visit opens on. Only an editor's choice does: a viewer's
        stays in their own session and link, so that clicking around does not change what the next
        visitor sees first. Not a change of the workspace's content, so neither refused nor audited."""
        if self.user.can_edit:
            rundir.write_json(self.root / "recent.json", self.recent() | used)


def _children(folder: Path) -> list[Path]:
    """The real subfolders of `folder` (no links, which could lead anywhere)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())


def _remove(path: Path, parent: Path) -> None:
    """Delete a listed folder, after checking once more that it is a real folder right inside `parent`."""
    if path.is_symlink() or path.resolve().parent != parent.resolve():
        raise rundir.RunError(f"refusing to delete {path.name}: it is not a folder of the workspace")
    shutil.rmtree(path)


def _stop(run: rundir.Run) -> None:
    run.request_stop()
    _signal(run.status(), signal.SIGTERM)


def _signal(identity: dict, signum: int) -> None:
    """Send a signal to the process `identity` names, and to no other that reused its pid (nor to
    this process: a run resumed in-process, as in tests, is not ours to end)."""
    if rundir.is_alive(identity) and int(identity["pid"]) != os.getpid():
        try:
            os.kill(int(identity["pid"]), signum)
        except ProcessLookupError:
            pass


def _fingerprint_key(fingerprint: dict) -> str:
    return json.dumps(fingerprint, sort_keys=True, default=str)


def training_threads() -> int:
    """Threads for a run the app starts: every core. The run has a low priority (TRAINING_NICE), so
    the app's pages still answer at once while it trains (bench/ui_responsiveness.py)."""
    return os.cpu_count() or 1


def check_devices(config: RunConfig) -> torch.device:
    """The device the run will train on; refused here, with the reason, if the trainer would refuse
    it in a background process."""
    return resolve_device(config.train.device)


def devices() -> dict[str, str]:
    """The devices to train on, each with a readable name: auto, then every one present, each GPU
    with its name and memory."""
    present = {"cpu": "CPU"}
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for index in range(gpus):
        properties = torch.cuda.get_device_properties(index)
        key = "cuda" if gpus == 1 else f"cuda:{index}"
        present[key] = f"GPU {index}: {properties.name}, {properties.total_memory / 2 ** 30:.0f} GB"
    if torch.backends.mps.is_available():
        present["mps"] = "Apple GPU (MPS)"
    auto = resolve_device("auto").type
    return {"auto": f"Auto: {present.get(auto) or present.get('cuda:0', 'CPU')}", **present}
