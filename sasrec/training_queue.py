"""The training queue: at most `slots` runs train at once on each device (the CPU, each GPU); a start
beyond that waits in the workspace and starts when a slot frees.

    workspace/queue.lock          every look at the slots and every change of the queue holds this lock
    workspace/queue.json          {"slots": N}: runs at once per device, from the server's configuration
    workspace/queue.runner.lock   held by the runner for as long as it lives
    workspace/queue.log           the runner's output
    runs/<name>/queued.json       a waiting run: its place (seq), device, who queued it, what to start

Two starts at the same moment, from two sessions, two servers or two threads, take the lock in
turn, so each sees the other's run as running or queued: they get two places, never two slots.
Runs started from the command line (`python -m sasrec train --out ...`) do not pass through here:
they are counted, by the device their config.json records, and never held back.

Who starts a waiting run when a slot frees? A small process of its own, the runner
(`python -m sasrec.training_queue WORKSPACE`). It lives while runs wait, looks once a second, and
starts them through the same Workspace._launch as a start from the page. It is no part of the
app's server, so no browser needs to be open and a server restart does not stop it; a lock held
for its life makes it one per workspace, and says whether it is alive, since the kernel releases
the lock when it dies however it dies. Whoever queues a run, and the app when it starts or shows the
queue, start it again if runs wait and it is gone (after a reboot, or a kill). The alternatives
fail where this does not: a trainer that promotes the next run when it ends does nothing when it
is killed, and a thread in the server does nothing while the server is down.
"""

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from . import rundir

LOCK, SETTINGS, RUNNER_LOCK, RUNNER_LOG = "queue.lock", "queue.json", "queue.runner.lock", "queue.log"
POLL_SECONDS = 1.0
DEFAULT_SLOTS = 1


