"""Why this prediction, two models side by side, the model learning over the epochs, links and
the report to hand out: the Playground and Attention pages headless with AppTest, on a tiny model
trained once per session, whose catalog has item ids with commas and other separators."""

import json
import shutil
import time

import pandas as pd
import pytest

from sasrec import explain, export, rundir
from sasrec.explain import removal_effects
from sasrec.inference import Recommender
from sasrec.ui import charts
from sasrec.workspace import DEMO_RUN
from tests.test_app_explore import make_app, open_page, tables

ODD_IDS = {"f0001": 'f,0001;"x"', "f0002": "f|0002 [y]", "s001e0101": "s001,e0101"}  # ids a link must carry intact


@pytest.fixture(scope="session")
def workspace(trained_workspace):
    """A finished run, "tiny", trained for 4 epochs (snapshots after epochs 1, 2 and 4), with odd ids."""
    return trained_workspace(4, ODD_IDS)


def catalog(workspace) -> list[str]:
    return [str(i) for i in pd.read_parquet(workspace / "runs" / "tiny" / "items.parquet")["item_id"]]


def history_of(workspace) -> list[str]:
    """Two films, with odd ids, then the first episodes of a series."""
    ids = catalog(workspace)
    episodes = [i for i in ids if i.startswith("s001")]
    return [ODD_IDS["f0001"], ODD_IDS["f0002"], *episodes[:3]]


def predictions(at) -> pd.DataFrame:
    return tables(at, "probability")[0]


def why_sentence(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith(("Without", "No single item")))


# Why this prediction

def test_the_playground_says_why_for_the_top_prediction_and_any_other(workspace, monkeypatch):
    history = history_of(workspace)
    assert "s001,e0101" in history
    at = open_page(make_app(workspace, monkeypatch, history=json.dumps(history)), "playground")
    top = predictions(at)
    assert at.session_state["history"] == history, "ids with commas, quotes and brackets come back intact"
    assert "pg_why_chart" in [c.key for c in at.main.get("vega_lite_chart")]
    assert why_picker(at).value == catalog_id(workspace, top["title"][0]), "the top prediction first"
    assert top["title"][0] in why_sentence(at)
    third = catalog_id(workspace, top["title"][2])
    why_picker(at).set_value(third).run()
    assert not at.exception
    assert top["title"][2] in why_sentence(at)
    assert any("removals in one batch" in c.value for c in at.caption)
    at.number_input(key="pg_k").set_value(12).run()  # a new top k: the item picked is still explained
    assert why_picker(at).value == third and top["title"][2] in why_sentence(at)


def why_picker(at):
    return next(box for box in at.selectbox if box.label == "Why this prediction?")


def catalog_id(workspace, title: str) -> str:
    items = pd.read_parquet(workspace / "runs" / "tiny" / "items.parquet")
    return str(items.loc[items["title"] == title, "item_id"].iloc[0])


# Watching the model learn

def test_the_epoch_slider_moves_both_pages_through_the_snapshots(workspace, monkeypatch):
    at = open_page(make_app(workspace, monkeypatch, history=json.dumps(history_of(workspace))), "playground")
    slider = at.select_slider(key="pg_epoch_tiny")
    assert list(slider.options)[:2] == ["epoch 1", "epoch 2"] and slider.value == ""
    best = predictions(at)
    slider.set_value("epoch-0001").run()
    assert not at.exception and at.query_params["at"] == "epoch-0001"
    early = predictions(at)
    assert not early["probability"].equals(best["probability"]), "epoch 1 predicts otherwise"
    assert "change" in early, "rank moves since the best weights"
    open_page(at, "attention")
    assert at.select_slider(key="att_epoch_tiny").value == "epoch-0001", "the other page shows the same epoch"
    weights_epoch_1 = tables(at, "weight")[0]
    at.select_slider(key="att_epoch_tiny").set_value("").run()
    assert not tables(at, "weight")[0]["weight"].equals(weights_epoch_1["weight"])


def test_a_run_without_snapshots_says_why_there_is_no_slider(workspace, monkeypatch, tmp_path):
    old = tmp_path / "ws"
    shutil.copytree(workspace, old)
    shutil.rmtree(old / "runs" / "tiny" / "snapshots")
    at = open_page(make_app(old, monkeypatch, history=json.dumps(history_of(workspace)), at="epoch-0001"),
                   "playground")
    assert not at.get("select_slider") and len(predictions(at)) == 10
    assert any("kept no snapshots" in c.value for c in at.caption)


