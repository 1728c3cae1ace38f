"""The Playground, Attention and Evaluate pages, run headless with Streamlit's AppTest on a
tiny model trained once per session into a temporary workspace."""

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from sasrec import rundir
from sasrec import workspace as workspace_module
from tests.browser import ROOT

TIMEOUT = 120  # seconds per script run: the first one loads the model and the data


@pytest.fixture(scope="session")
def workspace(trained_workspace):
    """A finished run, "tiny", trained for 3 epochs."""
    return trained_workspace(3)


def make_app(workspace, monkeypatch, run="tiny", **query) -> AppTest:
    monkeypatch.setenv("SASREC_WORKSPACE", str(workspace))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["run"] = run
    for key, value in query.items():
        at.query_params[key] = value
    return at


def open_page(at: AppTest, name: str) -> AppTest:
    at.switch_page(f"pages/{name}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def items_of(workspace) -> list[str]:
    """The tiny model's catalog, as item ids."""
    return [str(i) for i in pd.read_parquet(workspace / "runs" / "tiny" / "items.parquet")["item_id"]]


def tables(at: AppTest, column: str) -> list[pd.DataFrame]:
    """The tables shown that have `column`, in page order."""
    return [d.value for d in at.dataframe if column in d.value.columns]


def predictions(at: AppTest) -> pd.DataFrame:
    return tables(at, "probability")[0]


def chart_keys(at: AppTest) -> list:
    return [chart.key for chart in at.main.get("vega_lite_chart")]


# Playground

def test_playground_starts_empty_and_predicts_after_an_item_is_added(workspace, monkeypatch):
    at = open_page(make_app(workspace, monkeypatch), "playground")
    assert not at.dataframe, "no predictions for an empty history"
    at.text_input(key="pg_search").set_value("S1E1").run()
    add = [b for b in at.button if b.key and b.key.startswith("pg_add_")]
    assert add, "the search offers items to add"
    add[0].click().run()
    assert not at.exception
    assert at.session_state["history"] == [add[0].key.removeprefix("pg_add_")]
    table = predictions(at)
    assert list(table.columns[:2]) == ["rank", "title"] and len(table) == 10
    assert {"category", "score", "probability"} <= set(table.columns)
    assert table["probability"].is_monotonic_decreasing and (table["probability"] > 0).all()


def test_every_edit_updates_the_predictions(workspace, monkeypatch):
    catalog = items_of(workspace)
    at = open_page(make_app(workspace, monkeypatch, history=json.dumps(catalog[:4])), "playground")
    first = predictions(at)
    assert "change" not in first, "no rank moves before the first edit"

    at.text_input(key="pg_search").set_value(catalog[10]).run()
    at.button(key=f"pg_add_{catalog[10]}").click().run()
    assert at.session_state["history"] == catalog[:4] + [catalog[10]]
    added = predictions(at)
    assert not added[["title", "probability"]].equals(first[["title", "probability"]])
    assert set(added["change"]) <= {"new", "="} | {f"{arrow} {n}" for arrow in "▲▼" for n in range(1, 10)}

    at.pills[0].set_value(0).run()  # select the oldest item, then move it one later
    at.button(key="pg_later").click().run()
    assert at.session_state["history"] == [catalog[1], catalog[0]] + catalog[2:4] + [catalog[10]]
    assert at.pills[0].value == 1, "the selection follows the moved item"
    moved = predictions(at)
    assert not moved["probability"].equals(added["probability"])

    at.button(key="pg_remove").click().run()
    assert at.session_state["history"] == [catalog[1]] + catalog[2:4] + [catalog[10]]
    at.button(key="pg_undo").click().run()
    assert at.session_state["history"] == [catalog[1], catalog[0]] + catalog[2:4] + [catalog[10]]

    at.number_input(key="pg_keep_n").set_value(2).run()
    at.button(key="pg_keep").click().run()
    assert at.session_state["history"] == [catalog[3], catalog[10]]
    assert json.loads(at.query_params["history"]) == [catalog[3], catalog[10]]

    at.toggle(key="pg_exclude").set_value(False).run()
    at.number_input(key="pg_k").set_value(5).run()
    assert len(predictions(at)) == 5

    at.button(key="pg_clear").click().run()
    assert at.session_state["history"] == [] and not at.dataframe


def open_user_picker(at: AppTest) -> None:
    """Open the "Dataset user" popover (its content is drawn only while it is open)."""
    at.session_state["pg_user_popover"] = True
    at.run()


def test_a_dataset_user_marks_the_held_out_next_item(workspace, monkeypatch):
    at = open_page(make_app(workspace, monkeypatch), "playground")
    open_user_picker(at)
    at.text_input(key="pg_user_search").set_value("u0007").run()
    at.button(key="pg_user_search_u0007").click().run()
    assert not at.exception
    history = at.session_state["history"]
    assert history and at.session_state["pg_user"]["id"] == "u0007"
    target = at.session_state["pg_user"]["target"]
    assert target not in history[-1:]
    at.number_input(key="pg_k").set_value(100).run()
    table = predictions(at)
    assert "held-out next" in table and table["held-out next"].sum() <= 1
    assert any("true next item" in c.value for c in at.caption)


def test_rank_moves_start_again_from_a_new_dataset_user(workspace, monkeypatch):
    catalog = items_of(workspace)
    at = open_page(make_app(workspace, monkeypatch, history=json.dumps(catalog[:4])), "playground")
    at.text_input(key="pg_search").set_value(catalog[20]).run()
    at.button(key=f"pg_add_{catalog[20]}").click().run()
    assert "change" in predictions(at), "rank moves after an edit"

    open_user_picker(at)
    at.text_input(key="pg_user_search").set_value("u0011").run()
    at.button(key="pg_user_search_u0011").click().run()
    assert at.session_state["pg_user"]["id"] == "u0011"
    assert "change" not in predictions(at), "a new history is not an edit of the previous, unrelated one"

    shown = list(predictions(at)["title"])
    at.pills[0].set_value(0).run()
    at.button(key="pg_remove").click().run()  # an edit of this user's history
    moved = predictions(at)
    assert "change" in moved
    before = {title: rank for rank, title in enumerate(shown)}
    for rank, (title, change) in enumerate(zip(moved["title"], moved["change"])):
        expected = "new" if title not in before else "=" if before[title] == rank else \
            f"▲ {before[title] - rank}" if before[title] > rank else f"▼ {rank - before[title]}"
        assert change == expected, (title, change, expected)


def without_weights(workspace, tmp_path) -> Path:
    """A copy of the workspace whose run "tiny" has no checkpoint; returns the copy's root."""
    copy = tmp_path / "ws"
    shutil.copytree(workspace, copy)
    for checkpoint in (copy / "runs" / "tiny").glob("*.safetensors"):
        checkpoint.unlink()
    return copy


def test_playground_says_when_the_first_checkpoint_comes(workspace, monkeypatch, tmp_path):
    starting = without_weights(workspace, tmp_path)
    run_dir = starting / "runs" / "tiny"
    rundir.StatusWriter(run_dir).write(rundir.RUNNING, "training")  # this process stands in for a trainer
    rundir.write_json(run_dir / "progress.json", {"epochs": 3, "steps_per_epoch": 100, "epoch": 1, "step": 70,
                                                  "global_step": 70, "eta_seconds": 230.0, "loss_curve": []})
    at = open_page(make_app(starting, monkeypatch), "playground")
    assert not at.error
    message = " ".join(i.value for i in at.info)
    assert "the first checkpoint comes at the end of epoch 1, in about 30 s" in message  # 30 steps at 1 s
    assert str(starting) not in message and "/" not in message


def test_playground_says_a_queued_run_waits_for_a_slot(workspace, monkeypatch, tmp_path):
    queued = without_weights(workspace, tmp_path)
    run_dir = queued / "runs" / "tiny"
    (run_dir / "status.json").unlink()
    rundir.write_json(run_dir / rundir.QUEUE_FILE, {"seq": 1, "queued": time.time(), "device": "cpu"})
    at = open_page(make_app(queued, monkeypatch), "playground")
    assert not at.error
    message = " ".join(i.value for i in at.info)
    assert "waiting for a free training slot" in message and "end of its first epoch" in message


def test_the_example_history_continues_a_series(workspace, monkeypatch):
    at = open_page(make_app(workspace, monkeypatch), "playground")
    at.button(key="pg_example").click().run()
    history = at.session_state["history"]
    assert len(history) == 4 and history[2].startswith("s") and history[3].startswith("s")
    assert len(predictions(at)) == 10


def test_playground_explains_a_run_without_a_checkpoint(workspace, monkeypatch, tmp_path):
    broken = without_weights(workspace, tmp_path)
    at = open_page(make_app(broken, monkeypatch), "playground")
    assert any("no checkpoint yet" in e.value for e in at.error)


def test_playground_works_from_the_catalog_when_the_data_has_moved(workspace, monkeypatch, tmp_path):
    moved = tmp_path / "ws"
    shutil.copytree(workspace, moved)
    config_path = moved / "runs" / "tiny" / "config.json"
    config = json.loads(config_path.read_text())
    config["data"]["path"] = "../gone/log.csv"
    config_path.write_text(json.dumps(config))
    catalog = items_of(workspace)
    at = open_page(make_app(moved, monkeypatch, history=json.dumps(catalog[:3])), "playground")
    assert len(predictions(at)) == 10 and not at.error
    open_user_picker(at)  # dataset users are what needs the data
    assert any("no longer there" in e.value for e in at.error)
    assert len(predictions(at)) == 10


def test_playground_offers_to_drop_items_another_model_does_not_know(workspace, monkeypatch):
    catalog = items_of(workspace)
    at = open_page(make_app(workspace, monkeypatch, history=json.dumps(catalog[:2] + ["not-an-item"])), "playground")
    assert any("not-an-item" in e.value for e in at.error)
    at.button(key="pg_drop_unknown").click().run()
    assert at.session_state["history"] == catalog[:2]
    assert len(predictions(at)) == 10


@pytest.mark.parametrize("name", ["playground", "attention", "evaluate"])
def test_without_any_model_each_page_points_to_training(name, monkeypatch, tmp_path):
    monkeypatch.setattr(workspace_module, "DEMO_RUN", tmp_path / "no-demo")
    at = open_page(make_app(tmp_path / "empty", monkeypatch, run=""), name)
    assert any("No model yet" in i.value for i in at.info)
    assert not at.error


# Attention

def wait_for_aggregates(at: AppTest, timeout: float = 60) -> None:
    """The averages over many users are computed in the background: rerun, as the page's fragment
    does, until they are drawn."""
    deadline = time.time() + timeout
    while not any("Averaged over the validation histories" in c.value for c in at.caption):
        assert any("Averaging attention" in c.value for c in at.caption), "says what it is doing meanwhile"
        assert time.time() < deadline, "the averages never came"
        time.sleep(0.2)
        at.run()


def test_attention_shows_each_layer_and_rows_sum_to_one(workspace, monkeypatch):
    catalog = items_of(workspace)
    at = open_page(make_app(workspace, monkeypatch, history=json.dumps(catalog[:6])), "attention")
    layers = json.loads((workspace / "runs" / "tiny" / "config.json").read_text())["model"]["num_blocks"]
    heatmaps = [f"att_heatmap_{i + 1}" for i in range(layers)]
    assert [key for key in chart_keys(at) if key and key.startswith("att_heatmap")] == heatmaps
    assert [h.value for h in at.subheader if h.value.startswith("Layer ")] == [f"Layer {i + 1}" for i in range(layers)]
    wait_for_aggregates(at)
    assert len(chart_keys(at)) == layers + 5, "bars, model view, head importance, distance and category charts too"
    weights = tables(at, "weight")[0]
    assert set(weights["query"]) == set(range(1, 7)) and (weights["key"] <= weights["query"]).all()
    sums = weights.groupby(["layer", "head", "query"])["weight"].sum()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-5)
    assert {"query_title", "key_title"} <= set(weights.columns)


