"""The Data and Train pages under Streamlit's AppTest: they render, take good and bad uploads
without a traceback, and start training runs that end in the background."""

import re
import subprocess
import sys
import time

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from sasrec import rundir
from sasrec.dataset import build_dataset
from sasrec.readers import Columns
from sasrec.synthetic import generate
from tests.browser import ROOT

APP = str(ROOT / "app.py")
SMALL = {"train_epochs": 2, "train_hidden": 16, "train_num_blocks": 1, "train_num_heads": 1, "train_maxlen": 50,
         "train_batch_size": 32}


@pytest.fixture(scope="module")
def log_csv() -> bytes:
    """A small log whose item column has a name that says nothing: the user has to map it."""
    interactions, _ = generate(3, num_users=120, num_series=4, num_films=40, num_franchises=2)
    return interactions.rename(columns={"item_id": "show"}).to_csv(index=False).encode()


@pytest.fixture
def tiny(workspace):
    """A tiny saved dataset. Its catalog is large enough for the test split's 100 sampled
    negatives per user, which a catalog of 40 films is not."""
    interactions, items = generate(5, num_users=120, num_series=4, num_films=200, num_franchises=2)
    dataset = build_dataset(interactions, Columns("user_id", "item_id", "timestamp"), items, source="tiny.csv")
    return workspace.save_dataset(dataset, "tiny", {"source": "tiny"})