def test_while_a_run_trains_its_snapshots_so_far_are_there(workspace, monkeypatch, tmp_path):
    running = tmp_path / "ws"
    shutil.copytree(workspace, running)
    run_dir = running / "runs" / "tiny"
    (run_dir / "best.safetensors").unlink()
    (run_dir / "snapshots" / "epoch-0004.safetensors").unlink()
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][:3]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    rundir.StatusWriter(run_dir).write(rundir.RUNNING, "training")  # this process stands in for a trainer
    at = open_page(make_app(running, monkeypatch, history=json.dumps(history_of(workspace))), "playground")
    slider = at.select_slider(key="pg_epoch_tiny")
    assert list(slider.options) == ["epoch 1", "epoch 2", "latest: epoch 3"]
    slider.set_value("epoch-0002").run()
    assert not at.exception and len(predictions(at)) == 10


# Two models

def test_a_second_model_beside_the_first_follows_every_edit(workspace, monkeypatch):
    history = history_of(workspace)
    at = open_page(make_app(workspace, monkeypatch, history=json.dumps(history)), "playground")
    second = json.dumps(["tiny", "epoch-0001"])
    at.selectbox(key="pg_compare").set_value(second).run()
    assert not at.exception and json.loads(at.query_params["compare"]) == ["tiny", "epoch-0001"]
    first, other = tables(at, "other rank")
    assert len(first) == len(other) == 10 and not first["probability"].equals(other["probability"])
    shared = len(set(first["title"]) & set(other["title"]))
    assert any(f"share {shared} of 10 items" in m.value for m in at.markdown)
    # an item only one list has is marked: it has no rank in the other list
    assert (first["other rank"] == "–").sum() == 10 - shared == (other["other rank"] == "–").sum()
    assert set(first["title"][first["other rank"] != "–"]) == set(other["title"][other["other rank"] != "–"])

    at.pills[0].set_value(len(history) - 1).run()
    at.button(key="pg_remove").click().run()
    assert at.session_state["history"] == history[:-1]
    edited_first, edited_other = tables(at, "other rank")
    assert not edited_first["probability"].equals(first["probability"])
    assert not edited_other["probability"].equals(other["probability"]), "the second model follows the edit"

    open_page(at, "attention")
    assert at.selectbox(key="att_compare").value == second
    keys = [c.key for c in at.main.get("vega_lite_chart")]
    assert {"att_first_bars", "att_second_bars"} <= set(keys)
    assert any(h.value == "tiny · epoch 1" for h in at.subheader)


@pytest.mark.skipif(not (DEMO_RUN / "config.json").exists(), reason="the bundled demo model is missing")
def test_a_second_model_that_cannot_read_the_history_says_so(workspace, monkeypatch):
    at = open_page(make_app(workspace, monkeypatch, history=json.dumps(history_of(workspace)),
                            compare=json.dumps(["demo", ""])), "playground")
    assert any("demo" in e.value and "cannot show this history" in e.value and "unknown item" in e.value
               for e in at.error)
    assert len(predictions(at)) == 10, "the first model still predicts"
    assert "/" not in " ".join(e.value for e in at.error), "no server path"


# Links

def test_a_link_reproduces_the_playground_in_a_new_session(workspace, monkeypatch):
    history = history_of(workspace)
    link = {"history": json.dumps(history), "k": "5", "compare": json.dumps(["tiny", "epoch-0002"]),
            "at": "epoch-0001"}
    at = open_page(make_app(workspace, monkeypatch, **link), "playground")  # a new session, caches cleared
    assert at.session_state["history"] == history
    assert at.number_input(key="pg_k").value == 5
    assert at.select_slider(key="pg_epoch_tiny").value == "epoch-0001"
    assert at.selectbox(key="pg_compare").value == link["compare"]
    first, other = tables(at, "other rank")
    assert len(first) == len(other) == 5
    at.number_input(key="pg_k").set_value(7).run()
    assert at.query_params["k"] == "7"
    for key, value in link.items():
        if key != "k":
            assert at.query_params[key] == value, key


