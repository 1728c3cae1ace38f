"""Everything heavy the pages show, loaded or computed once and kept.

Models with st.cache_resource, tables with st.cache_data; the keys are paths and
modification times (ids), never big objects, so that new weights or a changed file are
picked up and nothing else is recomputed on a rerun.
"""

import importlib.util
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from .. import analysis, explain, insights, rundir, synthetic
from ..dataset import Dataset, Preprocessing, build_dataset
from ..inference import Recommender, load_run_dataset
from ..readers import Columns, DataError, RawLog, read_catalog, read_log
from ..report import FOLDER, compare_runs, evaluate_run, is_current, read_evaluation
from ..search import SubstringIndex
from . import charts


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


@st.cache_resource(max_entries=6, show_spinner="Loading the model…")
def _recommender(checkpoint: str, mtime: float) -> Recommender:
    run_dir = Path(checkpoint).parent
    return Recommender.from_run(run_dir, "best" if Path(checkpoint).stem == "best" else "last")


def has_checkpoint(run: rundir.Run) -> bool:
    try:
        run.checkpoint("last")
    except rundir.RunError:
        return False
    return True


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
    so that a changed file is read again), how to read delimited text (None: detected), the
    column roles and the preprocessing. The key of the caches below."""
    path: str
    mtime: float
    catalog: str | None
    catalog_mtime: float
    roles: Columns
    preprocessing: Preprocessing
    delimiter: str | None = None
    header: bool | None = None


def recipe(path, catalog, roles: Columns, preprocessing: Preprocessing, delimiter: str | None = None,
           header: bool | None = None) -> Recipe:
    return Recipe(str(path), _mtime(Path(path)), catalog and str(catalog), _mtime(Path(catalog)) if catalog else 0.0,
                  roles, preprocessing, delimiter, header)


@st.cache_resource(max_entries=4, show_spinner="Reading the file…")
def _raw_log(path: str, mtime: float, delimiter: str | None = None, header: bool | None = None) -> RawLog:
    return read_log(path, delimiter, header)


def raw_log(path, delimiter: str | None = None, header: bool | None = None) -> RawLog:
    """The log as read (DataError for a bad file); `delimiter` and `header` override what is detected."""
    return _raw_log(str(path), _mtime(Path(path)), delimiter, header)


@st.cache_resource(max_entries=4, show_spinner="Reading the catalog…")
def _catalog(path: str, mtime: float):
    return read_catalog(path)


@st.cache_resource(max_entries=4, show_spinner="Cleaning the log…")
def dataset(made: Recipe) -> Dataset:
    raw = _raw_log(made.path, made.mtime, made.delimiter, made.header)
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


@st.cache_resource(max_entries=4, show_spinner="Indexing the titles…")
def _catalog_index(run_dir: str, mtime: float, _catalog: pd.DataFrame) -> SubstringIndex:
    return SubstringIndex(_catalog["item_id"], _catalog["title"])


def search_catalog(run: rundir.Run, recommender_: Recommender, query: str, limit: int) -> pd.DataFrame:
    """Catalog rows (item_id, title, category) whose id or title contains `query`, an exact id
    first; the index is built once per run's catalog (search.py)."""
    if not query.strip():
        return recommender_.catalog.head(0)
    index = _catalog_index(str(run.path), _mtime(run.path / "items.parquet"), recommender_.catalog)
    return recommender_.catalog.iloc[index.find(query, limit)]


@st.cache_resource(max_entries=4, show_spinner="Indexing the users…")
def _user_index(run_dir: str, mtime: float, _dataset) -> SubstringIndex:
    return SubstringIndex(_dataset.user_ids)


def find_users(run: rundir.Run, dataset, query: str, limit: int = 8) -> pd.DataFrame:
    """Users whose id contains `query`, an exact match first: user_id, items."""
    found = _user_index(str(run.path), _mtime(run.path / "items.parquet"), dataset).find(query, limit)
    return pd.DataFrame({"user_id": dataset.user_ids[found], "items": dataset.offsets[found + 1] - dataset.offsets[found]})