def open_page(page: str, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(page).run()
    assert not at.exception
    return at


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def run_status(at, name: str) -> str:
    """The run's status as the page's runs table shows it."""
    table = next(d.value for d in at.dataframe if "status" in d.value.columns)
    return table.set_index("name").loc[name, "status"]


def poll(at, until, timeout=120):
    """Rerun the page, as its fragment would, until `until(at)` holds."""
    deadline = time.time() + timeout
    while not until(at):
        assert time.time() < deadline, f"timed out; errors {errors(at)}"
        time.sleep(1)
        at.run()
        assert not at.exception, at.exception[0].value


def test_data_page_shows_the_sample(workspace):
    at = open_page("pages/data.py")
    assert not errors(at)
    assert metric(at, "Users") == "3,000"
    assert at.selectbox(key="role_user").value == "user_id"
    assert any("needs no saving" in c.value for c in at.caption)


def test_upload_map_clean_and_save(workspace, log_csv):
    at = open_page("pages/data.py", data_source="upload")
    at.file_uploader(key="upload_log").set_value(("views.csv", log_csv, "text/csv")).run()
    assert at.selectbox(key="role_item").value == "show"  # no name says so: its values do
    assert any(c.value.startswith("Item **show**: found by content") for c in at.caption)
    assert not errors(at) and not at.exception and not at.warning
    users = int(metric(at, "Users").replace(",", ""))
    assert metric(at, "Interactions") == f"{len(log_csv.splitlines()) - 1:,}"

    at.number_input(key="k_core").set_value(20).run()  # stricter: fewer users, shown step by step
    assert int(metric(at, "Users").replace(",", "")) < users
    assert any("k-core 20" in step for step in at.dataframe[1].value["Step"])
    at.selectbox(key="role_timestamp").set_value("user_id").run()  # a wrong role is an error, not a traceback
    assert any("should hold timestamps" in e for e in errors(at))
    at.selectbox(key="role_timestamp").set_value("timestamp").run()
    assert not errors(at)

    at.text_input(key="dataset_name").set_value("my views").run()
    at.button(key="save_dataset").click().run()
    assert [d.name for d in workspace.datasets()] == ["sample", "my-views"]
    assert at.session_state["dataset"] == "my-views"
    assert any("my-views" in s.value for s in at.success)

    # The same bytes again, under another name and with the same settings: no duplicate.
    at.file_uploader(key="upload_log").set_value(("copy of views.csv", log_csv, "text/csv")).run()
    at.selectbox(key="role_item").set_value("show").run()
    at.number_input(key="k_core").set_value(20).run()
    assert any("saved as **my-views**" in c.value for c in at.caption)
    assert len(workspace.datasets()) == 2
    assert len(list((workspace.root / "uploads").iterdir())) == 1


@pytest.mark.parametrize("name, content, message", [
    ("picture.csv", b"\x89PNG\r\n\x1a\n" + bytes(200), "PNG image"),
    ("empty.csv", b"", "empty"),
    ("excel.csv", "user_id,item_id\nu1,i1\nu1,i2\n".encode("utf-16"), "UTF-16"),
    ("short.csv", b"user_id,item_id\nu1,i1\n", "at least 2"),
])
def test_bad_files_show_their_message(workspace, name, content, message):
    at = open_page("pages/data.py", data_source="upload")
    at.file_uploader(key="upload_log").set_value((name, content, "text/csv")).run()
    assert not at.exception
    assert len(errors(at)) == 1 and message in errors(at)[0]


def test_saved_datasets_are_listed_for_selection(workspace, tiny):
    at = open_page("pages/data.py", data_source="saved")
    at.selectbox(key="saved_dataset").set_value("tiny").run()
    assert at.session_state["dataset"] == "tiny"
    assert metric(at, "Users") == "120"


def test_train_page_presets(workspace):
    at = open_page("pages/train.py")
    # auto: what the data suggests is chosen when the run starts
    assert at.number_input(key="train_hidden").value == 64 and at.selectbox(key="train_loss").value is None
    assert at.number_input(key="train_maxlen").value is None
    at.selectbox(key="train_preset").set_value("sasrec+").run()
    assert at.selectbox(key="train_loss").value == "ce" and at.number_input(key="train_maxlen").value == 200
    at.selectbox(key="train_preset").set_value("paper").run()
    assert at.number_input(key="train_hidden").value == 50 and at.selectbox(key="train_loss").value == "bce"
    assert at.number_input(key="train_num_heads").value == 1


def test_settings_the_model_refuses_are_an_error(workspace, tiny):
    at = open_page("pages/train.py", dataset="tiny")
    at.number_input(key="train_num_heads").set_value(3)
    at.button(key="start_training").click().run()
    assert any("not divisible" in e for e in errors(at))
    assert not list((workspace.root / "runs").iterdir())


def test_a_short_run_trains_in_the_background_and_finishes(workspace, tiny):
    at = open_page("pages/train.py", dataset="tiny")
    for key, value in SMALL.items():
        at.number_input(key=key).set_value(value)
    at.selectbox(key="train_device").set_value("cpu")
    at.text_input(key="train_run_name").set_value("short")
    at.button(key="start_training").click().run()
    assert not errors(at)
    assert at.session_state["run"] == "short"

    poll(at, lambda at: run_status(at, "short") != "running")
    # The live view is drawn above the runs table: in the rerun that saw the run end in the
    # table, the view may still show it running (at 100 %, during the final test evaluation).
    at.run()
    run = workspace.run("short")
    summary = workspace.run_summary(run)
    assert run_status(at, "short") == "finished", (summary, errors(at), run.log_tail())
    table = next(d.value for d in at.dataframe if "status" in d.value.columns).set_index("name")
    assert table.loc["short", "dataset"] == "tiny" and table.loc["short", "test NDCG@10"] > 0, table
    assert at.progress[0].value == 100
    assert float(metric(at, "Test HR@10")) > 0
    assert summary["device"].startswith("CPU") and summary["best_valid_ndcg@10"] > 0, summary


def start_a_long_run(name: str | None = None) -> AppTest:
    """The Train page on "tiny", with a small model that trains until stopped, started and past
    its first steps."""
    at = open_page("pages/train.py", dataset="tiny")
    for key, value in SMALL.items():
        at.number_input(key=key).set_value(value)
    at.number_input(key="train_epochs").set_value(1000)
    at.number_input(key="train_patience").set_value(1000)  # no early stop before the Stop button
    if name:
        at.text_input(key="train_run_name").set_value(name)
    at.button(key="start_training").click().run()
    poll(at, lambda at: len(at.progress) and at.progress[0].value > 0)
    return at


def test_stop_ends_a_run(workspace, tiny):
    at = start_a_long_run()
    name = at.session_state["run"]
    at.button(key="stop_run").click().run()
    poll(at, lambda at: run_status(at, name) != "running")
    assert run_status(at, name) == "stopped", (workspace.run_summary(workspace.run(name)), errors(at))
    assert workspace.run(name).checkpoint("last").exists()


def test_a_run_whose_process_died_shows_as_interrupted(workspace, tiny):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = workspace.root / "runs" / "ghost"
    run_dir.mkdir()
    rundir.write_json(run_dir / "config.json", {"data": {"name": "tiny"}})
    rundir.write_json(run_dir / "status.json", {"state": rundir.RUNNING, "message": "training on CPU", "pid": dead.pid,
                                                "process_started": time.time() - 60, "started": time.time() - 60})
    (run_dir / "train.log").write_text("epoch 1: loss 4.2\nKilled\n")

    at = open_page("pages/train.py", run="ghost")
    assert run_status(at, "ghost") == "interrupted"
    assert "ended without saying how" in at.warning[0].value
    assert "Killed" in at.code[0].value


def test_delete_asks_first(workspace, tiny):
    run_dir = workspace.root / "runs" / "old"
    run_dir.mkdir()
    rundir.write_json(run_dir / "config.json", {"data": {"name": "tiny"}})
    rundir.write_json(run_dir / "status.json", {"state": rundir.STOPPED, "message": "stopped by request after 0 epochs",
                                                "started": time.time()})

    at = open_page("pages/train.py", run="old")
    at.button(key="delete_run").click().run()
    at.button(key="cancel_delete").click().run()
    assert run_dir.exists()
    assert not [b for b in at.button if b.key == "confirm_delete"]
    at.button(key="delete_run").click().run()
    at.button(key="confirm_delete").click().run()
    assert not run_dir.exists()
    assert not at.exception


def test_a_run_cannot_be_named_demo(workspace, tiny):
    at = open_page("pages/train.py", dataset="tiny")
    for key, value in SMALL.items():
        at.number_input(key=key).set_value(value)
    at.text_input(key="train_run_name").set_value("demo")
    at.button(key="start_training").click().run()
    assert any("bundled model's name" in e for e in errors(at))
    assert not list((workspace.root / "runs").iterdir())


@pytest.mark.parametrize("written_best", [None, -1.0], ids=["as written now", "as written by older versions"])
def test_a_run_stopped_before_its_first_validation_has_no_best_score(workspace, tiny, written_best):
    run_dir = workspace.root / "runs" / "early"
    run_dir.mkdir()
    rundir.write_json(run_dir / "config.json", {"data": {"name": "tiny"}, "train": {"loss": "ce"}, "model": {
        "hidden": 16, "num_blocks": 1, "num_heads": 1, "maxlen": 50}})
    rundir.write_json(run_dir / "status.json", {"state": rundir.STOPPED, "message": "stopped by request after 0 epochs",
                                                "started": time.time() - 30, "updated": time.time(), "epochs": 0,
                                                "best_epoch": 0, "best_valid_ndcg@10": written_best,
                                                "elapsed_seconds": 30.0})
    rundir.write_json(run_dir / "progress.json", {"epochs": 5, "steps_per_epoch": 10, "epoch": 1, "step": 3,
                                                  "global_step": 3, "eta_seconds": 40, "loss_curve": [[1, 5.0]],
                                                  "examples_per_second": 100.0})
    at = open_page("pages/train.py", run="early")
    table = next(d.value for d in at.dataframe if "status" in d.value.columns).set_index("name")
    assert table.loc["early", "status"] == "stopped" and pd.isna(table.loc["early", "best valid NDCG@10"])
    assert metric(at, "Best valid NDCG@10") == "–"
    assert metric(at, "Elapsed") == "30s"
    assert any("before its first checkpoint" in c.value for c in at.caption), "nothing to resume, and it says so"
    at.switch_page("pages/evaluate.py").run()
    summary = next(d.value for d in at.dataframe if "run" in d.value.columns).set_index("run")
    assert pd.isna(summary.loc["early", "best valid NDCG@10"])
    assert any("ended before its first validation" in c.value for c in at.caption)


def test_the_form_shows_the_settings_of_the_run_after_a_reload(workspace, tiny):
    at = open_page("pages/train.py", dataset="tiny")
    at.selectbox(key="train_preset").set_value("paper").run()
    for key, value in SMALL.items():
        at.number_input(key=key).set_value(value)
    at.number_input(key="train_epochs").set_value(1)
    at.text_input(key="train_run_name").set_value("paper-run")
    at.button(key="start_training").click().run()
    assert at.session_state["run"] == "paper-run"
    poll(at, lambda at: run_status(at, "paper-run") != "running")

    reloaded = open_page("pages/train.py", run="paper-run")  # a new session: a reload, or a second tab
    assert reloaded.selectbox(key="train_preset").value == "paper"
    assert reloaded.selectbox(key="train_loss").value == "bce"
    assert reloaded.number_input(key="train_hidden").value == 16 and reloaded.number_input(key="train_epochs").value == 1
    fresh = open_page("pages/train.py", run="demo")  # the bundled model does not set the form
    assert fresh.selectbox(key="train_preset").value == "auto"


def test_estimate_then_start(workspace, tiny):
    at = open_page("pages/train.py", dataset="tiny")
    for key, value in SMALL.items():
        at.number_input(key=key).set_value(value)
    at.button(key="estimate_training").click().run()
    assert not errors(at), errors(at)
    shown = " ".join(m.value for m in at.markdown)
    assert "per epoch" in shown and "all 2 epochs and the test evaluation fit in the budget" in shown
    assert any("training steps of" in c.value for c in at.caption)
    at.text_input(key="train_run_name").set_value("estimated")
    at.button(key="start_training").click().run()
    launch = workspace.run("estimated").launch()
    assert launch["estimate"]["epochs"] == 2 and launch["estimate"]["epoch_seconds"] > 0
    assert launch["preset"] == "auto"
    poll(at, lambda at: run_status(at, "estimated") != "running")
    assert run_status(at, "estimated") == "finished"

    # A budget that buys fewer epochs than the limit: what it buys, and where the finished run was by then.
    at.number_input(key="train_epochs").set_value(10_000)
    at.number_input(key="train_time_budget").set_value(0.2)
    at.button(key="estimate_training").click().run()
    shown = " ".join(m.value for m in at.markdown)
    assert "budget buys about" in shown
    assert re.search(r"Earlier runs on this data had reached \d+% of their best validation NDCG@10 by epoch \d+ "
                     r"\(1 finished run\)", shown), shown


def test_a_stopped_run_resumes_from_the_page(workspace, tiny):
    at = start_a_long_run("again")
    at.button(key="stop_run").click().run()
    poll(at, lambda at: run_status(at, "again") == "stopped")
    at.run()  # the live view above the runs table shows the end too (see test_a_short_run_trains_...)
    done = len(workspace.run("again").metrics())
    at.number_input(key="resume_epochs_again").set_value(done + 1)
    at.button(key="resume_run").click().run()
    assert not errors(at), errors(at)
    assert run_status(at, "again") == "running"
    poll(at, lambda at: run_status(at, "again") != "running")
    assert run_status(at, "again") == "finished", workspace.run("again").log_tail()
    assert len(workspace.run("again").metrics()) == done + 1