@contextmanager
def locked(root: Path):
    """Hold the workspace's queue lock (an fcntl lock: it serialises threads, processes and servers alike)."""
    with open(Path(root) / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases it


def configure(root: Path, slots: int) -> None:
    """Set how many runs train at once per device, for the app and the runner alike."""
    rundir.write_json(Path(root) / SETTINGS, {"slots": int(slots)})


def slots(root: Path) -> int:
    found = (rundir.read_json(Path(root) / SETTINGS, {}) or {}).get("slots")
    return found if isinstance(found, int) and found >= 1 else DEFAULT_SLOTS


def device_key(device: str) -> str:
    """A device as a slot belongs to it: "cuda" is the first GPU."""
    return "cuda:0" if device == "cuda" else device


def run_device(run: rundir.Run) -> str:
    """The device a run trains on: as the app recorded it at the start, else as its trainer did."""
    return device_key(str(run.launch().get("device") or run.config().get("device") or "cpu"))


def training(ws) -> list[rundir.Run]:
    """The workspace's runs that are training now, however they were started."""
    return [run for run in ws.runs() if not ws.is_builtin(run) and run.state() == rundir.RUNNING]


def waiting(ws) -> list[tuple[rundir.Run, dict]]:
    """The waiting runs with their queue entries, first come first."""
    found = [(run, run.status()) for run in ws.runs()]
    return sorted(((run, entry) for run, entry in found if entry["state"] == rundir.QUEUED),
                  key=lambda pair: pair[1].get("seq", 0))


def submit(ws, run: rundir.Run, entry: dict) -> int | None:
    """Queue `run` (the caller holds the lock), then start whatever can start. entry: device,
    user, resume, epochs, more_minutes and `launched` (what launch.json will hold). Returns the run's place in
    its device's queue, or None when it started at once."""
    seq = max((queued.get("seq", 0) for _, queued in waiting(ws)), default=0) + 1
    rundir.write_json(run.path / rundir.QUEUE_FILE, entry | {"seq": seq, "queued": time.time()})
    promote(ws)
    place = places(waiting(ws)).get(run.name)
    if place is not None:
        ensure_runner(ws.root)
    return place


def promote(ws) -> list[str]:
    """Start the waiting runs that have a free slot on their device, in queue order (the caller
    holds the lock). Returns their names."""
    limit = slots(ws.root)
    busy = Counter(run_device(run) for run in training(ws))
    started = []
    for run, entry in waiting(ws):
        device = device_key(str(entry.get("device") or "cpu"))
        if busy[device] < limit:
            ws._launch(run.path, ws._train_argv(run.path, entry),
                       dict(entry.get("launched") or {}) | {"device": device, "user": entry.get("user")})
            # Only now: a launch that failed leaves the run waiting.
            (run.path / rundir.QUEUE_FILE).unlink(missing_ok=True)
            busy[device] += 1
            started.append(run.name)
    return started


def places(queue: list[tuple[rundir.Run, dict]]) -> dict[str, int]:
    """Each waiting run's place (1, 2, ...) in the queue of its device."""
    seen, found = Counter(), {}
    for run, entry in queue:
        device = device_key(str(entry.get("device") or "cpu"))
        seen[device] += 1
        found[run.name] = seen[device]
    return found


def remaining_seconds(run: rundir.Run) -> float | None:
    """About how long a training run has left: its own ETA, else the estimate it was started with; None if neither."""
    eta = run.progress().get("eta_seconds")
    if isinstance(eta, (int, float)):
        return max(float(eta), 0.0)
    launch = run.launch()
    total = (launch.get("estimate") or {}).get("total_seconds")
    if isinstance(total, (int, float)):
        return max(float(total) - (time.time() - float(launch.get("started") or time.time())), 0.0)
    return None


def estimated_starts(busy: dict[str, list[float | None]], queue: list[tuple[str, float | None]],
                     slots_per_device: int) -> list[float | None]:
    """Seconds from now until each waiting run starts, in queue order. busy: device -> seconds each
    of its training runs has left (None: unknown); queue: (device, expected duration or None) of
    each waiting run. A slot frees when its run ends, and then holds the next waiting run for its
    duration. None where nothing known says when: every slot of the device waits on an unknown end."""
    free: dict[str, list[float | None]] = {}
    starts = []
    for device, duration in queue:
        if device not in free:
            ends = busy.get(device, [])
            free[device] = [0.0] * max(slots_per_device - len(ends), 0) + list(ends)
        known = [(end, i) for i, end in enumerate(free[device]) if end is not None]
        if not known:
            starts.append(None)
            continue
        start, slot = min(known)
        starts.append(start)
        free[device][slot] = None if duration is None else start + duration
    return starts


def summary(ws) -> list[dict]:
    """The waiting runs, first come first: name, device, place in that device's queue, who queued
    it, when, and about how many seconds until it starts (None: unknown). Looking starts the
    runner again if runs wait and it is gone."""
    queue = waiting(ws)
    if not queue:
        return []
    ensure_runner(ws.root)
    busy: dict[str, list[float | None]] = {}
    for run in training(ws):
        busy.setdefault(run_device(run), []).append(remaining_seconds(run))
    devices = [device_key(str(entry.get("device") or "cpu")) for _, entry in queue]
    durations = [((entry.get("launched") or {}).get("estimate") or {}).get("total_seconds") for _, entry in queue]
    limit = slots(ws.root)
    starts = estimated_starts(busy, list(zip(devices, durations)), limit)
    place = places(queue)
    return [{"name": run.name, "device": device, "place": place[run.name], "user": entry.get("user"),
             "queued": entry.get("queued"), "starts_in": start, "resume": bool(entry.get("resume")), "slots": limit}
            for (run, entry), device, start in zip(queue, devices, starts)]


def ensure_runner(root: Path) -> None:
    """Start the runner unless one holds its lock. The lock is taken here and handed to the runner's
    process with the open file, so that there is no moment, while it starts (seconds, to import
    torch), in which a second look would find no runner and start another."""
    from .workspace import REPO, TRAINING_NICE  # the workspace imports this module

    with open(Path(root) / RUNNER_LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # alive
        argv = [sys.executable, "-m", "sasrec.training_queue", str(Path(root).resolve()), str(handle.fileno())]
        with open(Path(root) / RUNNER_LOG, "ab") as log:
            runner = subprocess.Popen(["nice", "-n", str(TRAINING_NICE), *argv] if shutil.which("nice") else argv,
                                      cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True, pass_fds=(handle.fileno(),))
        handle.truncate(0)
        handle.write(f"{runner.pid}\n")  # who holds it, for whoever looks
    # Closing this copy leaves the lock with the runner's: a flock belongs to the open file, shared by both.


def runner_pid(root: Path) -> int | None:
    """The runner's process id while one holds its lock, else None."""
    with open(Path(root) / RUNNER_LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            text = handle.read().strip()
            return int(text) if text.isdigit() else None
    return None


def run_runner(root: Path, held: int | None = None) -> None:
    """The runner: start waiting runs as slots free, until none waits. held: the file descriptor of
    the runner's lock, taken by ensure_runner; without it (started by hand) it takes the lock itself."""
    from .access import ANONYMOUS
    from .workspace import Workspace

    if held is None:
        handle = open(Path(root) / RUNNER_LOCK, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another runner has the queue
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
    else:
        handle = os.fdopen(held, "a")
    ws = Workspace(root, user=ANONYMOUS)  # it starts what editors queued, and changes nothing else
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} runner {os.getpid()} started", flush=True)
    while True:
        with locked(root):
            for name in promote(ws):
                print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} started {name}", flush=True)
            if not waiting(ws):
                # Let go of the runner's lock before the queue's: a run queued after this look
                # finds no runner, and starts one.
                handle.close()
                print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} runner {os.getpid()}: the queue is empty", flush=True)
                return
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    run_runner(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)