@pytest.mark.parametrize("bad", [{"k": "many"}, {"k": "-3"}, {"compare": '["../../etc", "best"]'},
                                 {"compare": "not json"}, {"compare": '["tiny", "../best"]'},
                                 {"at": "epoch-9999"}, {"at": "../../x"}])
def test_a_mangled_link_falls_back_quietly(workspace, monkeypatch, bad):
    at = open_page(make_app(workspace, monkeypatch, history=json.dumps(history_of(workspace)), **bad), "playground")
    assert not at.error and not at.exception
    assert len(predictions(at)) == (1 if bad.get("k") == "-3" else 10)
    assert not tables(at, "other rank"), "no second model"


# The Attention page

def test_the_attention_page_puts_the_removal_effect_beside_attention(workspace, monkeypatch):
    at = open_page(make_app(workspace, monkeypatch, history=json.dumps(history_of(workspace))), "attention")
    bars = next(c for c in at.main.get("vega_lite_chart") if c.key == "att_bars")
    spec = json.loads(bars.proto.spec)
    assert spec["facet"]["column"]["sort"] == ["Layer 1", "Layer 2", "Rollout", charts.EFFECT_VIEW,
                                               charts.GRADIENT_VIEW], "one panel each"
    assert any("can disagree" in c.value for c in at.caption)
    deadline = time.time() + 60
    while len(at.metric) < 5:  # a run without stored insights computes the agreement in the background
        assert any("Removing each item of 300" in c.value for c in at.caption), "it says what it is doing meanwhile"
        assert time.time() < deadline, "the agreement never came"
        time.sleep(0.2)
        at.run()
    labels = [m.label for m in at.metric]
    assert labels[-5:] == list(charts.agreement_table({"rates": dict.fromkeys(explain.SIGNALS, 0)})["signal"])
    assert all(m.value.endswith("%") for m in at.metric[-5:])

    at.session_state["att_effects"] = True  # open the table of removal and replacement effects
    at.run()
    effects = tables(at, "replacement_title")[0]
    assert len(effects) == len(history_of(workspace))
    assert not set(effects["replacement_title"]) & set(effects["title"]), "never an item of the history"


# The report

def test_the_report_holds_the_history_predictions_effects_attention_and_metrics(workspace):
    run_dir = workspace / "runs" / "tiny"
    recommender = Recommender.from_run(run_dir)
    hostile = "<script>alert('x')</script> & </p>"
    recommender.catalog.loc[recommender.to_internal([ODD_IDS["f0002"]])[0], "title"] = hostile
    history = history_of(workspace)
    result = recommender.recommend(history, k=10)
    explanation = removal_effects(recommender, history)
    second = Recommender.from_run(run_dir, "epoch-0001").recommend(history, k=10)
    sections = charts.report_sections(model_name="tiny", history_length=len(history), result=result,
                                      explanation=explanation, metrics=json.loads((run_dir / "test_metrics.json")
                                                                                  .read_text()),
                                      second=("tiny · epoch 1", second))
    headings = [s.heading for s in sections]
    assert headings == ["The history", "What the model predicts next", f"Why {explanation.target['title']}?",
                        "What the prediction looks at", "Attention, layer by layer", "A second model: tiny · epoch 1",
                        "How good the model is"]
    assert list(sections[-1].table["model"]) == ["SASRec", "Markov", "Most popular", "EASE"]
    page = export.render_html("Why tiny predicts it", "Model tiny", sections, "footer")
    assert hostile not in page and "&lt;script&gt;alert(" in page, "a title is text, never markup"
    assert page.count("<script") == 2, "the Vega bundle and the charts, nothing else"
    assert "<script src" not in page and "<link" not in page, "nothing is fetched"
    assert page.count('class="chart"') == 2 + 2, "why, looks-at and one heatmap per layer"
    specs = json.loads(page.split("const specs = ", 1)[1].split(";\nfor (const", 1)[0])
    assert len(specs) == 4 and all(spec["$schema"].startswith("https://vega.github.io") for spec in specs.values())


def test_the_vega_bundle_can_sit_in_a_script_element():
    bundle = export.vega_bundle().lower()
    assert "</script" not in bundle and "<!--" not in bundle and "vegaembed" in bundle
