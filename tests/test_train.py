"""Training: batches, losses, the run directory, stopping, resuming and learning planted patterns."""

import json
import math
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sasrec import rundir
from sasrec.dataset import build_dataset, load_dataset
from sasrec.inference import Recommender
from sasrec.losses import (
    full_softmax_ce,
    negative_log_q,
    negatives_excluding,
    sampled_cross_entropy,
    sequence_loss,
    shared_negatives,
)
from sasrec.model import SASRec, SASRecConfig
from sasrec.readers import Columns
from sasrec.sequences import training_windows
from sasrec.synthetic import generate, next_episode_prefixes
from sasrec.train import train
from tests.browser import ROOT


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(3, 40), min_size=2, max_size=6), maxlen=st.integers(1, 9))
def test_windows_cover_every_training_position_once(make_dataset, lengths, maxlen):
    sequences = {u: [f"{u}-{t}" for t in range(n)] for u, n in enumerate(lengths)}
    data = make_dataset(sequences)
    inputs, targets = training_windows(data, maxlen)
    assert inputs.shape == targets.shape and inputs.shape[1] == maxlen
    # every (input, target) pair of consecutive items in a training part, exactly once
    expected = Counter()
    for u in range(data.num_users):
        train_part = data.sequence(u)[:-2]
        expected.update(zip(train_part[:-1], train_part[1:]))
    real = targets != 0
    assert Counter(zip(inputs[real], targets[real])) == expected
    assert np.all((inputs != 0) == real), "inputs and targets are aligned"
    # left padding only: once a row starts, it has no holes
    assert np.all(np.diff(real.astype(int), axis=1) >= 0)



@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 12), min_size=2, max_size=8), maxlen=st.integers(1, 6), data=st.data())
def test_users_outside_the_validation_sample_train_on_their_validation_item(make_dataset, lengths, maxlen, data):
    sequences = {u: [f"{u}-{t}" for t in range(n)] for u, n in enumerate(lengths)}
    dataset = make_dataset(sequences, min_seq_len=1)
    eligible = [u for u in range(dataset.num_users) if len(dataset.sequence(u)) >= 3]  # those with a validation item
    validated = np.array(data.draw(st.lists(st.sampled_from(eligible), unique=True)) if eligible else [], dtype=np.int64)
    inputs, targets = training_windows(dataset, maxlen, validated=validated)
    expected = Counter()
    for u in range(dataset.num_users):
        items = list(dataset.sequence(u))
        held_out = 0 if len(items) < 3 else 2 if u in validated else 1  # never the test item
        part = items[:len(items) - held_out]
        expected.update(zip(part[:-1], part[1:]))
    real = targets != 0
    assert Counter(zip(inputs[real], targets[real])) == expected

@settings(max_examples=30, deadline=None)
@given(num_items=st.integers(2, 50), seed=st.integers(0, 1000))
def test_negatives_never_equal_the_positive(num_items, seed):
    torch.manual_seed(seed)
    positives = torch.randint(1, num_items + 1, (2000,))
    negatives = negatives_excluding(positives, num_items)
    assert not torch.any(negatives == positives)
    assert negatives.min() >= 1 and negatives.max() <= num_items
    # every other item is reachable, uniformly
    positive = int(positives[0])
    negatives = negatives_excluding(torch.full((200 * num_items,), positive), num_items)
    assert set(negatives.tolist()) == set(range(1, num_items + 1)) - {positive}


@pytest.mark.parametrize("loss", ["ce", "bce", "sampled-ce"])
def test_each_loss_is_finite_and_has_gradients(loss):
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=30, maxlen=8, hidden=16, num_heads=2))
    inputs = torch.tensor([[0, 0, 1, 2, 3], [4, 5, 6, 7, 8]])
    targets = torch.tensor([[0, 0, 2, 3, 4], [5, 6, 7, 8, 9]])
    value = sequence_loss(model, inputs, targets, loss, num_negatives=8)
    value.backward()
    assert math.isfinite(value.item()) and value.item() > 0
    assert model.item_embedding.weight.grad.abs().sum() > 0



