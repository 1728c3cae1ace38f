"""Crashes: a training process killed at any moment, a full disk, a refused write. Each leaves a
readable run directory whose state says what happened, and an app that still works."""

import errno
import os
import random
import signal
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

from sasrec import cli, rundir
from sasrec.config import RunConfig, configs
from sasrec.inference import Recommender
from sasrec.model import SASRec, SASRecConfig
from sasrec.synthetic import generate
from tests.browser import ROOT
from tests.waiting import wait_until

KILLS = 6  # each costs a process start (a few seconds)
SETTINGS = dict(epochs=1000, patience=1000, hidden=16, num_blocks=1, num_heads=1, maxlen=20, batch_size=8, threads=1,
                device="cpu")


@pytest.fixture
def workspace(workspace):
    """The workspace, with a saved dataset "log"."""
    from sasrec.dataset import build_dataset
    from sasrec.readers import Columns

    interactions, items = generate(seed=8, num_users=200, num_series=4, num_films=60, num_franchises=2)
    workspace.save_dataset(build_dataset(interactions, Columns("user_id", "item_id", "timestamp"), items, source="log"),
                           "log", {"source": "log"})
    return workspace


def test_sigkill_at_random_moments_leaves_a_usable_run(workspace):
    rng = random.Random(0)
    for attempt in range(KILLS):
        run = workspace.start_run("log", f"killed-{attempt}", RunConfig(*configs("auto", **SETTINGS), data=None))
        pid = run.launch()["pid"]
        # Anywhere from loading the data to the middle of an epoch's checkpoint writes.
        time.sleep(rng.uniform(0.5, 6.0))
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda run=run: not run.is_alive())

        assert run.state() == rundir.INTERRUPTED
        # A write cut short leaves only its hidden temporary file; every file under its real name is whole.
        for path in run.path.iterdir():
            if path.suffix == ".json":
                assert isinstance(rundir.read_json(path), dict), path.name
            elif path.suffix == ".tmp":
                assert path.name.startswith("."), path.name
        if run.exists():  # killed after it wrote its config: everything there reads back
            run.require()
            if (run.path / rundir.CHECKPOINT).exists():
                model = SASRec(SASRecConfig(**run.config()["model"]))
                optimizer = torch.optim.Adam(model.parameters())
                state_ = rundir.load_checkpoint(run.path / rundir.CHECKPOINT, model, optimizer)
                assert state_["epoch"] >= 1
                assert len(Recommender.from_run(run.path, "last").catalog) > 0

    # The app lists every killed run as interrupted, and still works.
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "status" in d.value.columns).set_index("name")
    assert all(table.loc[f"killed-{i}", "status"] == rundir.INTERRUPTED for i in range(KILLS))


def test_a_killed_run_resumes_from_its_last_checkpoint(workspace):
    run = workspace.start_run("log", "again", RunConfig(*configs("auto", **SETTINGS), data=None))
    wait_until(lambda: len(run.metrics()) >= 2)
    os.kill(run.launch()["pid"], signal.SIGKILL)
    wait_until(lambda: not run.is_alive())
    saved_epoch = rundir.load_checkpoint(run.path / rundir.CHECKPOINT, *_model_and_optimizer(run))["epoch"]
    (run.path / ".metrics.jsonl.cut-short.tmp").write_text('{"epoch": 1, "lo')  # as a kill mid-write leaves
    cli.main(["train", "--resume", str(run.path), "--epochs", str(saved_epoch + 1)])
    assert not list(run.path.glob(".*.tmp")), "the resumed run cleans up what the killed one left"
    assert run.state() == rundir.FINISHED
    assert run.metrics()[-1]["epoch"] == saved_epoch + 1


def _model_and_optimizer(run):
    model = SASRec(SASRecConfig(**run.config()["model"]))
    return model, torch.optim.Adam(model.parameters())


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device", "/srv/ws/runs/r/last.safetensors"),
                                   PermissionError(errno.EACCES, "Permission denied", "/srv/ws/runs/r/metrics.jsonl")])
def test_a_write_that_fails_mid_run_fails_the_run_with_a_message(tmp_path, monkeypatch, capsys, error):
    interactions, _ = generate(seed=2, num_users=80, num_series=3, num_films=40, num_franchises=1)
    interactions.to_csv(tmp_path / "log.csv", index=False)
    real_save = rundir.save_weights
    calls = []

    def failing_save(model, path):
        calls.append(path)
        if len(calls) == 3:  # in the second epoch
            raise error
        real_save(model, path)

    monkeypatch.setattr(rundir, "save_weights", failing_save)
    with pytest.raises(SystemExit) as exited:
        cli.main(["train", str(tmp_path / "log.csv"), "--out", str(tmp_path / "run"), "--epochs", "5", "--maxlen", "10",
                  "--hidden", "8", "--heads", "1", "--threads", "1"])
    assert exited.value.code == 2
    status = rundir.Run(tmp_path / "run").status()
    assert status["state"] == rundir.FAILED
    assert error.strerror in status["message"] and "/srv" not in status["message"], status["message"]
    assert error.strerror in capsys.readouterr().err