@st.cache_data(max_entries=8, show_spinner=False)
def _example(run_dir: str, mtime: float, _catalog: pd.DataFrame) -> list[str] | None:
    if not {"kind", "series", "position"} <= set(_catalog.columns):
        return None
    return synthetic.example_history(_catalog)


def example_history(run: rundir.Run, recommender_: Recommender) -> list[str] | None:
    """The bundled sample's demo history if the model's catalog is the sample's (state.example_history)."""
    return _example(str(run.path), _mtime(run.path / "items.parquet"), recommender_.catalog)


def titles(recommender_, item_ids) -> list[str]:
    """The titles of item ids; an id the model's catalog lacks stands for itself."""
    internal = recommender_.internal.reindex([str(i) for i in item_ids])
    return [recommender_.catalog.at[i, "title"] if pd.notna(i) else str(item) for i, item in zip(internal, item_ids)]


def _compute_attention_aggregates(model, dataset, num_users: int):
    users = analysis.sample_users(dataset, num_users)
    by_distance = analysis.attention_by_distance(model, dataset, users)
    has_categories = dataset.catalog["category"].notna().any()
    categories = analysis.category_attention(model, dataset, users) if has_categories else None
    return by_distance, categories, len(users)


# One worker: the aggregates of a big log take seconds, and run beside the pages, not in them.
_BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sasrec-aggregates")


@st.cache_resource(max_entries=8, show_spinner=False)
def _attention_aggregates(run_dir: str, versions: tuple, num_users: int, _model, _dataset) -> Future:
    return _BACKGROUND.submit(_compute_attention_aggregates, _model, _dataset, num_users)


def attention_aggregates(run: rundir.Run, dataset, num_users: int = 500):
    """(attention by distance, category x category attention or None, users sampled), computed once
    per weights in a background thread; None until they are ready (a page polls)."""
    future = _attention_aggregates(str(run.path), _versions(run), num_users, recommender(run).model, dataset)
    return future.result() if future.done() else None


@st.cache_resource(max_entries=8, show_spinner="Reading the evaluation…")
def _evaluation(run_dir: str, mtime: float) -> dict:
    return read_evaluation(run_dir) or {}


@st.cache_resource(max_entries=8, show_spinner=False)
def _evaluating(run_dir: str, versions: tuple) -> Future:
    return _BACKGROUND.submit(evaluate_run, run_dir)


def evaluation(run: rundir.Run) -> dict | None:
    """The tables the run wrote when it finished (report.py): per_user, breakdown, embedding; {} for a run
    with nothing to evaluate (no checkpoint). A finished or stopped run whose evaluation is missing or
    predates this version's (report.is_current) is evaluated once, in the background: None until that is
    done, then read like the others; an error it met is raised here."""
    written = run.path / FOLDER / "per_user.parquet"
    current = is_current(run.test_metrics()) and written.exists()
    if not current and run.state() in (rundir.FINISHED, rundir.STOPPED) and has_checkpoint(run):
        future = _evaluating(str(run.path), _versions(run))
        if not future.done():
            return None
        future.result()
    return _evaluation(str(run.path), _mtime(written))


@st.cache_data(max_entries=16, show_spinner="Comparing the runs user by user…")
def _compared(first: str, first_name: str, second: str, second_name: str, mtimes: tuple) -> dict:
    return compare_runs(rundir.Run(first, first_name), rundir.Run(second, second_name))


def compared(first: rundir.Run, second: rundir.Run) -> dict:
    """report.compare_runs for two runs, computed once per pair of evaluations (RunError if not comparable)."""
    mtimes = tuple(_mtime(run.path / FOLDER / "per_user.parquet") for run in (first, second))
    return _compared(str(first.path), first.name, str(second.path), second.name, mtimes)


def umap_installed() -> bool:
    return importlib.util.find_spec("umap") is not None


@st.cache_data(max_entries=8, show_spinner="Projecting the item embeddings with UMAP…")
def _umap_points(run_dir: str, versions: tuple, _model, _points: pd.DataFrame) -> pd.DataFrame:
    return _points.drop(columns=["x", "y"]).join(analysis.embedding_map(_model, _points, None, "umap")[["x", "y"]])


