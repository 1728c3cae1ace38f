"""Taking the model apart in the app, headless with AppTest: heads switched off from the Playground's
grid and from a link, the smallest change that flips a prediction and its loading, gradients beside
the removal effects, example customers, head importance and the three-way agreement on the
Attention page, a run from before insights.json, and the report's new sections."""

import json
import shutil
import time

import pytest

from sasrec import counterfactual, export, insights, rundir
from sasrec.explain import removal_effects
from sasrec.inference import Recommender
from sasrec.ui import charts
from tests.test_app_explore import make_app, open_page, predictions, tables


@pytest.fixture(scope="module")
def workspace(trained_workspace):
    """A finished run, "tiny" (2 layers x 2 heads), trained for 3 epochs; it stored its insights."""
    return trained_workspace(3)


def run_dir(workspace):
    return workspace / "runs" / "tiny"


def example_history(workspace) -> list[str]:
    items = [str(i) for i in Recommender.from_run(run_dir(workspace)).catalog["item_id"]]
    films = [i for i in items if i.startswith("f")]
    return films[:2] + [i for i in items if i.startswith("s001")][:3]


def playground(workspace, monkeypatch, **query):
    return open_page(make_app(workspace, monkeypatch, history=json.dumps(example_history(workspace)), **query),
                     "playground")


def head_pills(at, layer: int):
    return at.pills(key=f"pg_heads_{layer}")


# Heads switched off

def test_switching_a_head_off_updates_the_predictions_with_rank_moves(workspace, monkeypatch):
    at = playground(workspace, monkeypatch)
    full = predictions(at)
    assert head_pills(at, 0).value == [0, 1] and head_pills(at, 1).value == [0, 1], "every head on"
    head_pills(at, 1).set_value([0]).run()  # layer 2, head 2 off
    assert not at.exception
    assert json.loads(at.query_params["off"]) == [[2, 2]]
    masked = predictions(at)
    expected = Recommender.from_run(run_dir(workspace)).without_heads([(1, 1)]).recommend(example_history(workspace))
    assert list(masked["title"]) == list(expected.items["title"])
    assert not masked["probability"].equals(full["probability"])
    assert "change" in masked, "rank moves since the heads changed"
    assert any("1 head switched off" in c.value for c in at.caption)
    head_pills(at, 0).set_value([]).run()  # the whole first layer off too
    assert sorted(map(tuple, json.loads(at.query_params["off"]))) == [(1, 1), (1, 2), (2, 2)]
    assert any("3 heads switched off" in c.value for c in at.caption)
    at.button(key="pg_heads_reset").click().run()
    assert "off" not in at.query_params and head_pills(at, 0).value == [0, 1]
    assert predictions(at)["probability"].equals(full["probability"]), "all heads on is the model again"


def test_a_link_switches_the_same_heads_off(workspace, monkeypatch):
    at = playground(workspace, monkeypatch, off="[[1, 1]]")
    assert head_pills(at, 0).value == [1] and head_pills(at, 1).value == [0, 1]
    expected = Recommender.from_run(run_dir(workspace)).without_heads([(0, 0)]).recommend(example_history(workspace))
    assert list(predictions(at)["title"]) == list(expected.items["title"])


@pytest.mark.parametrize("bad", ["[[9, 9]]", "[[0, 1]]", "not json", '{"a": 1}', "[[1]]", '[["x", 2]]'])
def test_a_mangled_heads_link_switches_nothing_off(workspace, monkeypatch, bad):
    at = playground(workspace, monkeypatch, off=bad)
    assert not at.exception and not at.error
    assert head_pills(at, 0).value == [0, 1] and head_pills(at, 1).value == [0, 1]


# What would change it?

def test_the_smallest_change_that_flips_the_top_prediction_loads_into_the_history(workspace, monkeypatch):
    at = playground(workspace, monkeypatch)
    top = predictions(at)["title"][0]
    at.button(key="pg_cf_search").click().run()
    assert not at.exception
    sentence = next(m.value for m in at.markdown if "instead of" in m.value)
    assert f"instead of **{top}**" in sentence
    original, edited = tables(at, "change")[:2]
    assert list(original["title"]) == list(at.session_state["pg_cf_result"][1].original["title"])
    assert (original["change"] != "").any() and (edited["change"] != "").any(), "the changed items are marked"
    found = at.session_state["pg_cf_result"][1]
    at.button(key="pg_cf_load").click().run()
    assert at.session_state["history"] == found.edited_ids
    assert predictions(at)["title"][0] == found.after["title"] != top
    assert "change" in predictions(at), "the rank moves of the edit"
    at.button(key="pg_undo").click().run()
    assert at.session_state["history"] == example_history(workspace)


def test_bringing_an_item_into_the_top_k_from_the_playground(workspace, monkeypatch):
    at = playground(workspace, monkeypatch)
    at.selectbox(key="pg_cf_goal").set_value("bring").run()
    picker = at.selectbox(key="pg_cf_target")
    outside = Recommender.from_run(run_dir(workspace)).recommend(example_history(workspace), k=12).items
    assert picker.options[0] == outside["title"][10], "the items just outside the top k first"
    picker.set_value(outside["item_id"][11]).run()
    at.button(key="pg_cf_search").click().run()
    assert not at.exception
    found = at.session_state["pg_cf_result"][1]
    assert found.goal == "bring" and found.before["rank"] == 12
    assert any(outside["title"][11] in m.value and "rank 12" in m.value for m in at.markdown)
    at.number_input(key="pg_k").set_value(11).run()  # another question: the answer to this one goes
    assert not any("rank 12" in m.value for m in at.markdown)


# Gradients

