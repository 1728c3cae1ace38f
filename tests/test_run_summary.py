"""The runs table's duration (Workspace.run_summary): the trainer's clock, which never runs backwards
through a run's phases: launched, training, evaluating, ended, resumed. It used to count a run
from its launch until the trainer's first word, then from the start of training: back to 0 s at
the moment the Train page redrew its runs table (when the first progress appeared), which then
showed "1 s" until the run ended."""

import os
import time

import pytest

from sasrec import rundir
from sasrec.config import RunConfig, configs
from sasrec.dataset import build_dataset
from sasrec.readers import Columns
from sasrec.synthetic import generate
from tests.waiting import wait_until


def durations_never_decrease(durations: list[float]) -> bool:
    return all(later >= earlier - 1e-6 for earlier, later in zip(durations, durations[1:]))


@pytest.fixture
def run_dir(workspace):
    path = workspace.root / "runs" / "hand-made"
    path.mkdir(parents=True)
    rundir.write_json(path / "config.json", {"data": {"name": "log"}, "model": {}})
    return path


def test_the_duration_follows_the_trainers_clock_through_every_phase(workspace, run_dir):
    seen = []

    def duration():
        seen.append(workspace.run_summary(workspace.run("hand-made"))["duration_seconds"])
        return seen[-1]

    # launched 30 s ago, loading its data: no training yet
    rundir.write_json(run_dir / "launch.json", rundir.process_identity(os.getpid()) | {"started": time.time() - 30})
    assert workspace.run("hand-made").state() == rundir.RUNNING and duration() == 0.0
    # training for 5 s: the trainer's status (this process plays the trainer), and the clock runs
    status = rundir.StatusWriter(run_dir)
    status.write(rundir.RUNNING, "training on CPU", started=time.time() - 5)
    assert 5 <= duration() < 6
    time.sleep(0.2)
    assert duration() >= seen[-2] + 0.2
    # the status rewritten for the final evaluation: the same clock
    status.write(rundir.RUNNING, "evaluating on the test split, with the baselines")
    assert duration() >= seen[-2]
    # ended: to its last word, the evaluation included (elapsed_seconds was taken before it)
    time.sleep(0.1)
    status.write(rundir.FINISHED, "finished 3 epochs", elapsed_seconds=5.0)
    assert duration() >= seen[-2] > 5.0 and durations_never_decrease(seen)
    ended = seen[-1]

    # resumed: until the new trainer writes, the time of the earlier session; then it counts on
    rundir.write_json(run_dir / "status.json", rundir.read_json(run_dir / "status.json") | {"state": rundir.STOPPED})
    rundir.write_json(run_dir / "launch.json", rundir.process_identity(os.getpid()) | {"started": time.time() + 0.01,
                                                                                      "resumed": True})
    time.sleep(0.05)
    assert workspace.run("hand-made").status()["message"].startswith("starting")
    assert duration() == pytest.approx(ended)
    status = rundir.StatusWriter(run_dir)
    status.write(rundir.RUNNING, "training on CPU", started=time.time() - ended)  # as the trainer sets it back
    assert duration() >= ended and durations_never_decrease(seen)


def test_a_run_that_never_wrote_a_status_has_no_duration(workspace, run_dir):
    rundir.write_json(run_dir / "launch.json", {"pid": 2**22 + 1, "process_started": 1.0, "started": time.time() - 60})
    summary = workspace.run_summary(workspace.run("hand-made"))
    assert summary["state"] == rundir.INTERRUPTED and summary["duration_seconds"] == 0.0


def test_a_real_run_never_counts_backwards_and_its_resume_goes_on_from_where_it_stopped(workspace):
    interactions, items = generate(seed=8, num_users=150, num_series=4, num_films=40, num_franchises=2)
    workspace.save_dataset(build_dataset(interactions, Columns("user_id", "item_id", "timestamp"), items, source="log"),
                           "log", {"source": "log"})
    settings = dict(hidden=16, num_blocks=1, num_heads=1, maxlen=20, batch_size=8, threads=1, device="cpu")
    run = workspace.start_run("log", "timed", RunConfig(*configs("auto", epochs=1000, patience=1000, **settings),
                                                        data=None))
    seen, phases = [], []

    def sample(until):
        summary = workspace.run_summary(run)
        seen.append(summary["duration_seconds"])
        phases.append(summary["message"].split(" on ")[0].split(":")[0])
        return until(summary)

    wait_until(lambda: sample(lambda summary: len(run.metrics()) >= 1), timeout=240)
    workspace.stop_run(run)  # during its second epoch
    wait_until(lambda: sample(lambda summary: summary["state"] != rundir.RUNNING), timeout=120)
    assert run.state() == rundir.STOPPED, run.log_tail()
    assert durations_never_decrease(seen), seen
    assert phases[0] == "starting" and "training" in phases, phases
    stopped = seen[-1]

    seen, phases = [], []
    resumed = workspace.resume_run(run, epochs=2)  # the second epoch again, then the final evaluation
    wait_until(lambda: sample(lambda summary: summary["state"] != rundir.RUNNING), timeout=240)
    assert resumed.state() == rundir.FINISHED, resumed.log_tail()
    starting = [duration for duration, phase in zip(seen, phases) if phase == "starting"]
    assert starting and all(duration == pytest.approx(stopped) for duration in starting), (starting, stopped)
    assert seen[-1] > stopped
    training = seen[len(starting):]
    assert durations_never_decrease(training), training
