"""The training queue (issue 20): at most N runs train at once per device, however many starts
arrive at the same moment (threads of one server, or several processes); runs from the command line
count and are never held back; a waiting run starts by itself when a slot frees, also after the
queue's runner was killed; places and estimated starts."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from sasrec import rundir, training_queue
from sasrec.config import RunConfig, configs
from sasrec.dataset import build_dataset
from sasrec.readers import Columns
from sasrec.synthetic import generate
from sasrec.workspace import REPO
from tests.waiting import wait_until

# Small enough to start in seconds; trains until stopped.
SETTINGS = dict(epochs=1000, patience=1000, hidden=8, num_blocks=1, num_heads=1, maxlen=10, batch_size=32, threads=1,
                device="cpu")


def states(ws) -> dict[str, str]:
    return {run.name: run.state() for run in ws.runs() if not ws.is_builtin(run)}


def count(ws, state: str) -> int:
    return list(states(ws).values()).count(state)


def runner_pid(ws) -> int | None:
    return training_queue.runner_pid(ws.root)


@pytest.fixture
def tiny(workspace):
    interactions, items = generate(5, num_users=80, num_series=2, num_films=100, num_franchises=1)
    dataset = build_dataset(interactions, Columns("user_id", "item_id", "timestamp"), items, source="tiny.csv")
    return workspace.save_dataset(dataset, "tiny", {"source": "tiny"})


def holding_a_slot(ws, name: str, process, device="cpu") -> rundir.Run:
    """A run, as the command line leaves it, whose trainer is `process`."""
    path = ws.root / "runs" / name
    path.mkdir()
    rundir.write_json(path / "config.json", {"data": {"name": "tiny"}, "model": {}, "device": device})
    rundir.write_json(path / "status.json", {"state": rundir.RUNNING, "message": "",
                                             **rundir.process_identity(process.pid), "updated": time.time()})
    return rundir.Run(path)


def test_estimated_starts_add_up_what_is_ahead():
    starts = training_queue.estimated_starts
    # One slot, busy for 60 s more: the first waits 60 s, the second also the first's 100 s.
    assert starts({"cpu": [60.0]}, [("cpu", 100.0), ("cpu", 30.0), ("cpu", None)], 1) == [60.0, 160.0, 190.0]
    # After a run of unknown length, nothing known says when.
    assert starts({"cpu": [60.0]}, [("cpu", None), ("cpu", 10.0)], 1) == [60.0, None]
    # Two slots: the earlier end takes the next run.
    assert starts({"cpu": [50.0, 20.0]}, [("cpu", 100.0), ("cpu", 10.0), ("cpu", 5.0)], 2) == [20.0, 50.0, 60.0]
    # Another device has its own slots; a free slot starts at once; a slot of unknown end is skipped.
    assert starts({"cpu": [60.0], "cuda:0": [None]}, [("cuda:0", 5.0), ("cuda:1", 5.0), ("cpu", 1.0)], 1) == \
        [None, 0.0, 60.0]
    assert starts({"cpu": [None, 30.0]}, [("cpu", 10.0)], 2) == [30.0]


def test_slots_are_per_device_and_runs_from_the_command_line_count(workspace, monkeypatch):
    """No processes: a launch is recorded, and counts as a training run from then on."""
    launched = []

    def launch(out, argv, entry):
        launched.append((out.name, argv, entry))
        rundir.write_json(out / "launch.json", rundir.process_identity() | {"started": time.time()} | entry)
        return rundir.Run(out)

    monkeypatch.setattr(workspace, "_launch", launch)
    monkeypatch.setattr(training_queue, "ensure_runner", lambda root: None)
    training_queue.configure(workspace.root, 2)
    me = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        holding_a_slot(workspace, "from-the-command-line", me)
        with training_queue.locked(workspace.root):
            places = {}
            for name, device in [("cpu-1", "cpu"), ("cpu-2", "cpu"), ("gpu-0", "cuda:0"), ("cpu-3", "cpu"),
                                 ("gpu-1", "cuda:1"), ("gpu-0b", "cuda:0")]:
                path = workspace.root / "runs" / name
                path.mkdir()
                rundir.write_json(path / "config.json", {"train": {"threads": 2 if name == "cpu-1" else 0}})
                places[name] = training_queue.submit(workspace, rundir.Run(path), {
                    "device": device, "user": "ana@example.com", "launched": {"dataset": "tiny"}})
        # Two CPU slots, one taken from the command line: one more CPU run; each GPU has two of its own.
        assert places == {"cpu-1": None, "cpu-2": 1, "gpu-0": None, "cpu-3": 2, "gpu-1": None, "gpu-0b": None}
        assert [name for name, _, _ in launched] == ["cpu-1", "gpu-0", "gpu-1", "gpu-0b"]
        name, argv, entry = launched[0]
        assert argv == ["train", "--config", str(workspace.root / "runs/cpu-1/config.json"), "--out",
                        str(workspace.root / "runs/cpu-1")]  # its threads are in its config
        assert launched[1][1][-2:] == ["--threads", str(os.cpu_count())]  # every core, at low priority
        assert entry == {"dataset": "tiny", "device": "cpu", "user": "ana@example.com"}
        assert states(workspace)["cpu-2"] == rundir.QUEUED

        me.kill()  # the command line's run ends: its slot goes to the first in line
        me.wait()
        with training_queue.locked(workspace.root):
            assert training_queue.promote(workspace) == ["cpu-2"]
            assert training_queue.promote(workspace) == []
        assert training_queue.places(training_queue.waiting(workspace)) == {"cpu-3": 1}
    finally:
        me.kill()
        me.wait()


def test_four_starts_at_the_same_moment_never_train_two_at_once(workspace, tiny):
    """Four sessions click Start at once: one trains, three wait in distinct places. A run from the
    command line is not held back, and holds a slot while it trains."""
    barrier = threading.Barrier(4)
    outcomes = {}

    def start(name):
        barrier.wait()
        outcomes[name] = workspace.start_run("tiny", name, RunConfig(*configs("auto", **SETTINGS), data=None))

    threads = [threading.Thread(target=start, args=(f"run-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(states(workspace).values()) == [rundir.QUEUED] * 3 + [rundir.RUNNING]
    first = next(name for name, state in states(workspace).items() if state == rundir.RUNNING)
    queue = workspace.queue()
    assert [entry["place"] for entry in queue] == [1, 2, 3]
    assert {entry["name"] for entry in queue} == {f"run-{i}" for i in range(4)} - {first}
    assert runner_pid(workspace) is not None, "runs wait: the runner is there to start them"
    wait_until(lambda: workspace.run(first).progress().get("step", 0) > 0)
    # The command line is not held back...
    cli = subprocess.Popen([sys.executable, "-m", "sasrec", "train", str(tiny.path), "--out",
                            str(workspace.root / "runs" / "cli"), "--epochs", "1000", "--patience", "1000",
                            "--hidden", "8", "--maxlen", "10", "--threads", "1", "--device", "cpu"], cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: states(workspace).get("cli") == rundir.RUNNING)
        # ...and counts: when the app's run ends, the queue still waits for the command line's.
        workspace.stop_run(workspace.run(first))
        wait_until(lambda: states(workspace)[first] == rundir.STOPPED)
        for _ in range(30):  # 3 s: three looks of the runner
            assert count(workspace, rundir.RUNNING) == 1 and count(workspace, rundir.QUEUED) == 3, states(workspace)
            time.sleep(0.1)
        workspace.stop_run(workspace.run("cli"))
        # The first in line starts by itself; never two at once.
        deadline = time.time() + 60
        while states(workspace)[queue[0]["name"]] != rundir.RUNNING:
            assert count(workspace, rundir.RUNNING) <= 1, states(workspace)
            assert time.time() < deadline, (states(workspace), (workspace.root / training_queue.RUNNER_LOG).read_text())
            time.sleep(0.05)
        assert states(workspace)["cli"] == rundir.STOPPED
        assert [entry["name"] for entry in workspace.queue()] == [queue[1]["name"], queue[2]["name"]]
        assert [entry["place"] for entry in workspace.queue()] == [1, 2]
        launch = workspace.run(queue[0]["name"]).launch()
        assert launch["device"] == "cpu" and launch["user"] == "local" and launch["dataset"] == "tiny"
    finally:
        cli.kill()
        cli.wait()
    for entry in workspace.queue():
        workspace.cancel_run(workspace.run(entry["name"]))
    wait_until(lambda: runner_pid(workspace) is None, timeout=30)  # the queue is empty: the runner has ended
    starts = [line for line in workspace.audit_log(20) if line["what"] == "start"]
    assert sorted(line.get("queued") or 0 for line in starts) == [0, 1, 2, 3]


STARTER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from sasrec.config import RunConfig, configs
    from sasrec.workspace import Workspace
    root, name, ready = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    ws = Workspace(root)
    (ready / name).touch()  # a barrier: both start the moment both are ready
    while len(list(ready.iterdir())) < 2:
        time.sleep(0.001)
    run = ws.start_run("tiny", name, RunConfig(*configs("auto", epochs=1000, patience=1000, hidden=8, maxlen=10,
                                                        threads=1, device="cpu"), data=None))
    print(run.state())
""")