@pytest.mark.parametrize("chunk_logits", [1, 7 * 41, 1 << 21])  # a row per chunk, uneven chunks, one chunk
def test_full_softmax_matches_cross_entropy_with_its_gradients(monkeypatch, chunk_logits):
    """The chunked loss is F.cross_entropy over items 1..N, exactly in fp32, with the same gradients
    for the hidden states and for every row of the table (none for the padding row)."""
    import sasrec.losses

    monkeypatch.setitem(sasrec.losses.CHUNK_LOGITS, "cpu", chunk_logits)
    torch.manual_seed(0)
    table, hidden = torch.randn(41, 8, requires_grad=True), torch.randn(23, 8, requires_grad=True)
    targets = torch.randint(1, 41, (23,))
    expected = torch.nn.functional.cross_entropy(hidden @ table[1:].T, targets - 1)
    expected.backward(torch.tensor(3.0))  # a scaled loss, as a grad scaler or the position weights give
    want_hidden, want_table = hidden.grad.clone(), table.grad.clone()
    hidden.grad = table.grad = None
    loss = full_softmax_ce(hidden, table, targets)
    (loss * 3).backward()
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(hidden.grad, want_hidden, atol=1e-6)
    assert torch.allclose(table.grad, want_table, atol=1e-6)
    assert not table.grad[0].any()