def embedding_points(run: rundir.Run, method: str) -> pd.DataFrame:
    """The item embedding map the run wrote (PCA), or its UMAP projection, computed once."""
    points = (evaluation(run) or {}).get("embedding")
    if points is None:
        return pd.DataFrame(columns=["item_id", "title", "category", "popularity", "x", "y"])
    if method == "umap":
        return _umap_points(str(run.path), _versions(run), recommender(run).model, points)
    return points


@st.cache_resource(max_entries=8, show_spinner=False)
def _embedding_figure(run_dir: str, versions: tuple, method: str, colour_by: str, _points: pd.DataFrame):
    shown = charts.embedding_points_shown(_points)
    return charts.embedding_figure(shown, colour_by), len(shown)


def embedding_figure(run: rundir.Run, method: str, colour_by: str):
    """(the embedding map's Plotly figure, points drawn), built once per run, projection and colouring:
    for a big catalog, picking the 100,000 most popular items and building the figure take a second."""
    return _embedding_figure(str(run.path), _versions(run), method, colour_by, embedding_points(run, method))


# Watching the model learn, and a second model

@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _recommender_at(run_dir: str, which: str, mtime: float) -> Recommender:
    return Recommender.from_run(run_dir, which)


def recommender_at(run: rundir.Run, which: str) -> Recommender:
    """The run's model at a checkpoint: "" for its current weights (recommender()), "best", "last",
    or one of its snapshots ("epoch-0004"; anything else is a RunError)."""
    if not which:
        return recommender(run)
    checkpoint = run.checkpoint(which)
    return _recommender_at(str(run.path), which, _mtime(checkpoint))


@st.cache_resource(max_entries=8, show_spinner=False)
def _agreement(run_dir: str, versions: tuple, num_users: int, _model, _dataset) -> Future:
    return _BACKGROUND.submit(explain.agreement_over_validation, _model, _dataset, num_users)


def attention_agreement(run: rundir.Run, dataset, num_users: int = insights.AGREEMENT_USERS) -> dict | None:
    """explain.attention_effect_agreement over validation users: what the run stored when it
    finished, else (a run that trains, or one from before insights.json) computed for its
    current weights once in the background, like attention_aggregates; None until it is ready."""
    stored = _stored_insights(str(run.path), _mtime(run.path / insights.FILE))
    if stored is not None and run.state() != rundir.RUNNING:
        return stored["agreement"]
    future = _agreement(str(run.path), _versions(run), num_users, recommender(run).model, dataset)
    return future.result() if future.done() else None


@st.cache_data(max_entries=16, show_spinner=False)
def _stored_insights(run_dir: str, mtime: float) -> dict | None:
    return insights.read_insights(run_dir) if mtime else None


def _compute_insights(run_dir: str) -> dict:
    """insights.json for a finished run from before it existed: written into the run (kept in
    memory only where the run cannot be written to), or {"unavailable": why} when its data
    cannot be read."""
    try:
        dataset = load_run_dataset(run_dir)
        model = Recommender.from_run(run_dir).model
        try:
            return insights.write_insights(run_dir, model, dataset)
        except OSError:
            per_user = (read_evaluation(run_dir) or {}).get("per_user")
            return insights.compute(model, dataset, per_user)
    except (DataError, rundir.RunError, OSError) as err:
        return {"unavailable": str(err)}


@st.cache_resource(max_entries=8, show_spinner=False)
def _insights_future(run_dir: str, versions: tuple) -> Future:
    return _BACKGROUND.submit(_compute_insights, run_dir)


def run_insights(run: rundir.Run) -> dict | None:
    """What the run computed about itself when it finished (insights.py): head importance,
    example customers, attribution agreement. A finished run from before that file existed
    computes it once, in the background: None until that is done. A run that has not finished
    (it trains, or it was stopped or failed: it may yet be resumed) has none: {"unavailable":
    why}, as when its data cannot be read."""
    stored = _stored_insights(str(run.path), _mtime(run.path / insights.FILE))
    if run.state() != rundir.FINISHED:
        return stored if stored is not None and run.state() != rundir.RUNNING else {
            "unavailable": "they are computed when the run finishes."}
    if stored is not None:
        return stored
    future = _insights_future(str(run.path), _versions(run))
    return future.result() if future.done() else None