def test_two_servers_queue_at_once_and_a_killed_runner_comes_back(workspace, tiny, sleeper, tmp_path):
    """Two processes (two servers on one workspace) start runs at the same instant while the slot is
    taken: two places. The queue's runner is killed (as by a reboot); the next look at the queue
    starts another, which starts the first in line when the slot frees."""
    holding_a_slot(workspace, "held", sleeper)
    ready = tmp_path / "ready"
    ready.mkdir()
    starters = [subprocess.Popen([sys.executable, "-c", STARTER, str(workspace.root), name, str(ready)], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for name in ("from-a", "from-b")]
    outputs = [starter.communicate(timeout=120) for starter in starters]
    assert [out.strip() for out, _ in outputs] == [rundir.QUEUED, rundir.QUEUED], outputs
    queue = workspace.queue()
    assert sorted(entry["place"] for entry in queue) == [1, 2]
    assert len({entry["name"] for entry in queue}) == 2

    wait_until(lambda: runner_pid(workspace) is not None, timeout=30)
    killed = runner_pid(workspace)
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: runner_pid(workspace) is None, timeout=10)
    workspace.queue()  # a look at the queue, as the Train page or a server's start takes
    wait_until(lambda: runner_pid(workspace) not in (None, killed), timeout=30)

    sleeper.kill()  # the slot frees
    first, second = queue[0]["name"], queue[1]["name"]
    wait_until(lambda: states(workspace)[first] == rundir.RUNNING, timeout=60)
    assert states(workspace)[second] == rundir.QUEUED
    assert workspace.queue()[0]["place"] == 1
    workspace.cancel_run(workspace.run(second))
    workspace.stop_run(workspace.run(first))
    wait_until(lambda: states(workspace)[first] != rundir.RUNNING, timeout=30)
    assert workspace.queue() == []