def test_attention_highlight_and_shown_items(workspace, monkeypatch):
    catalog = items_of(workspace)
    at = open_page(make_app(workspace, monkeypatch, history=json.dumps(catalog[:8])), "attention")
    at.selectbox(key="att_focus").set_value(3).run()
    assert not at.exception and at.selectbox(key="att_focus").value == 3
    at.slider(key="att_shown_8").set_value(4).run()
    assert tables(at, "weight")[0]["query"].max() == 4
    assert at.selectbox(key="att_focus").value == 3


def test_attention_for_a_dataset_user(workspace, monkeypatch):
    at = open_page(make_app(workspace, monkeypatch), "attention")
    assert any("Nothing to look at" in i.value for i in at.info)
    at.segmented_control(key="att_source").set_value("Dataset user").run()
    at.text_input(key="att_user_search").set_value("u0003").run()
    at.button(key="att_user_search_u0003").click().run()
    assert not at.exception
    assert len(tables(at, "weight")[0]) > 0


# Evaluate

INTERVAL = re.compile(r"^-?[\d.,]+%? \([\d.,]+–[\d.,]+%?\)$")  # "0.0529 (0.0511–0.0547)", "73.1% (71.6–74.6%)"


def metric_tables(at: AppTest) -> list[pd.DataFrame]:
    """The full-ranking and sampled tables: a row per metric, a column per model."""
    return [d.value for d in at.dataframe if "NDCG@10" in d.value.index]


