"""What the app needs for real logs, piece by piece: the time estimate, resuming a run, messages
without server paths, and charts that read well for a catalog without categories or with
small metric values."""

import json
import os
import time

import numpy as np
import pandas as pd
import psutil
import pytest

from sasrec import estimate as estimate_module
from sasrec import rundir
from sasrec.config import RunConfig, configs
from sasrec.dataset import build_dataset
from sasrec.readers import Columns
from sasrec.ui import charts, widgets
from sasrec.workspace import DEMO_NAME
from tests.waiting import wait_until


def short_log(num_users=300, num_items=400, seed=0) -> pd.DataFrame:
    """Short histories over a catalog with a pattern (item i is often followed by i + 1)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        item = int(rng.integers(num_items))
        for t in range(int(rng.integers(3, 9))):
            rows.append((f"u{user}", f"i{item}", t))
            item = (item + 1) % num_items if rng.random() < 0.7 else int(rng.integers(num_items))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


@pytest.fixture(scope="module")
def log_dataset():
    return build_dataset(short_log(), Columns("user_id", "item_id", "timestamp"), source="short.csv")


# The estimate

def test_the_estimate_times_the_run_as_it_would_train(log_dataset):
    config = RunConfig(*configs("auto", hidden=16, num_blocks=1, num_heads=1, epochs=7, batch_size=16, threads=1),
                       data=None)
    result = estimate_module.estimate(log_dataset, config)
    windows = sum(max(len(log_dataset.sequence(u)) - 3, 0) > 0 for u in range(log_dataset.num_users))
    assert result["steps_per_epoch"] == -(-windows // 16)
    assert result["settings"]["maxlen"] >= 10 and result["settings"]["loss"] == "ce"  # chosen as the run would
    assert result["seconds_per_step"] > 0 and result["steps_timed"] >= 1
    assert result["epoch_seconds"] >= result["seconds_per_step"] * result["steps_per_epoch"]
    assert result["total_seconds"] == pytest.approx(result["epoch_seconds"] * 7 + result["test_seconds"])
    assert "faster" not in result, "a run of seconds needs no faster settings"


def test_the_estimate_leaves_out_what_a_batch_shape_costs_the_first_time(log_dataset, monkeypatch):
    """A run pays for each batch shape's first step once, in its first epoch (kernels are chosen per
    shape); an estimate that timed those steps would quote every epoch at the first one's pace."""
    import sasrec.train

    first_time, seen = 0.05, set()
    real_loss = sasrec.train.sequence_loss

    def loss_with_a_first_time_cost(model, inputs, *args):
        if inputs.shape not in seen:
            seen.add(inputs.shape)
            time.sleep(first_time)
        return real_loss(model, inputs, *args)

    monkeypatch.setattr(sasrec.train, "sequence_loss", loss_with_a_first_time_cost)
    config = RunConfig(*configs("auto", hidden=8, num_blocks=1, num_heads=1, batch_size=16, threads=1), data=None)
    result = estimate_module.estimate(log_dataset, config)
    assert len(seen) > 1 and result["steps_timed"] >= 4
    assert result["seconds_per_step"] < first_time / 2


def test_the_estimate_plans_no_ease_fit_beside_a_run_that_stored_it(log_dataset, tmp_path, monkeypatch):
    from sasrec import ease, report
    from sasrec.model import SASRec, SASRecConfig

    monkeypatch.setattr(ease, "expected_seconds", lambda num_items: 1000.0)
    config = RunConfig(*configs("auto", hidden=16, num_blocks=1, num_heads=1, epochs=2, batch_size=16, threads=1),
                       data=None)
    runs = tmp_path / "runs"
    runs.mkdir()
    assert estimate_module.estimate(log_dataset, config, runs=runs)["test_seconds"] > 1000
    # a run beside it evaluated on the same split, and stored EASE's results there
    (runs / "first").mkdir()
    report.write_evaluation(runs / "first", SASRec(SASRecConfig(num_items=log_dataset.num_items, maxlen=8, hidden=8,
                                                                  num_heads=1)).eval(), log_dataset)
    assert estimate_module.estimate(log_dataset, config, runs=runs)["test_seconds"] < 1000
    assert estimate_module.estimate(log_dataset, config)["test_seconds"] > 1000, "alone, it finds nothing stored"
    assert [p.name for p in runs.iterdir()] == ["first"], "the estimate leaves nothing in the runs folder"


def test_what_a_killed_estimate_left_is_removed_and_a_live_ones_folder_kept(tmp_path):
    runs = tmp_path / "runs"
    killed, live, run = runs / ".estimate-killed", runs / ".estimate-live", runs / "a-run"
    for folder in (killed, live, run):
        (folder / "alone").mkdir(parents=True)
    hour_ago = time.time() - 3600
    for folder in (killed, run):
        os.utime(folder, (hour_ago, hour_ago))
    estimate_module.remove_leftovers(runs, older_than=360)
    assert sorted(p.name for p in runs.iterdir()) == [".estimate-live", "a-run"], "runs themselves are never touched"


