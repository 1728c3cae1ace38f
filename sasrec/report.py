"""The evaluation of a run, computed once when training ends and then only read.

    test_metrics.json             every test figure: full-ranking and sampled HR@K, NDCG@K and MRR of
                                  SASRec and the baselines, the beyond-accuracy metrics at K = 10
                                  (beyond.py), the 95 % interval of each (ci95), SASRec against each
                                  baseline with paired tests (versus), EASE's λ or why it is absent
                                  (ease), and each snapshot's NDCG@10 and popularity (snapshots)
    evaluation/per_user.parquet   each test user's history length, the test item's popularity, when
                                  the user was last active, and the rank each model gave the test item
    evaluation/top10.npz          each test user's top 10 per model (int32, in per_user's row order):
                                  how much two runs' lists overlap is read from here
    evaluation/ease.npz           EASE's test ranks and lists with the fingerprint of the data they are for:
                                  a later run on the same data, in the same folder, reuses them
                                  (EASE depends on the data alone, and is the slowest part to fit)
    evaluation/breakdown.parquet  NDCG@10 and HR@10 with intervals, by history length, the test item's
                                  popularity and recency (breakdowns.py)
    evaluation/embedding.parquet  the item embeddings projected to 2-D, with popularity

The Evaluate page and `python -m sasrec evaluate` read these; `evaluate --recompute` (or the app,
for a run that predates them) writes them again from the best weights and the run's data.
"""

import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis, beyond, breakdowns, ease, insights, rundir, sequences, stats
from .evaluate import (
    BASELINES,
    KS,
    METRICS,
    MODELS,
    NUM_SAMPLED,
    TOP_K,
    evaluate,
    evaluated_models,
    per_user_metrics,
    rank_targets,
    sasrec_scorer,
    users_per_batch,
)
from .files import atomic_write

FOLDER = "evaluation"
TABLES = ("per_user", "breakdown", "embedding")
TOP_LISTS = "top10.npz"
FORMAT = 2  # test_metrics.json's "format": 1 (absent) had no intervals, EASE or beyond-accuracy metrics
SNAPSHOT_USERS = 5_000  # test users a snapshot is evaluated on (a fixed sample; all of them if fewer)
TEST_MODELS = 4  # the test ranks every item for SASRec, most popular, Markov and EASE


def ranked_users(test_users: int, epochs: int, model) -> int:
    """Users write_evaluation ranks every item for, after `epochs` epochs of `model` (a ModelConfig): the
    test's for each model, the snapshots' samples and the head-importance masks' (insights.py). Times the
    seconds a validated user takes, its expected time."""
    snapshots = sum(rundir.is_snapshot_epoch(epoch) for epoch in range(1, epochs + 1))
    return (test_users * TEST_MODELS + snapshots * min(test_users, SNAPSHOT_USERS)
            + insights.ranked_users(model, test_users))


def extra_seconds(run_dir, model, dataset) -> float:
    """What write_evaluation spends beyond ranking: EASE's fit, unless another run in the workspace
    stored it for this split, and the insights' agreement (`model`: any SASRec of the run's shape,
    trained or not)."""
    fit = 0.0 if stored_ease(run_dir, dataset) else ease.expected_seconds(dataset.num_items)
    return fit + insights.expected_seconds(model, dataset)


def stored_ease(run_dir, dataset) -> dict | None:
    """EASE's test results for this split as a run beside run_dir stored them (ease.find_stored), or None."""
    if ease.too_big(dataset.num_items):
        return None
    return ease.find_stored(sorted(Path(run_dir).parent.glob(f"*/{FOLDER}/{ease.STORED}")), ease_key(dataset))


def is_current(metrics: dict | None) -> bool:
    """Whether test metrics were written by this version (with intervals, EASE and beyond accuracy)."""
    return bool(metrics) and metrics.get("format") == FORMAT


def write_evaluation(run_dir, model, dataset, device="cpu", on_progress=None) -> dict:
    """Evaluate `model` on the test split with the baselines and write every file above; returns the
    metrics. on_progress(message) is told what is being done as each part starts."""
    say = on_progress or (lambda message: None)
    started = time.perf_counter()
    report = evaluate(model, dataset, "test", device=device, on_progress=say, ease_found=stored_ease(run_dir, dataset))
    moment = time.perf_counter()
    snapshots = snapshot_points(run_dir, model, dataset, device, beyond.item_popularity(dataset, "test"), say)
    seconds = {"ranking": report.seconds, "snapshots": round(time.perf_counter() - moment, 2)}
    metrics = write_report(run_dir, report, dataset, model, snapshots, say, seconds)
    say("head importance, example customers and the attributions' agreement")
    moment = time.perf_counter()
    insights.write_insights(run_dir, model, dataset)
    metrics["seconds"] |= {"insights": round(time.perf_counter() - moment, 2),
                           "total": round(time.perf_counter() - started, 2)}
    rundir.write_json(Path(run_dir) / "test_metrics.json", metrics)
    return metrics