def chart_specs(at: AppTest) -> list[str]:
    return [chart.proto.spec for chart in at.main.get("vega_lite_chart")]


def test_evaluate_shows_every_figure_with_its_interval_and_says_what_is_significant(workspace, monkeypatch):
    at = open_page(make_app(workspace, monkeypatch), "evaluate")
    full, sampled = metric_tables(at)
    assert list(full.columns) == list(sampled.columns) == ["SASRec", "Markov", "Most popular", "EASE"]
    assert {"HR@1", "HR@10", "NDCG@20", "MRR"} <= set(full.index)
    assert all(INTERVAL.match(cell) for cell in [*full.to_numpy().ravel(), *sampled.to_numpy().ravel()])
    assert not full.equals(sampled)
    verdicts = next(m.value for m in at.markdown if "SASRec's NDCG@10 is" in m.value).splitlines()
    assert len(verdicts) == 3 and all("Markov" in v or "Most popular" in v or "EASE" in v for v in verdicts)
    assert all("a real difference" in v or "cannot be told apart" in v for v in verdicts)
    assert any("EASE: λ =" in c.value for c in at.caption) or any("EASE" in w.value for w in at.warning)

    beyond = tables(at, "Coverage")[0]
    assert list(beyond.index) == ["SASRec", "Markov", "Most popular", "EASE"]
    assert {"Coverage", "Avg popularity", "Long-tail share", "Novelty (bits)", "Diversity"} == set(beyond.columns)
    assert all(INTERVAL.match(cell) for cell in beyond.to_numpy().ravel())
    assert any("average popularity of the top 10" in spec for spec in chart_specs(at)), "the trade-off chart"
    at.segmented_control(key="ev_tradeoff_x").set_value("long_tail@10").run()
    assert any("long-tail share of the top 10" in spec for spec in chart_specs(at))

    breakdown = tables(at, "group")[0]
    assert list(breakdown["group"]) == ["short", "medium", "long"]
    assert list(breakdown.columns[:4]) == ["group", "span", "users", "SASRec"]
    assert len(breakdown.columns) == 5, "SASRec beside the best baseline"
    assert all(INTERVAL.match(cell) for cell in breakdown.iloc[:, 3:].to_numpy().ravel())
    at.segmented_control(key="ev_breakdown_by").set_value("popularity").run()
    assert set(tables(at, "group")[0]["group"]) <= {"head", "torso", "tail"}
    at.segmented_control(key="ev_breakdown_by").set_value("recency").run()
    assert set(tables(at, "group")[0]["group"]) <= {"earliest", "middle", "latest"}

    summary = tables(at, "run")[0]
    assert list(summary["run"]) == ["tiny"] and summary["epochs"].item() == 3
    assert INTERVAL.match(summary["NDCG@10"].item())
    at.segmented_control(key="ev_colour").set_value("popularity").run()
    assert not at.exception