def test_gradients_beside_the_removal_effects_and_attention(workspace, monkeypatch):
    at = playground(workspace, monkeypatch)
    at.toggle(key="pg_why_gradients").set_value(True).run()
    assert not at.exception
    chart = next(c for c in at.main.get("vega_lite_chart") if c.key == "pg_why_chart")
    assert json.loads(chart.proto.spec)["facet"]["column"]["sort"] == ["Attention, last layer", charts.EFFECT_VIEW,
                                                                       charts.GRADIENT_VIEW]
    assert any("They add up to" in c.value for c in at.caption)


# Example customers

def test_example_customers_start_the_history_with_their_reason(workspace, monkeypatch):
    at = open_page(make_app(workspace, monkeypatch), "playground")
    examples = insights.read_insights(run_dir(workspace))["examples"]
    assert [b.label for b in at.button if b.key and b.key.startswith("pg_examples_")] == [e["label"] for e in examples]
    loyal = next(e for e in examples if e["kind"] == "loyal")
    at.button(key="pg_examples_loyal").click().run()
    assert at.session_state["history"] == loyal["history"]
    assert any(loyal["why"] in c.value for c in at.caption)
    assert "held-out next" in predictions(at), "their true next item is marked, as for any dataset user"


# The Attention page

def test_head_importance_and_the_three_way_agreement_on_the_attention_page(workspace, monkeypatch):
    at = open_page(make_app(workspace, monkeypatch, history=json.dumps(example_history(workspace))), "attention")
    assert any('"title": "switched off"' in c.proto.spec for c in at.main.get("vega_lite_chart")), "head importance"
    stored = insights.read_insights(run_dir(workspace))
    assert any(f"{stored['head_importance']['ndcg@10']:.4f}" in c.value for c in at.caption)
    three_way = next(d.value for d in at.dataframe if "Removal" in d.value.columns)
    assert three_way.loc["Removal", "Gradient (IG)"] == f"{stored['agreement']['agreement']['removal|gradient']:.0%}"
    assert [m.value for m in at.metric][-5:] == [f"{row.agreement:.0%}" for row in
                                                 charts.agreement_table(stored["agreement"]).itertuples()]


def test_a_run_from_before_insights_computes_them_once_in_the_background(workspace, monkeypatch, tmp_path_factory):
    old = tmp_path_factory.mktemp("old")  # beside the data, as the run was: it finds its data
    shutil.copytree(workspace, old, dirs_exist_ok=True)
    (old / "runs" / "tiny" / insights.FILE).unlink()
    at = open_page(make_app(old, monkeypatch), "playground")
    deadline = time.time() + 120
    while not any(b.key == "pg_examples_typical" for b in at.button):
        assert any("Picking example customers" in c.value for c in at.caption), [c.value for c in at.caption]
        assert time.time() < deadline, "the example customers never came"
        time.sleep(0.5)
        at.run()
    assert insights.read_insights(old / "runs" / "tiny") is not None, "and stored in the run"


def test_a_run_whose_data_has_gone_says_why_it_has_no_example_customers(workspace, monkeypatch, tmp_path):
    moved = tmp_path / "deeper" / "ws"
    shutil.copytree(workspace, moved)
    (moved / "runs" / "tiny" / insights.FILE).unlink()
    at = open_page(make_app(moved, monkeypatch), "playground")
    deadline = time.time() + 60
    while not any("No example customers" in c.value for c in at.caption):
        assert time.time() < deadline, [c.value for c in at.caption]
        time.sleep(0.5)
        at.run()
    message = next(c.value for c in at.caption if "No example customers" in c.value)
    assert "no longer there" in message and "/" not in message, "readable, with no server path"


def test_a_stopped_run_computes_no_insights_until_it_finishes(workspace, monkeypatch, tmp_path_factory):
    stopped = tmp_path_factory.mktemp("stopped")
    shutil.copytree(workspace, stopped, dirs_exist_ok=True)
    run = stopped / "runs" / "tiny"
    (run / insights.FILE).unlink()
    rundir.StatusWriter(run).write(rundir.STOPPED, "stopped by request")  # it may yet be resumed
    at = open_page(make_app(stopped, monkeypatch, history=json.dumps(example_history(workspace))), "playground")
    assert any("No example customers: they are computed when the run finishes" in c.value for c in at.caption)
    open_page(at, "attention")
    assert any("No head importance: they are computed when the run finishes" in c.value for c in at.caption)
    assert not (run / insights.FILE).exists(), "nothing computed for weights that may still change"


# The report

def test_the_report_shows_the_heads_off_the_smallest_change_and_the_gradients(workspace):
    recommender = Recommender.from_run(run_dir(workspace)).without_heads([(1, 0)])
    history = example_history(workspace)
    result = recommender.recommend(history, k=10)
    explanation = removal_effects(recommender, history, gradients=True)
    found = counterfactual.search(recommender, history)
    sections = charts.report_sections(model_name="tiny", history_length=len(history), result=result,
                                      explanation=explanation, metrics=None, heads_off=[(1, 0)], counterfactual=found)
    headings = [s.heading for s in sections]
    assert headings[:2] == ["The history", "Heads switched off"]
    assert "The smallest change found" in headings
    assert sections[1].table.to_dict("records") == [{"layer": 2, "head": 1}]
    change = sections[headings.index("The smallest change found")]
    assert found.after["title"] in change.text[0] and "**" not in change.text[0]
    why = sections[headings.index(f"Why {explanation.target['title']}?")]
    assert any("They add up to" in paragraph for paragraph in why.text)
    page = export.render_html("Report", "tiny", sections)
    looks = json.loads(page.split("const specs = ", 1)[1].split(";\nfor (const", 1)[0])
    assert any(charts.GRADIENT_VIEW in json.dumps(spec) for spec in looks.values()), "the gradient panel is drawn"
