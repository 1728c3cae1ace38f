"""The same `python -m sasrec train` under torchrun: two processes with gloo on the CPU."""

import json
import os
import subprocess
import sys

import pytest

from sasrec import rundir
from sasrec.synthetic import generate
from tests.browser import ROOT

SETTINGS = ["--epochs", "4", "--patience", "10", "--maxlen", "50", "--hidden", "32", "--device", "cpu", "--seed", "3"]


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    interactions, items = generate(seed=3, num_users=400, num_series=6, num_films=60, num_franchises=3)
    interactions.to_csv(folder / "log.csv", index=False)
    return folder / "log.csv"


def train(*args, processes: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] if processes > 1
                else [sys.executable])
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, "-m", "sasrec", "train", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_two_processes_train_one_run_as_well_as_one_process(log, tmp_path):
    ddp = train(log, "--out", tmp_path / "ddp", "--batch-size", 16, *SETTINGS, processes=2)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = train(log, "--out", tmp_path / "single", "--batch-size", 32, "--lr", 0.004, "--threads", 1, *SETTINGS)
    assert single.returncode == 0, single.stderr[-3000:]

    run = rundir.Run(tmp_path / "ddp")
    config = run.config()
    assert config["world_size"] == 2 and "linear scaling" in config["chosen"]["lr_scaling"]
    assert "x 2 processes" in config["device_name"]
    # Written once, by rank 0: one line per epoch, one summary printed, no leftovers of a second writer.
    assert [m["epoch"] for m in run.metrics()] == [1, 2, 3, 4]
    assert ddp.stdout.count("finished:") == 1 and ddp.stdout.count("epoch 1:") == 1
    assert not [p.name for p in run.path.rglob("*.tmp")]
    assert run.status()["state"] == "finished"
    # Each rank ran half of the epoch's batches of 16: the global batch is 32, as in the single run.
    windows_per_epoch = json.loads((tmp_path / "single" / "progress.json").read_text())["steps_per_epoch"]
    assert run.progress()["steps_per_epoch"] in (windows_per_epoch, windows_per_epoch - 1)

    # Within noise of one process with the same global batch and learning rate (seeds move it by about 0.02).
    ddp_ndcg, single_ndcg = run.test_metrics()["ndcg@10"], rundir.Run(tmp_path / "single").test_metrics()["ndcg@10"]
    assert single_ndcg > 0.3, "the single-process reference did not learn the planted patterns"
    assert abs(ddp_ndcg - single_ndcg) < 0.08, (ddp_ndcg, single_ndcg)


def test_a_stopped_two_process_run_resumes_in_one_process(log, tmp_path):
    out = tmp_path / "run"
    first = train(log, "--out", out, "--batch-size", 16, *SETTINGS[:1], "2", *SETTINGS[2:], processes=2)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = train("--resume", out, "--epochs", 3)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = rundir.Run(out)
    assert [m["epoch"] for m in run.metrics()] == [1, 2, 3] and run.config()["world_size"] == 1
    assert run.status()["state"] == "finished"


def test_the_device_menu_lists_every_gpu_with_its_memory(monkeypatch):
    from types import SimpleNamespace

    import torch

    from sasrec import workspace
    from sasrec.train import device_name

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: SimpleNamespace(name=f"NVIDIA H100 #{i}", total_memory=80 * 2 ** 30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100")
    menu = workspace.devices()
    assert menu["cuda:0"] == "GPU 0: NVIDIA H100 #0, 80 GB" and menu["cuda:1"] == "GPU 1: NVIDIA H100 #1, 80 GB"
    assert menu["auto"].startswith("Auto: GPU 0") and "cpu" in menu
    assert device_name(torch.device("cuda"), torch.bfloat16) == "CUDA (NVIDIA H100, bf16)"
    assert device_name(torch.device("cuda"), torch.float16) == "CUDA (NVIDIA H100, fp16)"


def test_two_processes_end_together_at_the_time_budget(log, tmp_path):
    """Rank 0 plans the end and every rank learns it at the same sync point: both stop there, at one
    learning rate, and the run says the budget ended it."""
    out = tmp_path / "run"
    ddp = train(log, "--out", out, "--batch-size", 16, "--epochs", 1000, *SETTINGS[4:],
                "--time-budget", "25s", "--patience", 1000,  # no early stop on this easy log
                processes=2)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    run = rundir.Run(out)
    status = run.status()
    assert status["state"] == "finished" and status["ended_by"] == "budget", status
    assert ddp.stdout.count("finished:") == 1 and "time budget of 25 s ended it" in ddp.stdout
    assert 1 <= len(run.metrics()) < 1000 and status["elapsed_seconds"] < 25 + 5
    assert run.progress()["learning_rate"] < 0.1 * run.config()["train"]["lr"] * 2  # two processes: twice the rate