def test_full_softmax_under_bf16_autocast_is_close_and_needs_no_graph_without_grad():
    torch.manual_seed(0)
    table, hidden = torch.randn(301, 16) * 0.3, torch.randn(50, 16)
    targets = torch.randint(1, 301, (50,))
    expected = torch.nn.functional.cross_entropy(hidden @ table[1:].T, targets - 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = full_softmax_ce(hidden, table, targets)
    assert low.dtype == torch.float32 and abs(low.item() - expected.item()) < 0.02 * expected.item()
    with torch.no_grad():
        assert torch.allclose(full_softmax_ce(hidden, table, targets), expected, atol=1e-5)


def test_a_confident_targets_gradient_keeps_its_size_under_bf16_autocast():
    # p = 0.998 for the target: its logit's gradient p - 1 = -0.002 is the other items' share. Rounding the
    # softmax sum (steps of 2^-7 near 1) or the target's own exponential (2^-9 of e^12.5, about 500, where
    # the others sum to about 590) to bf16 would swamp it.
    table = torch.zeros(501, 8)
    table[1:, 0] = torch.linspace(-1, 1, 500)
    table[7, 0] = 12.5
    hidden = torch.zeros(1, 8)
    hidden[0, 0] = 1.0
    targets = torch.tensor([7])
    grads = []
    for autocast in (False, True):
        h, t = hidden.clone().requires_grad_(), table.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            full_softmax_ce(h, t, targets).backward()
        grads.append(t.grad[7, 0].item())
    exact, low = grads
    assert -0.004 < exact < -0.001 and low == pytest.approx(exact, rel=0.05)


@pytest.mark.parametrize("autocast", [False, True])
def test_full_softmax_holds_beyond_exps_range(autocast):
    """Logits past exp's float range, above (exp overflows) or below (every exponential of a row
    underflows), in one chunk with ordinary rows: the loss and gradients are still F.cross_entropy's."""
    torch.manual_seed(0)
    table, hidden = torch.randn(201, 8), torch.randn(6, 8)
    table[1:, 0] = table[1:, 0].abs() + 1  # every item's first coordinate is positive ...
    hidden[0] = 0
    hidden[0, 0] = 120.0  # ... so that this row's logits reach past 100, where exp overflows,
    hidden[1] = 0
    hidden[1, 0] = -120.0  # and this row's all fall below -100, where every exp underflows
    targets = torch.randint(1, 201, (6,))
    h64, t64 = hidden.double().requires_grad_(), table.double().requires_grad_()
    expected = torch.nn.functional.cross_entropy(h64 @ t64[1:].T, targets - 1)
    expected.backward()
    h, t = hidden.clone().requires_grad_(), table.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = full_softmax_ce(h, t, targets)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() == pytest.approx(expected.item(), rel=0.02 if autocast else 1e-5)
    for got, want in ((h.grad, h64.grad), (t.grad, t64.grad)):
        assert torch.isfinite(got).all()
        if not autocast:  # bf16 rounds logits of 100 or more in steps of 0.5, which moves a softmax by itself
            assert (got.double() - want).abs().max() <= 1e-5 * want.abs().max()


@pytest.mark.parametrize("popularity", [False, True])
def test_sampled_softmax_estimates_the_full_softmax(popularity):
    """With the logQ correction, many shared negatives give the full cross-entropy, whatever the
    proposal; without it, uniform negatives give a much smaller loss."""
    torch.manual_seed(0)
    num_items, d = 40, 8
    table = torch.randn(num_items + 1, d)
    hidden, targets = torch.randn(6, d), torch.randint(1, num_items + 1, (6,))
    full = torch.nn.functional.cross_entropy(hidden @ table[1:].T, targets - 1)
    log_q = None
    if popularity:
        weights = torch.arange(num_items + 1, dtype=torch.float) ** 2  # skewed, and item 0 is never drawn
        log_q = (weights / weights.sum()).log()
    negatives, log_expected = shared_negatives(200_000, num_items, log_q, "cpu")
    assert negatives.min() >= 1 and negatives.max() <= num_items
    sampled = sampled_cross_entropy(hidden, targets, table, negatives, log_expected)
    assert abs(sampled.item() - full.item()) < 0.02 * full.item()
    uncorrected = sampled_cross_entropy(hidden, targets, table, negatives[:10], torch.zeros(10))  # 10 of 40
    assert uncorrected.item() < full.item() - 0.5 or popularity


def test_sampled_softmax_masks_negatives_equal_to_the_positive():
    torch.manual_seed(0)
    table, hidden = torch.randn(11, 4), torch.randn(3, 4)
    targets = torch.tensor([5, 5, 7])
    negatives = torch.tensor([5, 5, 5])  # each row's only negatives are its own positive, or not
    loss = sampled_cross_entropy(hidden, targets, table, negatives, torch.zeros(3))
    only_third = torch.nn.functional.cross_entropy(
        torch.cat([(hidden[2] * table[7]).sum()[None], hidden[2] @ table[negatives].T])[None], torch.tensor([0]))
    assert torch.isclose(loss, only_third / 3)  # rows 1 and 2 have nothing to tell their positive from


def test_popularity_negatives_follow_the_proposal():
    torch.manual_seed(0)
    q = torch.tensor([0.0, 0.5, 0.3, 0.2, 0.0])
    negatives, log_expected = shared_negatives(50_000, 4, q.log(), "cpu")
    shares = torch.bincount(negatives, minlength=5).float() / 50_000
    assert torch.allclose(shares, q, atol=0.01)
    assert torch.allclose(log_expected, (q[negatives] * 50_000).log())


def test_the_negative_proposal_mixes_training_frequency_and_uniform():
    targets = torch.tensor([[0, 1, 1, 1], [0, 0, 2, 3]])  # item 1 three times, 2 and 3 once, 4 and 5 never
    q = negative_log_q(targets, num_items=5).exp()
    assert q[0] == 0 and torch.isclose(q.sum(), torch.tensor(1.0))
    assert torch.allclose(q[1:], 0.5 * torch.tensor([3, 1, 1, 0, 0]) / 5 + 0.5 / 5)
    assert q[4] > 0  # never a target, still sometimes a negative

def planted():
    interactions, items = generate(seed=3, num_users=400, num_series=6, num_films=60, num_franchises=3)
    dataset = build_dataset(interactions, Columns("user_id", "item_id", "timestamp"), items, source="planted")
    return dataset, items


def test_learns_planted_series_order(tmp_path, run_config):
    dataset, items = planted()
    config = run_config(epochs=30, patience=30, batch_size=64, lr=3e-3, device="cpu", seed=0, maxlen=50, hidden=32,
                        dropout=0.1, loss="ce")
    result = train(dataset, config, tmp_path / "run")
    assert result["state"] == "finished"
    recommender = Recommender.from_run(tmp_path / "run")
    prefixes = next_episode_prefixes(items, max_prefix=2)
    popularity = Counter(dataset.item_ids[dataset.items])
    most_popular = popularity.most_common(1)[0][0]
    model_hits = sum(recommender.recommend(p, k=1).items.item_id[0] == nxt for p, nxt in prefixes)
    popularity_hits = sum(most_popular == nxt for _, nxt in prefixes)
    assert model_hits / len(prefixes) > 0.6, f"{model_hits}/{len(prefixes)} next episodes ranked first"
    assert model_hits > 5 * max(popularity_hits, 1)


def small_data(tmp_path):
    interactions, items = generate(seed=1, num_users=150, num_series=4, num_films=40, num_franchises=2)
    interactions.to_csv(tmp_path / "log.csv", index=False)
    items.to_csv(tmp_path / "items.csv", index=False)
    return tmp_path / "log.csv", tmp_path / "items.csv"


def test_run_directory_contents_and_reproducibility(tmp_path, run_config):
    log, catalog = small_data(tmp_path)
    dataset = load_dataset(log, items=catalog)
    runs = []
    for name in ("a", "b"):
        config = run_config(epochs=3, device="cpu", seed=5, threads=1, maxlen=20, hidden=16, eval_every=1)
        train(dataset, config, tmp_path / name)
        runs.append(rundir.Run(tmp_path / name))
    a, b = runs
    assert a.status()["state"] == "finished"
    assert {"config.json", "status.json", "metrics.jsonl", "best.safetensors", "last.safetensors",
            "checkpoint.safetensors", "items.parquet", "test_metrics.json", "progress.json",
            "evaluation"} <= {p.name for p in a.path.iterdir()}
    assert not [p for p in a.path.iterdir() if p.name.endswith(".tmp")]
    metrics = a.metrics()
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    for key in ("loss", "epoch_seconds", "examples_per_second", "valid_ndcg@10", "valid_hr@10", "elapsed_seconds"):
        assert all(key in m for m in metrics), key
    assert [m["loss"] for m in metrics] == [m["loss"] for m in b.metrics()], "seeded CPU runs differ"
    assert {"ndcg@10", "sampled_ndcg@10", "pop_ndcg@10", "markov_hr@10"} <= set(a.test_metrics())


def test_divergence_fails_the_run_with_a_message(tmp_path, monkeypatch, run_config):
    import sasrec.train

    real_loss = sasrec.train.sequence_loss
    monkeypatch.setattr(sasrec.train, "sequence_loss", lambda *args: real_loss(*args) * float("nan"))
    log, _ = small_data(tmp_path)
    config = run_config(epochs=2, device="cpu", maxlen=20, hidden=16)
    result = train(load_dataset(log), config, tmp_path / "run")
    status = rundir.Run(tmp_path / "run").status()
    assert result["state"] == status["state"] == "failed"
    assert "nan" in status["message"].lower() and "learning rate" in status["message"]


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "sasrec", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, **kwargs)


