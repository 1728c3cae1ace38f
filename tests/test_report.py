"""The stored evaluation (sasrec/report.py): every figure with its interval, paired tests, EASE, beyond
accuracy, the snapshots' trade-off, comparisons between runs, and runs from before all of it."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from sasrec import beyond, cli, report, rundir, sequences
from sasrec.evaluate import TOP_K, rank_targets, sasrec_scorer
from sasrec.model import SASRec, SASRecConfig


@pytest.fixture(scope="module")
def evaluated(make_dataset, tmp_path_factory):
    """(run directory, dataset, model, metrics) of an untrained model with two snapshots, evaluated."""
    rng = np.random.default_rng(0)
    data = make_dataset({f"u{u:02d}": [f"i{j}" for j in rng.choice(30, size=rng.integers(3, 12), replace=False)]
                         for u in range(80)})
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=data.num_items, maxlen=8, hidden=16, num_heads=1)).eval()
    run_dir = tmp_path_factory.mktemp("run")
    rundir.save_snapshot(run_dir, model, 1)
    torch.manual_seed(1)
    rundir.save_snapshot(run_dir, SASRec(model.config), 2)
    metrics = report.write_evaluation(run_dir, model, data)
    return run_dir, data, model, metrics


def flat_metrics(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, float) and ("@" in k or k.endswith("mrr"))}


def test_every_test_figure_has_an_interval_around_it(evaluated):
    _, _, _, metrics = evaluated
    figures = flat_metrics(metrics)
    assert {"ndcg@10", "ease_ndcg@10", "markov_sampled_hr@5", "pop_mrr", "coverage@10", "ease_novelty@10",
            "markov_long_tail@10", "pop_avg_popularity@10"} <= set(figures)
    assert set(metrics["ci95"]) == set(figures)
    for name, value in figures.items():
        low, high = metrics["ci95"][name]
        assert low <= value + 1e-12 and value <= high + 1e-12, name
    assert metrics["format"] == report.FORMAT and report.is_current(metrics)
    assert metrics["bootstrap"]["resamples"] == 1000


def test_sasrec_is_tested_against_every_baseline(evaluated):
    _, _, _, metrics = evaluated
    assert set(metrics["versus"]) == {"markov", "pop", "ease"}
    for baseline, tests in metrics["versus"].items():
        test = tests["ndcg@10"]
        assert test["difference"] == pytest.approx(metrics["ndcg@10"] - metrics[f"{baseline}_ndcg@10"])
        assert 0 < test["p_value"] <= 1 and test["significant"] == (test["p_value"] < 0.05)
        assert test["ci95"][0] <= test["ci95"][1]
    assert metrics["ease"]["computed"] and metrics["ease"]["lambda"] > 0


def test_the_stored_lists_are_what_the_metrics_judge(evaluated):
    run_dir, data, _, metrics = evaluated
    per_user = pd.read_parquet(run_dir / report.FOLDER / "per_user.parquet")
    lists = report.read_top_lists(run_dir)
    assert set(lists) == {"SASRec", "Markov", "Most popular", "EASE"}
    test = sequences.holdout(data, "test")
    top = lists["SASRec"]
    assert top.shape == (len(test), TOP_K) and top.dtype == np.int32
    in_list = (top == test.targets[:, None]).any(1)
    assert np.array_equal(in_list, per_user["rank"].to_numpy() <= TOP_K)
    assert metrics["hr@10"] == pytest.approx(in_list.mean())
    for row, (start, end, target) in enumerate(zip(test.starts, test.ends, test.targets)):
        assert not set(top[row]) & (set(data.items[start:end]) - {target}), "a seen item was recommended"
    assert metrics["coverage@10"] == pytest.approx(len(np.unique(top[top > 0])) / data.num_items)
    popularity = beyond.item_popularity(data, "test")
    assert metrics["avg_popularity@10"] == pytest.approx(popularity[top].mean())
    assert list(per_user.columns[:6]) == ["user_id", "history_length", "rank", "sampled_rank", "pop_rank",
                                          "pop_sampled_rank"]
    assert per_user["target_popularity"].tolist() == popularity[test.targets].tolist()


def test_each_snapshot_is_a_point_of_the_trade_off(evaluated):
    _, data, model, metrics = evaluated
    points = metrics["snapshots"]
    assert [p["epoch"] for p in points] == [1, 2]
    assert all(p["users"] == len(sequences.holdout(data, "test")) for p in points), "fewer users than the sample"
    # the epoch-1 snapshot holds the evaluated model's weights: the same NDCG@10
    assert points[0]["ndcg@10"] == pytest.approx(metrics["ndcg@10"])
    assert points[1]["ndcg@10"] != pytest.approx(metrics["ndcg@10"])
    for point in points:
        for name in ("ndcg@10", "avg_popularity@10", "long_tail@10", "novelty@10"):
            low, high = point["ci95"][name]
            assert low <= point[name] <= high


def test_snapshots_use_a_fixed_sample_of_a_big_test_split(evaluated, monkeypatch, tmp_path):
    run_dir, data, model, _ = evaluated
    monkeypatch.setattr(report, "SNAPSHOT_USERS", 20)
    shutil.copytree(run_dir / rundir.SNAPSHOTS, tmp_path / rundir.SNAPSHOTS)
    first = report.snapshot_points(tmp_path, model, data, "cpu", beyond.item_popularity(data))
    again = report.snapshot_points(tmp_path, model, data, "cpu", beyond.item_popularity(data))
    assert [p["users"] for p in first] == [20, 20] and first == again


def test_two_runs_on_the_same_data_are_compared_user_by_user(evaluated, tmp_path):
    run_dir, data, model, metrics = evaluated
    for name in ("a", "b"):
        shutil.copytree(run_dir, tmp_path / name)
        pd.DataFrame({"item_id": data.item_ids[1:]}).to_parquet(tmp_path / name / "items.parquet")
    first, second = rundir.Run(tmp_path / "a"), rundir.Run(tmp_path / "b")
    same = report.compare_runs(first, second)
    assert same["ndcg@10"]["difference"] == 0 and same["ndcg@10"]["p_value"] == 1.0
    assert same["overlap@10"]["mean"] == 1.0 and same["users"] == metrics["users"]

    torch.manual_seed(1)
    report.write_evaluation(tmp_path / "b", SASRec(model.config).eval(), data)
    other = report.compare_runs(first, second)
    assert other["ndcg@10"]["first"] == pytest.approx(metrics["ndcg@10"])
    assert other["ndcg@10"]["second"] == pytest.approx(rundir.Run(tmp_path / "b").test_metrics()["ndcg@10"])
    assert 0 <= other["overlap@10"]["mean"] < 1
    low, high = other["overlap@10"]["ci95"]
    assert low <= other["overlap@10"]["mean"] <= high

    pd.DataFrame({"item_id": ["something", "else"]}).to_parquet(tmp_path / "b" / "items.parquet")
    with pytest.raises(rundir.RunError, match="not evaluated on the same data"):
        report.compare_runs(first, second)


@pytest.fixture(scope="module")
def trained(trained_workspace):
    return trained_workspace(2) / "runs" / "tiny"


@pytest.fixture
def copy_of(trained):
    """copy_of(name): a copy of the trained run beside it (where its relative data path still leads)."""
    made = []

    def copy(name):
        made.append(trained.parent / name)
        return shutil.copytree(trained, made[-1])

    yield copy
    for path in made:
        shutil.rmtree(path)


def test_the_command_line_prints_intervals_tests_and_comparisons(trained, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(trained, other)
    cli.main(["evaluate", str(trained), "--compare", str(other)])
    out = capsys.readouterr().out
    assert "95 % bootstrap intervals" in out and "SASRec's NDCG@10 is" in out and "EASE" in out
    assert "Coverage" in out and "on the same" in out
    printed = json.loads(out.strip().splitlines()[-1])
    assert printed["compared"][0]["ndcg@10"]["p_value"] == 1.0
    assert {"ci95", "versus", "ease", "snapshots"} <= set(printed)


def test_a_run_evaluated_before_intervals_says_so_and_is_recomputed_on_request(copy_of, capsys):
    old = copy_of("old")
    current = rundir.read_json(old / "test_metrics.json")
    rundir.write_json(old / "test_metrics.json", {k: v for k, v in current.items() if isinstance(v, (int, float))
                                                  and not k.startswith("ease_") and "format" != k})
    cli.main(["evaluate", str(old)])
    out = capsys.readouterr().out
    assert "evaluated before intervals" in out and "--recompute" in out
    assert not report.is_current(json.loads(out.strip().splitlines()[-1]))
    cli.main(["evaluate", str(old), "--recompute", "--json"])
    assert report.is_current(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert report.is_current(rundir.Run(old).test_metrics())


def test_ease_is_absent_with_its_reason_above_the_limit(copy_of, monkeypatch, capsys):
    from sasrec import ease

    big = copy_of("big")
    monkeypatch.setattr(ease, "MAX_ITEMS", 5)
    metrics = report.evaluate_run(big)
    assert not metrics["ease"]["computed"] and "up to 5 items" in metrics["ease"]["reason"]
    assert "ease" not in metrics["versus"] and "ease_ndcg@10" not in metrics
    assert set(report.read_top_lists(big)) == {"SASRec", "Markov", "Most popular"}
    cli.main(["evaluate", str(big)])
    assert "EASE is fitted only for catalogs of up to 5 items" in capsys.readouterr().out


def test_rank_targets_lists_are_sorted_and_padded_when_the_catalog_runs_out(make_dataset):
    data = make_dataset({"u": ["a", "b", "c", "d"], "v": ["d", "c", "b", "a"]})
    test = sequences.holdout(data, "test")
    model = SASRec(SASRecConfig(num_items=data.num_items, maxlen=4, hidden=8, num_heads=1)).eval()
    ranked = rank_targets(sasrec_scorer(model, data.items, test, "cpu"), data.items, test, top_k=3)
    # 4 items, 3 seen before the target: only the target is left to recommend
    assert ranked["top"][:, 1:].tolist() == [[0, 0], [0, 0]]
    assert ranked["top"][:, 0].tolist() == test.targets.tolist()


def test_a_run_reuses_ease_from_an_earlier_run_on_the_same_data(evaluated, make_dataset, tmp_path, monkeypatch):
    from sasrec import ease

    run_dir, data, model, metrics = evaluated
    first, second = tmp_path / "runs" / "first", tmp_path / "runs" / "second"
    shutil.copytree(run_dir, first)
    second.mkdir()

    def no_fit(*args, **kwargs):
        raise AssertionError("EASE was fitted again")

    monkeypatch.setattr(ease, "fit", no_fit)
    # a time budget planned beside the stored fit leaves no time for fitting it again
    monkeypatch.setattr(ease, "expected_seconds", lambda num_items: 1000.0)
    monkeypatch.setattr(report.insights, "expected_seconds", lambda model, dataset: 2.0)
    assert report.extra_seconds(second, model, data) == 2.0
    assert report.extra_seconds(tmp_path / "alone" / "run", model, data) == 1002.0
    again = report.write_evaluation(second, model, data)
    assert again["ease"]["reused_from"] == "first" and again["ease"]["lambda"] == metrics["ease"]["lambda"]
    for name in ("ease_ndcg@10", "ease_sampled_hr@10", "ease_coverage@10", "ease_avg_popularity@10"):
        assert again[name] == metrics[name]

    # other data, or a stored result whose fingerprint does not match, is fitted afresh
    other = make_dataset({u: [f"i{(u + t) % 9}" for t in range(5)] for u in range(20)})
    with pytest.raises(AssertionError, match="fitted again"):
        report.write_evaluation(tmp_path / "runs" / "second", SASRec(SASRecConfig(num_items=other.num_items,
                                                                                   maxlen=5, hidden=8)), other)
    stored = first / report.FOLDER / ease.STORED
    arrays = dict(np.load(stored, allow_pickle=False))
    with stored.open("wb") as file:
        np.savez(file, **(arrays | {"fingerprint": np.array("something else")}))
    (second / report.FOLDER / ease.STORED).unlink()
    with pytest.raises(AssertionError, match="fitted again"):
        report.write_evaluation(second, model, data)


def test_progress_is_told_as_each_part_starts(evaluated, tmp_path):
    run_dir, data, model, _ = evaluated
    shutil.copytree(run_dir / rundir.SNAPSHOTS, tmp_path / "run" / rundir.SNAPSHOTS)
    messages = []
    report.write_evaluation(tmp_path / "run", model, data, on_progress=messages.append)
    assert [m for m in messages if m.startswith("ranking")] == [
        f"ranking every item for {len(sequences.holdout(data, 'test'))} test users with {name} ({i} of 4)"
        for i, name in enumerate(["SASRec", "Most popular", "Markov", "EASE"], 1)]
    assert any(m.startswith("EASE: trying λ") for m in messages) and any(m.startswith("EASE: fitting") for m in messages)
    assert any("snapshot of epoch 2" in m for m in messages)
    assert messages[-2:] == ["the item embedding map", "head importance, example customers and the attributions' agreement"]