def write_report(run_dir, report, dataset, model, snapshots: list[dict], say=lambda message: None,
                 seconds: dict | None = None) -> dict:
    """Write the files above for an evaluate.Report of the test split and the snapshots' points: the
    intervals, paired tests, beyond-accuracy metrics and breakdowns are computed here. Returns the metrics,
    with `seconds` (what the parts before took) and the seconds taken here."""
    run_dir = Path(run_dir)
    say("intervals, paired tests and beyond-accuracy metrics")
    moment = time.perf_counter()
    test = sequences.holdout(dataset, "test")
    popularity = beyond.item_popularity(dataset, "test")
    last_active = (dataset.timestamps[test.ends].astype(np.float64)  # the test item's time
                   if dataset.timestamps is not None and len(dataset.timestamps) else np.full(len(test), np.nan))
    per_user = report.per_user.assign(target_popularity=popularity[test.targets], last_active=last_active)
    metrics = summarise(report, popularity, beyond.category_codes(dataset.catalog), dataset.num_items,
                        dataset.num_users)
    models = list(evaluated_models(metrics))
    breakdown = breakdowns.breakdowns(per_user, popularity, models)
    seconds = dict(seconds or {}) | {"intervals": round(time.perf_counter() - moment, 2)}

    say("the item embedding map")
    tables = {"per_user": per_user, "breakdown": breakdown,
              "embedding": analysis.embedding_map(model.cpu(), dataset.catalog, np.bincount(
                  dataset.items, minlength=dataset.num_items + 1)[1:])}
    folder = run_dir / FOLDER
    folder.mkdir(exist_ok=True)
    for name, table in tables.items():
        atomic_write(folder / f"{name}.parquet", lambda tmp, t=table: t.to_parquet(tmp, index=False))
    atomic_write(folder / TOP_LISTS, lambda tmp: save_arrays(tmp, {MODELS[prefix]: report.top[prefix]
                                                                    for prefix in models}))
    if "ease_" in report.top:
        ranked = {"rank": per_user["ease_rank"].to_numpy(), "sampled_rank": per_user["ease_sampled_rank"].to_numpy(),
                  "top": report.top["ease_"]}
        summary = {k: v for k, v in report.ease.items() if k != "reused_from"}
        atomic_write(folder / ease.STORED, lambda tmp: ease.store(tmp, ease_key(dataset), summary, ranked))
    metrics |= {"snapshots": snapshots, "seconds": seconds, "format": FORMAT}
    rundir.write_json(run_dir / "test_metrics.json", metrics)
    return metrics


def ease_key(dataset) -> str:
    """The fingerprint of EASE's test results on this data, as write_evaluation computes them."""
    return ease.fingerprint(dataset, NUM_SAMPLED, TOP_K, 0)