def test_a_long_run_is_offered_faster_settings(log_dataset, monkeypatch):
    monkeypatch.setattr(estimate_module, "LONG_SECONDS", 0.0)
    config = RunConfig(*configs("sasrec+", hidden=16, num_blocks=1, num_heads=1, threads=1), data=None)
    result = estimate_module.estimate_with_faster(log_dataset, config)
    assert result["faster"]["changes"] == {"maxlen": 50, "batch_size": 128, "epochs": 30, "patience": 5}
    assert result["faster"]["settings"]["batch_size"] == 128 and result["faster"]["epochs"] == 30
    assert result["faster"]["steps_per_epoch"] < result["steps_per_epoch"]


def test_faster_settings_sample_negatives_only_for_a_big_catalog():
    settings = {"maxlen": 50, "hidden": 64, "loss": "ce", "batch_size": 128, "epochs": 30, "patience": 5}
    assert estimate_module.faster_settings({"settings": settings}, 5_000) == {}
    assert estimate_module.faster_settings({"settings": settings}, 50_000) == {"loss": "sampled-ce"}


# Resuming

@pytest.fixture
def workspace(workspace, log_dataset):
    workspace.save_dataset(log_dataset, "short", {"source": "short"})
    return workspace


def test_the_apps_runs_wait_passively_and_the_command_line_keeps_openmps_default(workspace, monkeypatch):
    """A run the app starts shares the cores with the app and its viewers: its OpenMP threads must
    not spin (workspace.TRAINING_ENV). The command line's own processes are left as OpenMP has it."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    config = RunConfig(*configs("auto", hidden=16, num_blocks=1, num_heads=1, maxlen=10, epochs=50, batch_size=8),
                       data=None)
    run = workspace.start_run("short", "passive", config)
    pid = run.launch()["pid"]
    try:
        # /proc/PID/environ reads empty for a moment while the launcher execs the trainer (seen once in CI)
        wait_until(lambda: psutil.Process(pid).environ(), timeout=30)
        assert psutil.Process(pid).environ().get("OMP_WAIT_POLICY") == "PASSIVE"
    finally:
        workspace.stop_run(run)
    import sasrec  # noqa: F401  (the package sets nothing for the command line)
    assert "OMP_WAIT_POLICY" not in os.environ


def test_a_stopped_run_resumes_where_it_stopped(workspace):
    config = RunConfig(*configs("auto", hidden=16, num_blocks=1, num_heads=1, maxlen=10, epochs=2, batch_size=8),
                       data=None)
    run = workspace.start_run("short", "first", config, preset="auto")
    assert run.launch()["preset"] == "auto"
    wait_until(lambda: run.state() != rundir.RUNNING)
    assert run.state() == rundir.FINISHED
    with pytest.raises(rundir.RunError, match="only a stopped or interrupted run"):
        workspace.resume_run(run)

    # as if it had been stopped after its first epoch: its checkpoint and one epoch of metrics
    (run.path / "test_metrics.json").unlink()
    rundir.write_jsonl(run.path / "metrics.jsonl", run.metrics()[:1])
    status = rundir.read_json(run.path / "status.json") | {"state": rundir.STOPPED, "updated": time.time() - 1}
    rundir.write_json(run.path / "status.json", status)
    (run.path / "STOP").touch()
    resumed = workspace.resume_run(run, epochs=3)
    assert resumed.state() == rundir.RUNNING, "running from the moment it is launched, before the trainer writes"
    assert not resumed.stop_requested()
    wait_until(lambda: resumed.state() != rundir.RUNNING)
    assert resumed.state() == rundir.FINISHED, resumed.log_tail()
    assert resumed.launch()["resumed"] and resumed.launch()["preset"] == "auto"


def test_what_cannot_be_resumed_says_why(workspace):
    with pytest.raises(rundir.RunError, match="demo model cannot be trained further"):
        workspace.resume_run(workspace.run(DEMO_NAME))
    run_dir = workspace.root / "runs" / "early"
    run_dir.mkdir()
    rundir.write_json(run_dir / "config.json", {"data": {"name": "short"}})
    rundir.write_json(run_dir / "status.json", {"state": rundir.STOPPED, "updated": time.time()})
    with pytest.raises(rundir.RunError, match="before its first checkpoint"):
        workspace.resume_run(workspace.run("early"))


def test_a_launch_after_the_last_status_is_a_run_starting(tmp_path):
    run = rundir.Run(tmp_path)
    rundir.write_json(tmp_path / "status.json", {"state": rundir.STOPPED, "updated": 100.0})
    rundir.write_json(tmp_path / "launch.json", {"pid": 1, "process_started": 50.0, "started": 51.0})
    assert run.status()["state"] == rundir.STOPPED
    rundir.write_json(tmp_path / "launch.json", {"pid": 1, "process_started": 99.5, "started": 101.0})
    assert run.status()["state"] == rundir.RUNNING and "starting" in run.status()["message"]


# Messages

@pytest.mark.parametrize("message, shown", [
    ("/srv/app/workspace/runs/x: no checkpoint yet", "x: no checkpoint yet"),
    ("could not read '/home/me/data/log.csv' (UTF-16)", "could not read 'log.csv' (UTF-16)"),
    ("best.safetensors in run r is not readable", "best.safetensors in run r is not readable"),
    ("3/4 of the users and/or items", "3/4 of the users and/or items"),
])
def test_messages_shown_to_users_hold_no_server_paths(message, shown):
    assert widgets.readable(message) == shown


def test_the_first_checkpoint_is_announced_in_words():
    progress = {"epoch": 1, "epochs": 10, "steps_per_epoch": 100, "step": 40, "global_step": 40, "eta_seconds": 960.0}
    # 960 s for the 960 steps left: 1 s a step, 60 steps to the end of epoch 1
    assert charts.first_checkpoint_eta(progress) == "the first checkpoint comes at the end of epoch 1, in about 1 min"
    assert "in about 45 s once the data is loaded" in charts.first_checkpoint_eta({}, {"epoch_seconds": 44.0})
    assert "still loading" in charts.first_checkpoint_eta({})


@pytest.mark.parametrize("seconds, text", [(0.3, "about 1 s"), (1.3, "about 1 s"), (7.6, "about 8 s"),
                                           (12, "about 10 s"), (44, "about 45 s"), (61, "about 1 min"),
                                           (3599, "about 60 min"), (7_900, "about 2 h 10 min")])
def test_rough_durations(seconds, text):
    assert charts.about(seconds) == text


def test_short_durations_fit_a_metric():
    assert [charts.short_duration(s) for s in (45, 125, 7_620, None)] == ["45s", "2m 05s", "2h 07m", "–"]


# Charts

def items_table(categories) -> pd.DataFrame:
    return pd.DataFrame({"rank": [1, 2], "item_id": ["a", "b"], "title": ["A", "B"], "category": categories,
                         "score": [2.0, 1.0], "probability": [0.6, 0.3]})


def test_predictions_have_no_category_column_without_categories():
    assert "category" not in charts.prediction_table(items_table([None, None]), None, None)
    assert "category" in charts.prediction_table(items_table(["Drama", None]), None, None)


def embedding_points(categories) -> pd.DataFrame:
    n = len(categories)
    return pd.DataFrame({"item_id": [f"i{i}" for i in range(n)], "title": [f"T{i}" for i in range(n)],
                         "category": pd.array(categories, dtype="string"),
                         "popularity": pd.array(np.arange(n) + 1, dtype="Int64"),
                         "x": np.arange(n, dtype=float), "y": np.arange(n, dtype=float)})


def test_the_embedding_map_never_says_null():
    without = charts.embedding_figure(embedding_points([None] * 5), "category")
    text = json.dumps(without.to_plotly_json(), default=str)
    assert "null" not in [t.name for t in without.data] and "category: null" not in text
    assert len(without.data) == 1 and without.data[0].type == "scattergl"  # coloured by popularity instead
    mixed = charts.embedding_figure(embedding_points(["Drama", None, "Comedy", "Drama", None]), "category")
    assert [t.name for t in mixed.data] == ["Drama", "Comedy", "other"]
    assert sum(len(t.x) for t in mixed.data) == 5
    assert not charts.has_categories(embedding_points([None] * 3))


def test_the_embedding_map_shows_at_most_its_limit_most_popular_first():
    points = embedding_points([None] * 50)
    shown = charts.embedding_points_shown(points, most=10)
    assert len(shown) == 10 and set(shown["popularity"]) == set(range(41, 51))
    assert len(charts.embedding_points_shown(points)) == 50


def test_small_full_ranking_values_get_their_own_scale():
    metrics = {key: 0.03 for key in ("hr@10", "ndcg@10", "mrr")} | {"sampled_hr@10": 0.5}
    spec = charts.metrics_chart(metrics).to_dict()
    assert spec["resolve"]["scale"]["y"] == "independent"
    bars = spec["spec"]["layer"][0]["encoding"]
    assert "domain" not in bars["y"].get("scale", {})


def test_one_epoch_curves_have_whole_epochs_and_short_values():
    spec = charts.validation_chart([{"epoch": 1, "valid_ndcg@10": 9.0557551, "valid_hr@10": 0.1}]).to_dict()
    assert spec["encoding"]["x"]["axis"]["format"] == "d"
    assert spec["encoding"]["y"]["axis"]["format"] == ".3~f"


def test_length_breakdown_labels_are_two_short_lines():
    breakdown = pd.DataFrame({"group": ["short", "long"], "span": ["1–3 items", "4–295 items"], "users": [5, 5],
                              "model": ["SASRec", "SASRec"], "ndcg@10": [0.1, 0.2]})
    axis = charts.breakdown_chart(breakdown).to_dict()["layer"][0]["encoding"]["x"]["axis"]
    assert "split" in axis["labelExpr"] and axis["labelAngle"] == 0
