"""The evaluation of a run, computed once when training ends and then only read.

    test_metrics.json           full-ranking and sampled metrics of SASRec and the baselines
    evaluation/per_user.parquet each test user's history length and the rank each model gave
    evaluation/breakdown.parquet  NDCG@10 and HR@10 by history length
    evaluation/embedding.parquet  the item embeddings projected to 2-D, with popularity

The Evaluate page and `python -m sasrec evaluate` read these; `evaluate --recompute` (or a
run that predates them) writes them again from the best weights and the run's data.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis, insights, rundir
from .evaluate import evaluate
from .files import atomic_write

FOLDER = "evaluation"
TABLES = ("per_user", "breakdown", "embedding")


def write_evaluation(run_dir, model, dataset, device="cpu", on_progress=None) -> dict:
    """Evaluate `model` on the test split with the baselines and write every file above; returns the metrics."""
    run_dir = Path(run_dir)
    report = evaluate(model, dataset, "test", device=device, on_progress=on_progress)
    model = model.cpu()
    popularity = np.bincount(dataset.items, minlength=dataset.num_items + 1)[1:]
    tables = {"per_user": report.per_user, "breakdown": analysis.breakdown_by_length(report.per_user),
              "embedding": analysis.embedding_map(model, dataset.catalog, popularity)}
    (run_dir / FOLDER).mkdir(exist_ok=True)
    for name, table in tables.items():
        atomic_write(run_dir / FOLDER / f"{name}.parquet", lambda tmp, t=table: t.to_parquet(tmp, index=False))
    rundir.write_json(run_dir / "test_metrics.json", report.metrics)
    insights.write_insights(run_dir, model, dataset)  # head importance, example customers, attribution agreement
    return report.metrics


def read_evaluation(run_dir) -> dict[str, pd.DataFrame] | None:
    """The evaluation tables, or None if the run has not written them (yet)."""
    folder = Path(run_dir) / FOLDER
    try:
        return {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}
    except (OSError, ValueError):
        return None


def evaluate_run(run_dir) -> dict:
    """Evaluate a run's best weights on the data it was trained on, writing the files above."""
    from .inference import Recommender, load_run_dataset

    dataset = load_run_dataset(run_dir)
    model = Recommender.from_run(run_dir).model
    return write_evaluation(run_dir, model, dataset)