def start_training(tmp_path, out):
    log, catalog = small_data(tmp_path)
    return subprocess.Popen([sys.executable, "-m", "sasrec", "train", str(log), "--items", str(catalog),
                             "--out", str(out), "--epochs", "500", "--patience", "500", "--maxlen", "20",
                             "--hidden", "16", "--threads", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("how", ["stop-file", "sigterm"])
def test_stop_then_resume(tmp_path, how):
    out = tmp_path / "run"
    process = start_training(tmp_path, out)
    run = rundir.Run(out)
    assert wait_for(lambda: len(run.metrics()) >= 2), process.communicate()[0]
    asked = time.time()
    if how == "stop-file":
        run.request_stop()
    else:
        process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert time.time() - asked < 5
    assert run.status()["state"] == "stopped"
    stopped_at = run.metrics()[-1]["epoch"]
    first = Recommender.from_run(out).catalog.item_id.iloc[0]
    assert len(Recommender.from_run(out).recommend([first], k=3).items) == 3  # the checkpoint loads

    done = cli("train", "--resume", out, "--epochs", str(stopped_at + 2))
    assert done.returncode == 0, done.stderr
    assert run.status()["state"] == "finished"
    assert [m["epoch"] for m in run.metrics()][-3:] == [stopped_at, stopped_at + 1, stopped_at + 2]


def test_cli_train_evaluate_recommend(tmp_path):
    log, catalog = small_data(tmp_path)
    out = tmp_path / "run"
    trained = cli("train", log, "--items", catalog, "--out", out, "--epochs", 2, "--maxlen", 20, "--hidden", 16)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.strip().splitlines()[-1].startswith("finished")
    evaluated = cli("evaluate", out, "--json")
    report = json.loads(evaluated.stdout.strip().splitlines()[-1])
    for key in ("ndcg@10", "hr@10", "mrr", "sampled_ndcg@10", "sampled_hr@10", "pop_ndcg@10", "pop_hr@10",
                "markov_ndcg@10", "markov_hr@10"):
        assert 0 <= report[key] <= 1, key
    first = Recommender.from_run(out).catalog.item_id.iloc[0]
    recommended = json.loads(cli("recommend", out, "--history", first, "-k", 4, "--json").stdout)
    assert len(recommended["items"]) == 4 and first not in [r["item_id"] for r in recommended["items"]]


@pytest.mark.parametrize("args, says", [
    (["evaluate", "no/such/run"], "no such run directory"),
    (["recommend", "no/such/run", "--history", "1"], "no such run directory"),
    (["train", "missing.csv", "--out", "x"], "missing.csv"),
    (["train", "--resume", "no/such/run"], "no such run directory"),
])
def test_cli_errors_are_one_line(args, says):
    result = cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_rejects_bad_flags(tmp_path):
    log, _ = small_data(tmp_path)
    result = cli("train", log, "--out", tmp_path / "run", "--hidden", 10, "--heads", 3)
    assert result.returncode == 2 and "divisible" in result.stderr and "Traceback" not in result.stderr
    result = cli("train", log, "--out", tmp_path / "run", "--loss", "hinge")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_a_time_budget_ends_the_run_at_its_planned_end_and_more_time_resumes_it(tmp_path):
    """Many epochs, a short budget: the command ends within its budget with the final evaluation,
    the learning rate has decayed to about zero at the end, and the run says the budget ended it.
    Resumed with more time, it trains on and ends at the new budget."""
    log, catalog = small_data(tmp_path)
    out = tmp_path / "run"
    started = time.time()
    trained = cli("train", log, "--items", catalog, "--out", out, "--epochs", 1000, "--maxlen", 20, "--hidden", 16,
                  "--threads", 1, "--time-budget", "15s", "--patience", 1000)  # no early stop on this easy log
    took = time.time() - started
    assert trained.returncode == 0, trained.stderr
    assert "plan: about" in trained.stdout and "fit in the time budget of 15 s" in trained.stdout
    run = rundir.Run(out)
    status, progress, metrics = run.status(), run.progress(), run.metrics()
    assert status["state"] == "finished" and status["ended_by"] == "budget"
    assert "time budget of 15 s ended it after" in status["message"]
    assert status["elapsed_seconds"] < 15 + 3 and took < 15 + 5  # the clock starts with the command
    assert 1 < len(metrics) < 1000 and "valid_ndcg@10" in metrics[-1]  # validated at the planned end
    assert progress["learning_rate"] < 0.05 * run.config()["train"]["lr"]
    assert run.test_metrics()["ndcg@10"] > 0

    assert run.resumable()
    resumed = cli("train", "--resume", out, "--time-budget", "20s", "--threads", 1)
    assert resumed.returncode == 0, resumed.stderr
    status = run.status()
    assert status["state"] == "finished" and status["ended_by"] == "budget"
    budget = run.config()["train"]["time_budget"] * 60
    assert 15 + 20 - 3 < budget < 15 + 20 + 3  # what the first part used, plus the 20 s given
    assert len(run.metrics()) > len(metrics)


def test_the_plan_line_offers_a_budget_only_to_a_run_without_one():
    from sasrec.cli import plan_line

    limited = {"epoch_seconds": 1.5, "ends_by_budget": False, "epoch_limit": 2, "seconds_left": 11.0}
    assert "set a limit with --time-budget" in plan_line(limited | {"budget_seconds": None})
    budgeted = plan_line(limited | {"budget_seconds": 600.0})
    assert "within the time budget of 10 min" in budgeted and "--time-budget" not in budgeted
