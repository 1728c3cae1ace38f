"""Everything heavy the pages show, loaded or computed once and kept.

Models with st.cache_resource, tables with st.cache_data; the keys are paths and
modification times (ids), never big objects, so that new weights or a changed file are
picked up and nothing else is recomputed on a rerun.
"""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from .. import analysis, rundir
from ..dataset import Dataset, Preprocessing, build_dataset
from ..inference import Recommender, load_run_dataset
from ..readers import Columns, RawLog, read_catalog, read_log
from ..report import FOLDER, evaluate_run, read_evaluation


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


@st.cache_resource(max_entries=6, show_spinner="Loading the model…")
def _recommender(checkpoint: str, mtime: float) -> Recommender:
    run_dir = Path(checkpoint).parent
    return Recommender.from_run(run_dir, "best" if Path(checkpoint).stem == "best" else "last")


def recommender(run: rundir.Run) -> Recommender:
    """The run's model: the latest checkpoint while it trains, so that predictions improve
    live, and the best one once it has ended."""
    which = "last" if run.status()["state"] == rundir.RUNNING else "best"
    checkpoint = run.checkpoint(which)
    return _recommender(str(checkpoint), _mtime(checkpoint))


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset…")
def _run_dataset(run_dir: str, mtime: float):
    return load_run_dataset(run_dir)


def run_dataset(run: rundir.Run):
    """The dataset the run was trained on (DataError if it has gone or changed)."""
    return _run_dataset(str(run.path), _mtime(run.path / "items.parquet"))


@dataclass(frozen=True)
class Recipe:
    """How the Data page makes a dataset: a log and an optional catalog (with modification times,
    so that a changed file is read again), the column roles and the preprocessing. The key of
    the caches below."""
    path: str
    mtime: float
    catalog: str | None
    catalog_mtime: float
    roles: Columns
    preprocessing: Preprocessing


def recipe(path, catalog, roles: Columns, preprocessing: Preprocessing) -> Recipe:
    return Recipe(str(path), _mtime(Path(path)), catalog and str(catalog), _mtime(Path(catalog)) if catalog else 0.0,
                  roles, preprocessing)


@st.cache_resource(max_entries=4, show_spinner="Reading the file…")
def _raw_log(path: str, mtime: float) -> RawLog:
    return read_log(path)


def raw_log(path) -> RawLog:
    """The log as read (DataError for a bad file)."""
    return _raw_log(str(path), _mtime(Path(path)))


@st.cache_resource(max_entries=4, show_spinner="Reading the catalog…")
def _catalog(path: str, mtime: float):
    return read_catalog(path)


@st.cache_resource(max_entries=4, show_spinner="Cleaning the log…")
def dataset(made: Recipe) -> Dataset:
    raw = _raw_log(made.path, made.mtime)
    catalog = _catalog(made.catalog, made.catalog_mtime) if made.catalog else raw.catalog
    return build_dataset(raw.events, made.roles, catalog, made.preprocessing, raw.source)


@st.cache_data(max_entries=8, show_spinner=False)
def profile(made: Recipe) -> dict:
    """The small tables behind the Data page's charts."""
    data = dataset(made)
    return {"lengths": analysis.length_histogram(data), "popularity": analysis.popularity_curve(data),
            "top_share": analysis.top_share(data), "activity": analysis.activity(data),
            "sequences": analysis.sample_sequences(data)}


def _versions(run: rundir.Run) -> tuple[float, float]:
    """Modification times of the run's checkpoints: a cache key that changes with any new weights."""
    return _mtime(run.path / "best.safetensors"), _mtime(run.path / "last.safetensors")


def titles(recommender_, item_ids) -> list[str]:
    """The titles of item ids; an id the model's catalog lacks stands for itself."""
    internal = recommender_.internal.reindex([str(i) for i in item_ids])
    return [recommender_.catalog.at[i, "title"] if pd.notna(i) else str(item) for i, item in zip(internal, item_ids)]


@st.cache_data(max_entries=8, show_spinner="Averaging attention over validation users…")
def _attention_aggregates(run_dir: str, versions: tuple, num_users: int, _model, _dataset):
    users = analysis.sample_users(_dataset, num_users)
    by_distance = analysis.attention_by_distance(_model, _dataset, users)
    has_categories = _dataset.catalog["category"].notna().any()
    categories = analysis.category_attention(_model, _dataset, users) if has_categories else None
    return by_distance, categories, len(users)


def attention_aggregates(run: rundir.Run, dataset, num_users: int = 500):
    """(attention by distance, category x category attention or None, users sampled), cached per weights."""
    return _attention_aggregates(str(run.path), _versions(run), num_users, recommender(run).model, dataset)


@st.cache_resource(max_entries=8, show_spinner="Reading the evaluation…")
def _evaluation(run_dir: str, mtime: float) -> dict:
    return read_evaluation(run_dir) or {}


def evaluation(run: rundir.Run) -> dict:
    """The tables the run wrote when it finished (report.py): per_user, breakdown, embedding.
    A run from before they existed is evaluated once, here, and then read like the others."""
    written = run.path / FOLDER / "per_user.parquet"
    if not written.exists() and run.state() in (rundir.FINISHED, rundir.STOPPED):
        with st.spinner("Evaluating on the test split, with the baselines (once; the result is kept)…"):
            evaluate_run(run.path)
    return _evaluation(str(run.path), _mtime(written))


def umap_installed() -> bool:
    return importlib.util.find_spec("umap") is not None


@st.cache_data(max_entries=8, show_spinner="Projecting the item embeddings with UMAP…")
def _umap_points(run_dir: str, versions: tuple, _model, _points: pd.DataFrame) -> pd.DataFrame:
    return _points.drop(columns=["x", "y"]).join(analysis.embedding_map(_model, _points, None, "umap")[["x", "y"]])


def embedding_points(run: rundir.Run, method: str) -> pd.DataFrame:
    """The item embedding map the run wrote (PCA), or its UMAP projection, computed once."""
    points = evaluation(run).get("embedding")
    if points is None:
        return pd.DataFrame(columns=["item_id", "title", "category", "popularity", "x", "y"])
    if method == "umap":
        return _umap_points(str(run.path), _versions(run), recommender(run).model, points)
    return points