def save_arrays(path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as file:  # a file object: np.savez would add ".npz" to a name
        np.savez_compressed(file, **arrays)


def summarise(report, popularity: np.ndarray, categories: np.ndarray | None, num_items: int, num_users: int) -> dict:
    """The report's metrics with the beyond-accuracy metrics added, every one's interval (ci95), and SASRec
    against each baseline (versus: for every full-ranking metric, the paired test of stats.paired_test).
    popularity: beyond.item_popularity; num_users: the log's users, who all have training interactions."""
    models = evaluated_models(report.metrics)
    columns = {}
    for prefix in models:
        columns |= per_user_metrics(report.per_user[prefix + "rank"].to_numpy(), KS, prefix)
        columns |= per_user_metrics(report.per_user[prefix + "sampled_rank"].to_numpy(), KS, prefix + "sampled_")
        listed = beyond.per_user(report.top[prefix], popularity, num_users, categories)
        columns |= {f"{prefix}{name}@{TOP_K}": values for name, values in listed.items()}
    names = list(columns)
    resampled = stats.resampled_means(np.column_stack([columns[name] for name in names]))
    low, high = stats.interval(resampled)
    metrics = dict(report.metrics) | {name: float(columns[name].mean()) for name in names}
    ci95 = {name: [float(low[i]), float(high[i])] for i, name in enumerate(names)}
    for prefix in models:
        metrics[f"{prefix}coverage@{TOP_K}"], ci95[f"{prefix}coverage@{TOP_K}"] = beyond.coverage(
            report.top[prefix], num_items)
    at = {name: i for i, name in enumerate(names)}
    versus = {prefix.removesuffix("_"): {
        metric: stats.paired_test(resampled[:, at[metric]], resampled[:, at[prefix + metric]],
                                  metrics[metric] - metrics[prefix + metric]) for metric in METRICS}
        for prefix in models if prefix in BASELINES}
    return metrics | {"ci95": ci95, "versus": versus, "ease": report.ease,
                      "bootstrap": {"resamples": stats.RESAMPLES, "level": stats.LEVEL, "seed": stats.SEED}}


def snapshot_points(run_dir, model, dataset, device, popularity: np.ndarray, say=lambda message: None) -> list[dict]:
    """Each snapshot's test NDCG@10, HR@10 and the per-user beyond-accuracy metrics of its top 10, on a
    fixed sample of SNAPSHOT_USERS test users, each with its interval: how accuracy and popularity bias
    move together over training. [] for a run without snapshots."""
    run = rundir.Run(run_dir)
    epochs = run.snapshots()
    if not epochs:
        return []
    test = sequences.holdout(dataset, "test")
    rows = np.arange(len(test))
    if len(test) > SNAPSHOT_USERS:
        rows = np.sort(np.random.default_rng(0).choice(len(test), size=SNAPSHOT_USERS, replace=False))
    sample = test.subset(rows)
    snapshot = copy.deepcopy(model)
    categories = beyond.category_codes(dataset.catalog)
    points = []
    for step, epoch in enumerate(epochs):
        say(f"the snapshot of epoch {epoch} on {len(sample):,} test users ({step + 1} of {len(epochs)})")
        try:
            rundir.load_model_weights(snapshot, run.checkpoint(f"epoch-{epoch:04d}"))
        except rundir.RunError:  # removed or damaged since: the others still make the curve
            continue
        ranked = rank_targets(sasrec_scorer(snapshot, dataset.items, sample, device), dataset.items, sample,
                              device=device, batch_size=users_per_batch(dataset.num_items), top_k=TOP_K)
        columns = {name: values for name, values in per_user_metrics(ranked["rank"], ks=(10,)).items()
                   if name != "mrr"}
        listed = beyond.per_user(ranked["top"], popularity, dataset.num_users, categories)
        columns |= {f"{name}@{TOP_K}": listed[name] for name in beyond.TRADEOFF}
        names = list(columns)
        low, high = stats.interval(stats.resampled_means(np.column_stack([columns[name] for name in names])))
        points.append({"epoch": epoch, "users": len(sample), **{name: float(columns[name].mean()) for name in names},
                       "ci95": {name: [float(low[i]), float(high[i])] for i, name in enumerate(names)}})
    return points


def read_evaluation(run_dir) -> dict[str, pd.DataFrame] | None:
    """The evaluation tables, or None if the run has not written them (yet)."""
    folder = Path(run_dir) / FOLDER
    try:
        return {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}
    except (OSError, ValueError):
        return None


def read_top_lists(run_dir) -> dict[str, np.ndarray]:
    """Model name -> (test users, 10) int32 top lists, in per_user's row order ({} if the run has none)."""
    try:
        with np.load(Path(run_dir) / FOLDER / TOP_LISTS, allow_pickle=False) as lists:
            return {name: lists[name] for name in lists.files}
    except (OSError, ValueError):
        return {}


def compare_runs(first, second) -> dict:
    """Two runs evaluated on the same test users (the same data): the paired test of their NDCG@10 and
    HR@10, and how much their top-10 lists overlap (mean Jaccard), each with its interval. first and
    second are rundir.Run; a RunError if they cannot be compared."""
    tables, lists = [], []
    for run in (first, second):
        found = read_evaluation(run.path)
        top = read_top_lists(run.path).get(MODELS[""])
        if found is None or top is None:
            raise rundir.RunError(f"run {run.name} has no stored evaluation to compare (evaluate --recompute)")
        tables.append(found["per_user"])
        lists.append(top)
    same_catalog = [pd.read_parquet(run.path / "items.parquet", columns=["item_id"])["item_id"].tolist()
                    for run in (first, second)]
    if same_catalog[0] != same_catalog[1] or tables[0]["user_id"].tolist() != tables[1]["user_id"].tolist():
        raise rundir.RunError(f"runs {first.name} and {second.name} were not evaluated on the same data, so their "
                              "users cannot be paired")
    columns = {}
    for i, table in enumerate(tables):
        columns |= {(i, name): values for name, values in per_user_metrics(table["rank"].to_numpy(), ks=(10,)).items()
                    if name != "mrr"}
    columns["overlap"] = beyond.jaccard(lists[0], lists[1])
    names = list(columns)
    resampled = stats.resampled_means(np.column_stack([columns[name] for name in names]))
    at = {name: i for i, name in enumerate(names)}
    out = {"first": first.name, "second": second.name, "users": len(tables[0])}
    for metric in ("ndcg@10", "hr@10"):
        a, b = columns[0, metric].mean(), columns[1, metric].mean()
        out[metric] = {"first": float(a), "second": float(b)} | stats.paired_test(
            resampled[:, at[0, metric]], resampled[:, at[1, metric]], float(a - b))
    low, high = stats.interval(resampled[:, at["overlap"]])
    out["overlap@10"] = {"mean": float(columns["overlap"].mean()), "ci95": [float(low), float(high)]}
    return out


def evaluate_run(run_dir, on_progress=None) -> dict:
    """Evaluate a run's best weights on the data it was trained on, writing the files above."""
    from .inference import Recommender, load_run_dataset

    dataset = load_run_dataset(run_dir)
    model = Recommender.from_run(run_dir).model
    return write_evaluation(run_dir, model, dataset, on_progress=on_progress)