def edited_metrics(workspace, tmp_path, edit) -> Path:
    """A copy of the workspace whose run's stored test metrics went through edit(metrics)."""
    copied = tmp_path / "ws"
    shutil.copytree(workspace, copied)
    path = copied / "runs" / "tiny" / "test_metrics.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return copied


def test_evaluate_says_why_ease_is_absent(workspace, monkeypatch, tmp_path):
    from sasrec.ease import too_big

    def without_ease(metrics):
        return {k: v for k, v in metrics.items() if not k.startswith("ease_")} | {
            "ease": {"computed": False, "reason": too_big(50_000)}}

    at = open_page(make_app(edited_metrics(workspace, tmp_path, without_ease), monkeypatch), "evaluate")
    assert any("EASE is fitted only for catalogs of up to" in i.value and "50,000 items" in i.value for i in at.info)
    assert list(metric_tables(at)[0].columns) == ["SASRec", "Markov", "Most popular"]


def test_evaluate_says_plainly_when_ease_wins(workspace, monkeypatch, tmp_path):
    def ease_ahead(metrics):
        return metrics | {"ease_ndcg@10": metrics["ndcg@10"] + 0.05}

    at = open_page(make_app(edited_metrics(workspace, tmp_path, ease_ahead), monkeypatch), "evaluate")
    assert any("EASE, a non-sequential linear model, beats SASRec on this data" in w.value for w in at.warning)


