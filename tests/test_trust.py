"""The defects a review found (issue "Trust"), each pinned by a test: links that named paths,
runs that trained on other data than was saved, wrong targets for short users, serving and
evaluation hiding different items, pids taken for processes, status races and untrusted files."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
from streamlit.testing.v1 import AppTest

from sasrec import cli, rundir
from sasrec.config import RunConfig, configs
from sasrec.dataset import Preprocessing, build_dataset
from sasrec.evaluate import evaluate
from sasrec.inference import Recommender
from sasrec.model import SASRec, SASRecConfig
from sasrec.readers import Columns
from sasrec.synthetic import generate
from sasrec.workspace import SAMPLE_NAME
from tests.browser import ROOT
from tests.waiting import wait_until

SMALL = dict(epochs=2, hidden=16, num_blocks=1, num_heads=1, maxlen=20, batch_size=32, threads=1, device="cpu")


# 1. A name from a link never becomes a path

@pytest.mark.parametrize("name", ["..", "../datasets", "/tmp", "runs/../..", "demo/..", "."])
def test_a_link_cannot_name_a_directory_to_delete(workspace, tmp_path, name):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    tiny, _ = generate(5, num_users=40, num_series=2, num_films=60, num_franchises=1)
    saved = workspace.save_dataset(build_dataset(tiny, Columns("user_id", "item_id", "timestamp"), source="t"),
                                   "tiny", {"source": "tiny"})
    with pytest.raises(rundir.RunError, match="no run named"):
        workspace.run(name if name != "/tmp" else str(outside))

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["run"] = str(outside) if name == "/tmp" else name
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    # The page shows the demo, which cannot be deleted, instead of the named path.
    assert at.button(key="delete_run").disabled
    assert at.session_state["run"] == "demo"
    assert (outside / "keep.txt").exists() and saved.path.exists() and (workspace.root / "datasets").is_dir()


def test_run_names_are_unique_and_never_the_demo(workspace):
    with pytest.raises(rundir.RunError, match="bundled model"):
        workspace.start_run(SAMPLE_NAME, "demo", RunConfig(*configs("demo"), data=None))
    (workspace.root / "runs" / "demo").mkdir()  # even a folder of that name is not a second "demo"
    rundir.write_json(workspace.root / "runs" / "demo" / "config.json", {"model": {}})
    assert [r.name for r in workspace.runs()].count("demo") == 1
    assert workspace.run("demo").path == workspace.run("demo").path.resolve()
    assert workspace.is_builtin(workspace.run("demo"))


def test_links_outside_the_workspace_are_not_listed(workspace, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rundir.write_json(elsewhere / "config.json", {"model": {}})
    (workspace.root / "runs" / "sneaky").symlink_to(elsewhere)
    assert "sneaky" not in [r.name for r in workspace.runs()]
    with pytest.raises(rundir.RunError):
        workspace.delete_run(rundir.Run(workspace.root / "runs" / "sneaky"))
    assert elsewhere.exists()


# 2. A run trains on exactly the dataset that was saved

def test_the_app_trains_on_the_saved_dataset_as_saved(workspace):
    rows = [("u1", "a", 1), ("u1", "a", 1), ("u1", "b", 2), ("u2", "c", 1)]  # a duplicate, and a user of 1 event
    rows += [(f"v{u}", f"i{(u + t) % 30}", t) for u in range(60) for t in range(6)]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    chosen = Preprocessing(drop_duplicates=False, min_seq_len=1)
    dataset = build_dataset(events, Columns("user_id", "item_id", "timestamp"), preprocessing=chosen, source="log")
    entry = workspace.save_dataset(dataset, "kept", {"source": "kept"})

    run = workspace.start_run(entry.name, "exact", RunConfig(*configs("auto", **SMALL), data=None))
    wait_until(lambda: run.state() != rundir.RUNNING)
    assert run.state() == rundir.FINISHED, run.log_tail()
    config = run.config()
    assert config["dataset"]["interactions"] == dataset.num_events == len(rows)
    assert config["dataset"]["users"] == dataset.num_users
    assert config["data"]["preprocessing"] == {"min_rating": None, "drop_duplicates": False, "collapse_repeats": False,
                                               "k_core": 0, "min_seq_len": 0}
    assert config["data"]["saved_preprocessing"] == chosen.to_dict()
    assert run.test_metrics()["skipped_users"] == 1  # u2 has one event: no test item, and it says so


# 3. Short users get no wrong targets (see also test_data.test_leave_one_out_skips_users_too_short_for_it)

def test_evaluation_skips_and_counts_users_too_short_to_evaluate(make_dataset):
    data = make_dataset({"a": ["x", "y", "z", "w"], "b": ["z"], "c": ["y", "x"], "d": ["w", "z", "y"]}, min_seq_len=1)
    model = SASRec(SASRecConfig(num_items=data.num_items, maxlen=5, hidden=8, num_heads=1))
    report = evaluate(model, data, "valid")
    assert report.metrics["users"] == 2 and report.metrics["skipped_users"] == 2
    assert list(report.per_user["user_id"]) == ["a", "d"]


# 4. Serving and evaluation hide the same items

def test_serving_hides_the_whole_history_as_evaluation_does(make_dataset):
    data = make_dataset({u: [f"i{(u * 3 + t) % 12}" for t in range(8)] for u in range(6)})
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=data.num_items, maxlen=3, hidden=8, num_heads=1)).eval()
    catalog = pd.DataFrame({"item_id": data.item_ids[1:], "title": data.item_ids[1:], "category": None},
                           index=pd.RangeIndex(1, data.num_items + 1))
    recommender = Recommender(model, catalog)
    history = [str(i) for i in data.item_ids[data.sequence(0)][:-1]]  # 7 items, longer than maxlen 3
    shown = recommender.recommend(history, k=data.num_items)
    assert not set(shown.items["item_id"]) & set(history), "an item older than the model's window was recommended"
    assert len(shown.items) == data.num_items - len(set(history))

    # Evaluation, on the same user and weights, ranks the target among the same candidates.
    report = evaluate(model, data, "test")
    target = str(data.item_ids[data.sequence(0)][-1])
    expected = list(shown.items["item_id"]).index(target) + 1 if target not in history else None
    if expected is not None:
        assert report.per_user.set_index("user_id").loc[data.user_ids[0], "rank"] == expected


# 5. Process identity, and Delete on a running run

def test_a_reused_pid_is_not_a_live_run(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    me = rundir.process_identity()
    rundir.write_json(run_dir / "status.json", {"state": "running", **me,
                                                "started_since_boot": me["started_since_boot"] - 3600})
    run = rundir.Run(run_dir)
    assert not run.is_alive() and run.state() == rundir.INTERRUPTED
    rundir.write_json(run_dir / "status.json", {"state": "running", **me})
    assert run.is_alive() and run.state() == rundir.RUNNING


def test_a_clock_adjustment_does_not_make_a_live_run_look_dead(monkeypatch):
    """psutil dates a process from the boot time, which it reads from the clock now; NTP moved it
    by a second in one CI run, and a live trainer showed as interrupted and ignored Stop."""
    me = rundir.process_identity()
    booted = psutil._psplatform.boot_time()
    monkeypatch.setattr(psutil._psplatform, "boot_time", lambda: booted + 1.0)
    assert psutil.Process().create_time() == pytest.approx(me["process_started"] + 1.0)  # the shift is real
    assert rundir.is_alive(me)


def test_delete_stops_a_running_run_and_waits_for_it(workspace):
    settings = SMALL | {"epochs": 1000, "batch_size": 2}
    run = workspace.start_run(SAMPLE_NAME, "busy", RunConfig(*configs("demo", **settings), data=None))
    wait_until(lambda: run.progress().get("step", 0) > 0)
    identity = run.status()
    workspace.delete_run(run)
    assert not run.path.exists()
    assert not rundir.is_alive(identity), "the directory went while its trainer was still running"


def test_delete_does_not_signal_a_process_that_reused_the_pid(workspace):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_dir = workspace.root / "runs" / "old"
        run_dir.mkdir()
        rundir.write_json(run_dir / "config.json", {"model": {}})
        identity = rundir.process_identity(bystander.pid)
        rundir.write_json(run_dir / "status.json", {"state": "running", **identity,
                                                    "started_since_boot": identity["started_since_boot"] - 100})
        workspace.delete_run(workspace.run("old"))
        assert not run_dir.exists()
        assert bystander.poll() is None, "an unrelated process was signalled"
    finally:
        bystander.kill()
        bystander.wait()


# 6. Status: only the trainer writes it; a start-up failure is "failed", with the message

def test_a_data_error_at_start_up_fails_the_run_with_its_message(workspace):
    tiny, _ = generate(5, num_users=40, num_series=2, num_films=60, num_franchises=1)
    entry = workspace.save_dataset(build_dataset(tiny, Columns("user_id", "item_id", "timestamp"), source="t"),
                                   "broken", {"source": "broken"})
    (entry.path / "interactions.parquet").write_bytes(b"PAR1 this is not parquet")
    run = workspace.start_run(entry.name, "doomed", RunConfig(*configs("demo", **SMALL), data=None))
    wait_until(lambda: run.state() != rundir.RUNNING)
    assert run.state() == rundir.FAILED
    assert "Parquet" in run.status()["message"]
    assert not (run.path / "status.json").read_text().count("Traceback")


def test_the_app_never_writes_a_status(workspace):
    run = workspace.start_run(SAMPLE_NAME, "mine", RunConfig(*configs("demo", **SMALL), data=None))
    assert (run.path / "launch.json").exists()
    wait_until(lambda: run.state() != rundir.RUNNING)
    status = run.status()
    assert status["pid"] == run.launch()["pid"], "status.json is written by the training process alone"


# 7. Untrusted files

@pytest.fixture
def trained(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    interactions, items = generate(seed=1, num_users=80, num_series=3, num_films=40, num_franchises=2)
    interactions.to_csv(data / "log.csv", index=False)
    out = tmp_path_factory.mktemp("runs") / "run"
    cli.main(["train", str(data / "log.csv"), "--out", str(out), "--epochs", "1", "--maxlen", "10", "--hidden", "8",
              "--heads", "1", "--threads", "1"])
    return out


def cli_run(*args):
    return subprocess.run([sys.executable, "-m", "sasrec", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("content", [b"garbage, not weights", b"\x80\x04\x95pickle-ish", None])
def test_bad_weight_files_give_one_clear_message(trained, content, tmp_path):
    marker = tmp_path / "unpickled"
    if content is None:  # a real pickle whose loading would run code
        class Boom:
            def __reduce__(self):
                return (open, (str(marker), "w"))
        torch.save({"weights": Boom()}, trained / "best.safetensors")
    else:
        (trained / "best.safetensors").write_bytes(content)
    (trained / "test_metrics.json").unlink()
    result = cli_run("evaluate", trained)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not a readable safetensors" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists(), "a pickle was unpickled"


def test_a_corrupt_json_file_in_a_run_is_not_a_crash(trained):
    (trained / "status.json").write_text("{not json")
    (trained / "metrics.jsonl").write_bytes(b"\xff\xfe")
    run = rundir.Run(trained)
    assert run.status()["state"] == "unknown" and run.metrics() == []


def test_uploads_over_the_limit_get_a_message(workspace, monkeypatch):
    monkeypatch.setattr("sasrec.workspace.MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(rundir.RunError, match="limited to"):
        workspace.store_upload("big.csv", b"x" * 1001)
    assert workspace.store_upload("../../etc/passwd", b"user_id,item_id\n").parent.parent == workspace.root / "uploads"


def test_a_resume_checkpoint_holds_no_pickle(trained):
    raw = (trained / rundir.CHECKPOINT).read_bytes()
    header = json.loads(raw[8: 8 + int.from_bytes(raw[:8], "little")])
    assert "state" in header["__metadata__"] and all(k.startswith(("model.", "optimizer.", "__")) for k in header)
    assert not list(trained.glob("*.pt"))
    assert np.isfinite(json.loads(header["__metadata__"]["state"])["best_valid_ndcg@10"])