def test_a_run_evaluated_before_intervals_is_evaluated_again_in_the_background(workspace, monkeypatch, tmp_path):
    def old(metrics):
        return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not k.startswith("ease_")}

    copied = edited_metrics(workspace, tmp_path, old)
    at = open_page(make_app(copied, monkeypatch), "evaluate")
    for _ in range(240):
        if tables(at, "Coverage"):
            break
        assert any("Evaluating this run on the test split" in c.value for c in at.caption)
        time.sleep(0.5)
        at.run()
    assert tables(at, "Coverage"), "the page fills in once the evaluation is done"
    assert rundir.Run(copied / "runs" / "tiny").test_metrics()["format"] == 2


def test_a_running_run_predicts_from_its_latest_weights_and_is_evaluated_once_it_ends(workspace, monkeypatch,
                                                                                    tmp_path):
    running = tmp_path / "ws"
    shutil.copytree(workspace, running)
    run_dir = running / "runs" / "tiny"
    (run_dir / "best.safetensors").unlink()  # only the latest epoch's weights so far
    rundir.StatusWriter(run_dir).write(rundir.RUNNING, "training")  # this process stands in for a trainer
    at = open_page(make_app(running, monkeypatch, history=json.dumps(items_of(workspace)[:3])), "playground")
    assert len(predictions(at)) == 10
    assert any("latest checkpoint" in c.value for c in at.caption)
    open_page(at, "evaluate")
    assert any("still training" in i.value for i in at.info)
    assert len(tables(at, "run")[0]) == 1, "its curves and settings can be compared already"
