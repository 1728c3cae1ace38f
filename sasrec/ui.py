"""Shared helpers for the Streamlit pages: the workspace, what is active, cached loaders.

The pages share three things: the active dataset, the active run and the Playground
history. They live in st.session_state, and in the URL's query parameters so that a
reload keeps them. Everything else is read back from the workspace on disk.
"""

import importlib.util
import runpy
import time
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from . import analysis, rundir, synthetic
from .cli import metrics_table
from .data import Columns, DataError, Dataset, Preprocessing, RawLog, build_dataset, read_catalog, read_log
from .evaluate import evaluate_run
from .inference import Recommender, load_run_dataset, rank_changes
from .workspace import (DEMO_NAME, INTERRUPTED, REPO, SAMPLE_NAME, Workspace, activity, length_histogram,
                        popularity_curve, run_state, sample_sequences, top_share, train_settings)

STATE_COLORS = {"running": "blue", "finished": "green", "stopped": "orange", "failed": "red", INTERRUPTED: "gray"}


@st.cache_resource
def workspace() -> Workspace:
    return Workspace()


# What is active

def _shared(key: str, default):
    """A value shared by all pages: session state first, then the URL, then the default."""
    if key not in st.session_state:
        st.session_state[key] = st.query_params.get(key, default)
    return st.session_state[key]


def _share(key: str, value) -> None:
    st.session_state[key] = value
    st.query_params[key] = value


def active_dataset_name() -> str:
    return _shared("dataset", SAMPLE_NAME)


def set_active_dataset(name: str) -> None:
    _share("dataset", name)


def active_run_name() -> str | None:
    runs = workspace().runs()
    default = workspace().run_name(runs[0]) if runs else None
    name = _shared("run", default or "")
    return name or None


def set_active_run(name: str) -> None:
    _share("run", name)


def active_run() -> rundir.Run | None:
    name = active_run_name()
    if name is None:
        return None
    run = workspace().run(name)
    return run if run.exists() else None


def active_dataset():
    try:
        return workspace().dataset(active_dataset_name())
    except rundir.RunError:
        set_active_dataset(SAMPLE_NAME)
        return workspace().dataset(SAMPLE_NAME)


def history() -> list[str]:
    """The Playground's history of original item ids, oldest first."""
    if "history" not in st.session_state:
        raw = st.query_params.get("history", "")
        st.session_state["history"] = [i for i in raw.split(",") if i]
    return st.session_state["history"]


def set_history(items: list[str], remember_undo: bool = True) -> None:
    if remember_undo:
        st.session_state.setdefault("history_undo", []).append(list(history()))
    st.session_state["history"] = list(items)
    st.query_params["history"] = ",".join(items)


def sync_query_params() -> None:
    """st.navigation starts each page with a clean URL; put the shared values back."""
    for key in ("dataset", "run"):
        if st.session_state.get(key):
            st.query_params[key] = st.session_state[key]
    if st.session_state.get("history"):
        st.query_params["history"] = ",".join(st.session_state["history"])


def start_demo() -> None:
    """Activate the sample data, the demo model and an example history in which the
    planted patterns show: two horror films, then the first episodes of a horror series."""
    set_active_dataset(SAMPLE_NAME)
    set_active_run(DEMO_NAME)
    set_history(example_history(recommender(workspace().run(DEMO_NAME))), remember_undo=False)


# Cached loaders: keyed on paths and modification times, never on big objects

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
    which = "last" if run.status().get("state") == rundir.RUNNING else "best"
    checkpoint = run.checkpoint(which)
    return _recommender(str(checkpoint), _mtime(checkpoint))


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset…")
def _run_dataset(run_dir: str, mtime: float):
    return load_run_dataset(run_dir)


def run_dataset(run: rundir.Run):
    """The dataset the run was trained on (DataError if it has gone or changed)."""
    return _run_dataset(str(run.path), _mtime(run.path / "items.parquet"))


# Layout

def page_setup() -> None:
    """Call first in every page file.

    With a pages/ folder next to app.py, Streamlit's legacy mode runs a page file on its
    own when a fresh server's first request is for that page's URL (and in AppTest, on
    every run), skipping app.py: no layout, no sidebar, no shared state. Here the legacy
    mode is switched off and the router runs instead, which runs this page again.
    """
    from streamlit.runtime.pages_manager import PagesManager  # no public switch for this

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(REPO / "app.py"), run_name="__main__")
        st.stop()


def sidebar() -> None:
    """The active dataset and model, on every page."""
    with st.sidebar:
        st.caption("Active dataset")
        st.markdown(f"**{active_dataset_name()}**")
        st.caption("Active model")
        run = active_run()
        if run is None:
            st.markdown("_none yet: train one on the Train page_")
        else:
            state = run_state(run)
            name = workspace().run_name(run)
            st.markdown(f"**{name}** :{STATE_COLORS.get(state, 'gray')}-badge[{state}]")


def error(err: Exception) -> None:
    """A readable message for an error the user can act on."""
    st.error(str(err), icon=":material/error:")


# Errors a user can act on: pages show their message, never a traceback.
USER_ERRORS = (DataError, rundir.RunError, FileNotFoundError)


# Data and Train pages

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
    return {"lengths": length_histogram(data), "popularity": popularity_curve(data), "top_share": top_share(data),
            "activity": activity(data), "sequences": sample_sequences(data)}


def remember_upload(widget_key: str, path_key: str) -> None:
    """on_change of a file uploader: store the file in the workspace once, and remember its path
    so that it is still there after a visit to another page (the uploader itself forgets)."""
    uploaded = st.session_state[widget_key]
    if uploaded is None:
        st.session_state.pop(path_key, None)
    else:
        st.session_state[path_key] = str(workspace().store_upload(uploaded.name, uploaded.getvalue()))


def report_table(report: list[dict]) -> pd.DataFrame:
    """Dataset.report as one row per step: rows, users and items before → after."""
    def change(before, after):
        return f"{after:,}" if before in (None, after) else f"{before:,} → {after:,}"

    rows = []
    for previous, step in zip([None, *report], report):
        notes = [step.get("note"), step.get("skipped_rows") and f"{step['skipped_rows']:,} malformed rows skipped",
                 step.get("timestamps") and f"timestamps read as {step['timestamps']}",
                 step.get("passes") and f"{step['passes']} passes"]
        counts = {key.title(): change(previous and previous[key], step[key]) for key in ("rows", "users", "items")}
        rows.append({"Step": step["step"], **counts, "Note": "; ".join(n for n in notes if n)})
    return pd.DataFrame(rows)


def length_chart(histogram: pd.DataFrame) -> alt.Chart:
    return alt.Chart(histogram).mark_rect(stroke="white", strokeWidth=0.5).encode(
        alt.X("start:Q", scale=alt.Scale(nice=False), title="sequence length"),
        alt.X2("end:Q"), alt.Y("users:Q", title="users"), alt.Y2(datum=0),
        tooltip=[alt.Tooltip("start:Q", title="from"), alt.Tooltip("end:Q", title="below"), "users:Q"],
    ).properties(height=260)


def popularity_chart(curve: pd.DataFrame) -> alt.Chart:
    return alt.Chart(curve).mark_line().encode(
        alt.X("rank:Q", scale=alt.Scale(type="log", nice=False), title="item rank by popularity (log scale)"),
        alt.Y("interactions:Q", scale=alt.Scale(type="log"), title="interactions (log scale)"),
        tooltip=["rank:Q", "interactions:Q", alt.Tooltip("share:Q", format=".1%", title="share up to this rank")],
    ).properties(height=260)


def activity_chart(per_period: pd.DataFrame, unit: str) -> alt.Chart:
    return alt.Chart(per_period).mark_bar().encode(
        alt.X("period:T", title=None), alt.Y("interactions:Q", title=f"interactions per {unit}"),
        tooltip=[alt.Tooltip("period:T", title=f"{unit} from"), alt.Tooltip("interactions:Q", format=",")],
    ).properties(height=220)


PRESET_LABELS = {"sasrec+": "SASRec+ (cross-entropy)", "paper": "Paper (BCE)", "demo": "Demo (fast, for the sample data)"}
LOSS_LABELS = {"ce": "Cross-entropy over all items", "bce": "BCE, one negative (paper)",
               "sampled-ce": "Sampled cross-entropy (huge catalogs)"}


def apply_preset() -> None:
    """on_change of the preset: put its settings into the training form."""
    for flag, value in train_settings(st.session_state["train_preset"]).items():
        st.session_state[f"train_{flag}"] = value


def when(epoch_seconds: float | None) -> str:
    """'2026-11-27 14:05' in the server's time zone."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch_seconds)) if epoch_seconds else "at an unknown time"


def duration(seconds: float | None) -> str:
    """'45 s', '3 min 05 s', '2 h 07 min'."""
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def loss_chart(progress: dict) -> alt.Chart:
    steps_per_epoch = max(progress.get("steps_per_epoch", 1), 1)
    curve = pd.DataFrame(progress.get("loss_curve") or [], columns=["step", "loss"])
    curve["epoch"] = curve["step"] / steps_per_epoch
    return alt.Chart(curve).mark_line().encode(
        alt.X("epoch:Q", title="epoch"), alt.Y("loss:Q", scale=alt.Scale(zero=False), title=None),
        tooltip=[alt.Tooltip("epoch:Q", format=".2f"), alt.Tooltip("loss:Q", format=".4f")],
    ).properties(height=240)


def validation_chart(metrics: list[dict]) -> alt.Chart:
    rows = [{"epoch": m["epoch"], "metric": name, "value": m[key]} for m in metrics
            for name, key in (("NDCG@10", "valid_ndcg@10"), ("HR@10", "valid_hr@10")) if key in m]
    return alt.Chart(pd.DataFrame(rows, columns=["epoch", "metric", "value"])).mark_line(point=True).encode(
        alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1)), alt.Y("value:Q", title=None),
        alt.Color("metric:N", legend=alt.Legend(orient="bottom-right", title=None)),
        tooltip=["epoch:Q", "metric:N", alt.Tooltip("value:Q", format=".4f")],
    ).properties(height=240)


def runs_table(summaries: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "name": s["name"], "dataset": s["dataset"], "status": s["state"],
        "best valid NDCG@10": s["best_valid_ndcg@10"], "test NDCG@10": s["test_ndcg@10"], "test HR@10": s["test_hr@10"],
        "duration": duration(s["duration_seconds"]), "device": s["device"], "started": when(s["started"]),
    } for s in summaries])


RUNS_COLUMNS = {column: st.column_config.NumberColumn(format="%.4f")
                for column in ("best valid NDCG@10", "test NDCG@10", "test HR@10")}


# Playground, Attention and Evaluate pages

ACCENT, HIGHLIGHT = "#5B4BDB", "#E4572E"
MODEL_COLORS = {"SASRec": ACCENT, "Markov": "#F2A541", "Most popular": "#9AA0A6"}


def choose_run(key: str) -> rundir.Run:
    """The model picker at the top of a page: picking a run makes it the active one. With
    no run at all the page ends here, pointing to the Train page."""
    runs = workspace().runs()
    if not runs:
        st.info("No model yet: train one on the Train page first.", icon=":material/info:")
        st.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")
        st.stop()
    names = [workspace().run_name(run) for run in runs]
    states = {name: run_state(run) for name, run in zip(names, runs)}
    if active_run_name() not in names:
        set_active_run(names[0])
    with st.container(horizontal=True, vertical_alignment="bottom"):
        name = st.selectbox("Model", names, index=names.index(active_run_name()), key=key, width=320,
                            format_func=lambda n: f"{n} · {states[n]}",
                            on_change=lambda: set_active_run(st.session_state[key]))
        run = workspace().run(name)
        st.caption(run_summary(run))
    return run


def run_summary(run: rundir.Run) -> str:
    config, status = run.config(), run.status()
    model, dataset = config.get("model", {}), config.get("dataset", {})
    parts = [f"trained on **{(config.get('data') or {}).get('name', '?')}**"]
    if dataset:
        parts.append(f"{dataset.get('items', 0):,} items")
    if model:
        parts.append(f"{model['num_blocks']} layers × {model['num_heads']} heads, d = {model['hidden']}, "
                     f"last {model['maxlen']} items")
    if status.get("state") == rundir.RUNNING:
        parts.append(f"training: epoch {len(run.metrics())} done, predictions use its latest checkpoint")
    elif status.get("best_epoch"):
        parts.append(f"best epoch {status['best_epoch']} of {status.get('epochs', '?')}")
    return " · ".join(parts)


def load_recommender(run: rundir.Run):
    """The run's model; if there is none (no checkpoint yet, a broken run), a readable error
    and the end of the page."""
    try:
        return recommender(run)
    except USER_ERRORS as err:
        error(err)
        st.stop()


def dataset_or_none(run: rundir.Run):
    """The run's training data, or None with an error when it has moved or changed: the
    features that need dataset users are then off, the rest works from the model's catalog."""
    try:
        return run_dataset(run)
    except USER_ERRORS as err:
        error(DataError(f"Dataset users are unavailable: {err}"))
        return None


def _versions(run: rundir.Run) -> tuple[float, float]:
    """Modification times of the run's checkpoints: a cache key that changes with any new weights."""
    return _mtime(run.path / "best.safetensors"), _mtime(run.path / "last.safetensors")


def short(title: str, width: int = 24) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"


# Dataset users

def find_users(dataset, query: str, limit: int = 8) -> pd.DataFrame:
    """Users whose id contains `query`, exact match first: user_id, items."""
    query = query.strip().lower()
    if not query:
        return pd.DataFrame({"user_id": [], "items": []})
    ids = pd.Series(dataset.user_ids).str.lower()
    found = np.flatnonzero(ids.str.contains(query, regex=False).to_numpy())
    found = found[np.argsort(ids.to_numpy()[found] != query, kind="stable")][:limit]
    return pd.DataFrame({"user_id": dataset.user_ids[found], "items": np.diff(dataset.offsets)[found]})


def random_user(dataset) -> str:
    eligible = np.flatnonzero(np.diff(dataset.offsets) >= 3)
    return str(dataset.user_ids[np.random.default_rng().choice(eligible)])


def user_history(dataset, user_id: str) -> tuple[list[str], str]:
    """A dataset user's items, oldest first, without the last one, which is held out as
    the true next item (the test split's target)."""
    items = [str(i) for i in dataset.item_ids[dataset.sequence(dataset.user_index(user_id))]]
    return items[:-1], items[-1]


def user_search(dataset, key: str, on_pick) -> None:
    """A type-ahead search over the dataset's user ids; picking a user calls on_pick(user_id)."""
    query = st.text_input("Find a dataset user", key=key, type="search", live=True,
                          placeholder=f"user id, e.g. {dataset.user_ids[0]}")
    found = find_users(dataset, query or "")
    if query and found.empty:
        st.caption(f"No user id contains “{query}”.")
    with st.container(horizontal=True):
        for row in found.itertuples():
            st.button(f"{row.user_id} · {row.items} items", key=f"{key}_{row.user_id}", icon=":material/person:",
                      type="tertiary", on_click=on_pick, args=(row.user_id,))


# Playground: editing the history (button callbacks, so the page renders the new state)

def playground_user() -> dict | None:
    """The dataset user the history started from: {"id", "target"}, or None."""
    return st.session_state.get("pg_user")


def playground_focus() -> int | None:
    """The history position (0-based) selected for moving or removing."""
    return st.session_state.get("pg_focus")


def start_history(items: list[str], user: str | None = None, target: str | None = None) -> None:
    set_history(items)
    st.session_state["pg_user"] = {"id": user, "target": target} if user else None
    st.session_state["pg_focus"] = None


def start_from_user(dataset, user_id: str) -> None:
    items, target = user_history(dataset, user_id)
    start_history(items, user_id, target)
    st.session_state["pg_user_popover"] = False  # close the picker: the history is what matters now


def example_history(recommender_) -> list[str] | None:
    """The bundled sample's demo history (two films of a genre, then a series' first
    episodes, so that the next episode should come first), if the model's catalog is the
    sample's; None otherwise."""
    catalog = recommender_.catalog
    if not {"kind", "series", "position"} <= set(catalog.columns):
        return None
    return synthetic.example_history(catalog)


def add_item(item_id: str) -> None:
    set_history(history() + [item_id])


def move_item(position: int, step: int) -> None:
    items = list(history())
    target = position + step
    if 0 <= position < len(items) and 0 <= target < len(items):
        items[position], items[target] = items[target], items[position]
        set_history(items)
        st.session_state["pg_focus"] = target


def remove_item(position: int) -> None:
    set_history(history()[:position] + history()[position + 1:])
    st.session_state["pg_focus"] = None


def keep_last(n: int) -> None:
    set_history(history()[-int(n):])
    st.session_state["pg_focus"] = None


def clear_history() -> None:
    start_history([])


def can_undo() -> bool:
    return bool(st.session_state.get("history_undo"))


def undo_history() -> None:
    set_history(st.session_state["history_undo"].pop(), remember_undo=False)
    st.session_state["pg_focus"] = None


# Playground: predictions

def titles(recommender_, item_ids) -> list[str]:
    """The titles of item ids; an id the model's catalog lacks stands for itself."""
    internal = recommender_.internal.reindex([str(i) for i in item_ids])
    return [recommender_.catalog.at[i, "title"] if pd.notna(i) else str(item) for i, item in zip(internal, item_ids)]


def drop_unknown(recommender_) -> None:
    unknown = set(recommender_.unknown(history()))
    set_history([item for item in history() if item not in unknown])


def what_if(run: rundir.Run, settings: tuple, item_ids: list[str]) -> list[str] | None:
    """The top-k item ids shown before the latest change (of the history, k, the settings or,
    while training, the weights), to measure rank moves against; None until there is one."""
    key = (str(run.path), _versions(run), tuple(history()), settings)
    state = st.session_state.setdefault("pg_what_if", {"key": None, "shown": None, "before": None})
    if state["key"] != key:
        state.update(key=key, before=state["shown"], shown=list(item_ids))
    return state["before"]


def _move_label(change: str) -> str:
    kind, _, steps = change.partition(" ")
    return {"new": "new", "same": "=", "up": f"▲ {steps}", "down": f"▼ {steps}"}[kind]


def prediction_table(items: pd.DataFrame, before: list[str] | None, target: str | None) -> pd.DataFrame:
    """The top-k as shown: rank, change since the last edit (if any), title, category,
    score, probability and, for a dataset user, whether it is the held-out next item."""
    table = items[["rank", "title", "category", "score", "probability"]].copy()
    if before is not None:
        table.insert(1, "change", [_move_label(c) for c in rank_changes(before, list(items["item_id"]))])
    if target is not None:
        table["held-out next"] = (items["item_id"] == target).to_numpy()
    return table


def show_predictions(table: pd.DataFrame) -> None:
    def colour(change):
        return f"color: {'#1E8E3E' if change[0] in '▲n' else '#D93025' if change[0] == '▼' else '#80868B'}"

    def mark_target(row):
        return ["background-color: #FFF3C4" if row.get("held-out next") else ""] * len(row)

    styled = table.style.apply(mark_target, axis=1)
    if "change" in table:
        styled = styled.map(colour, subset=["change"])
    st.dataframe(styled, hide_index=True, key="pg_predictions", column_config={
        "rank": st.column_config.NumberColumn("#", width=36),
        "change": st.column_config.TextColumn("Move", width=50,
                                              help="How the item's rank moved with the last edit"),
        "title": st.column_config.TextColumn("Title", width=150),
        "category": st.column_config.TextColumn("Category", width=80),
        "score": st.column_config.NumberColumn("Score", format="%.2f", width=48, help="The model's logit"),
        "probability": st.column_config.ProgressColumn("Probability", format="percent", min_value=0, max_value=1,
                                                       width=100, help="Softmax over every candidate item"),
        "held-out next": st.column_config.CheckboxColumn("Next?", width=50,
                                                         help="The item this user actually watched next"),
    })


# Attention: one history

def _labelled(table: pd.DataFrame, shown: pd.DataFrame, *columns: str) -> tuple[pd.DataFrame, list[str]]:
    """Axis labels "position. short title", unique even when an item repeats, for the
    position columns given; and all labels in history order, for sorting the axes.
    shown: Recommendation.history, the items the model saw."""
    labels = [f"{p}. {short(t)}" for p, t in zip(shown["position"], shown["title"])]
    lookup = np.array(labels, dtype=object)
    return table.assign(**{f"{c}_label": lookup[table[c].to_numpy() - 1] for c in columns}), labels


def _weight_colour(legend=True) -> alt.Color:
    # a square-root scale, so that the many small weights of a long history stay visible
    return alt.Color("weight:Q", title="weight", legend=alt.Legend() if legend else None,
                     scale=alt.Scale(scheme="purples", type="sqrt", domain=[0, 1]))


def _in_focus(focus: int | None, *fields: str) -> str:
    """A Vega expression: whether a mark belongs to the highlighted history position."""
    return " || ".join(f"datum.{f} == {int(focus)}" for f in fields) if focus is not None else "false"


def attention_heatmap(table: pd.DataFrame, shown: pd.DataFrame, focus: int | None) -> alt.FacetChart:
    """One layer's causal attention, one heatmap per head: rows attend to columns. Cells
    are selectable (selection "cell", fields query and key)."""
    data, labels = _labelled(table, shown, "query", "key")
    heads, T = table["head"].nunique(), len(shown)
    # square cells, as large as lets all heads fit side by side in the wide layout's ~1000 px
    cell = int(np.clip((880 - 30 * heads) / (heads * T), 7, 34))
    axis = {"labelLimit": 170, "labelFontSize": min(11, cell - 2), "labelOverlap": False, "labelFlush": False}
    highlighted = _in_focus(focus, "query", "key")
    chart = alt.Chart(data).mark_rect().encode(
        x=alt.X("key_label:O", sort=labels, title="attended item", axis=alt.Axis(labelAngle=-55, **axis)),
        y=alt.Y("query_label:O", sort=labels, title="attending item", axis=alt.Axis(**axis)),
        color=_weight_colour(),
        stroke=alt.condition(highlighted, alt.value(HIGHLIGHT), alt.value("white")),
        strokeWidth=alt.condition(highlighted, alt.value(1.2), alt.value(0.5)),
        tooltip=[alt.Tooltip("query_title:N", title="attending"), alt.Tooltip("query:Q", title="at position"),
                 alt.Tooltip("key_title:N", title="attends to"), alt.Tooltip("key:Q", title="at position "),
                 alt.Tooltip("weight:Q", format=".3f"), alt.Tooltip("head:Q")],
    ).properties(width=cell * T, height=cell * T).add_params(alt.selection_point(name="cell", fields=["query", "key"]))
    return chart.facet(column=alt.Column("head:O", title=None, header=alt.Header(labelExpr="'Head ' + datum.value",
                                                                                 labelFontSize=13)))


def model_view(table: pd.DataFrame, focus: int | None) -> alt.FacetChart:
    """Every layer and head at a glance, as small multiples (BertViz's model view)."""
    size = 120
    return alt.Chart(table).mark_rect().encode(
        x=alt.X("key:O", axis=None), y=alt.Y("query:O", axis=None),
        color=_weight_colour(legend=False),
        opacity=alt.condition(_in_focus(focus, "query", "key"), alt.value(1.0),
                              alt.value(1.0 if focus is None else 0.35)),
        tooltip=[alt.Tooltip("query_title:N", title="attending"), alt.Tooltip("key_title:N", title="attends to"),
                 alt.Tooltip("weight:Q", format=".3f"), "layer:Q", "head:Q"],
    ).properties(width=size, height=size).facet(
        row=alt.Row("layer:O", title=None, header=alt.Header(labelExpr="'Layer ' + datum.value", labelAngle=0,
                                                             labelAlign="left")),
        column=alt.Column("head:O", title=None, header=alt.Header(labelExpr="'Head ' + datum.value")),
        spacing=8)


def focus_bars(focus_table: pd.DataFrame, shown: pd.DataFrame, focus: int | None) -> alt.FacetChart:
    """The last position's attention per layer, and the rollout, over the history items.
    Bars are selectable (selection "item", field position)."""
    data, labels = _labelled(focus_table, shown, "position")
    views = list(dict.fromkeys(focus_table["view"]))
    return alt.Chart(data).mark_bar().encode(
        y=alt.Y("position_label:O", sort=labels, title=None, axis=alt.Axis(labelLimit=190, labelOverlap=False)),
        x=alt.X("weight:Q", title=None, axis=alt.Axis(format=".0%", tickCount=3)),
        color=alt.condition(_in_focus(focus, "position"), alt.value(HIGHLIGHT), alt.value(ACCENT)),
        tooltip=[alt.Tooltip("title:N"), alt.Tooltip("position:Q"), alt.Tooltip("view:N"),
                 alt.Tooltip("weight:Q", format=".1%")],
    ).properties(width=120, height=max(120, 17 * len(shown))).add_params(
        alt.selection_point(name="item", fields=["position"])
    ).facet(column=alt.Column("view:N", sort=views, title=None, header=alt.Header(labelFontSize=13))).resolve_scale(
        x="independent")


def pick_attention_user(user_id: str) -> None:
    st.session_state["att_user"] = user_id
    st.session_state["att_user_popover"] = False


def attention_user_history(dataset) -> list[str]:
    """The picked dataset user's history (without the held-out item), or [] before a pick."""
    user_id = st.session_state.get("att_user")
    if dataset is None or not user_id:
        return []
    return user_history(dataset, user_id)[0]


def attention_focus_picker(shown: pd.DataFrame) -> int | None:
    """The highlighted history position (1-based), which chart clicks also set."""
    positions = list(shown["position"])
    if st.session_state.get("att_focus") not in positions:
        st.session_state.pop("att_focus", None)
    titles_ = dict(zip(shown["position"], shown["title"]))
    return st.selectbox("Highlight an item", positions, index=None, key="att_focus", width=300,
                        placeholder="click a bar or a cell, or pick one",
                        format_func=lambda p: f"{p}. {titles_[p]}")


def svg_download(chart: alt.TopLevelMixin, file_name: str, key: str) -> None:
    """A button that saves `chart` as SVG, drawn only when clicked (the chart toolbar offers
    PNG). Needs the optional vl-convert-python package; without it there is no button."""
    if importlib.util.find_spec("vl_convert") is None:
        return

    def render() -> str:
        import vl_convert

        with alt.data_transformers.enable("default", max_rows=None):  # inline the data, however long
            return vl_convert.vegalite_to_svg(chart.to_json())

    st.download_button("SVG", render, file_name, "image/svg+xml", key=key, icon=":material/download:",
                       type="tertiary", on_click="ignore")


def focus_from_selection(chart_key: str, selection: str, field: str) -> None:
    """on_select callback: a clicked cell or bar highlights its history item everywhere."""
    points = st.session_state[chart_key]["selection"][selection]
    st.session_state["att_focus"] = int(points[0][field]) if points else None


# Attention: aggregates over validation users

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


def distance_chart(by_distance: pd.DataFrame, max_distance: int = 40) -> alt.LayerChart:
    near = by_distance[by_distance["distance"] <= max_distance]
    layers = near.assign(series="Layer " + near["layer"].astype(str))
    uniform = near[near["layer"] == 1].assign(series="Even spread", weight=lambda d: d["uniform"])
    data = pd.concat([layers, uniform])
    series = list(dict.fromkeys(data["series"]))
    palette = ["#5B4BDB", "#E4572E", "#2E9E8F", "#F2A541", "#8E44AD", "#3D7DD8"]
    colours = [palette[i % len(palette)] for i in range(len(series) - 1)] + ["#9AA0A6"]
    return alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=alt.X("distance:Q", title="items back from the attending position (0 = itself)"),
        y=alt.Y("weight:Q", title="mean attention weight", scale=alt.Scale(type="sqrt")),
        color=alt.Color("series:N", title=None, scale=alt.Scale(domain=series, range=colours)),
        strokeDash=alt.condition("datum.series == 'Even spread'", alt.value([4, 4]), alt.value([1, 0])),
        tooltip=["series:N", "distance:Q", alt.Tooltip("weight:Q", format=".4f"), alt.Tooltip("pairs:Q", format=",")],
    ).properties(height=300)


def category_heatmap(matrix: pd.DataFrame) -> alt.LayerChart:
    data = matrix.rename_axis(index="attending", columns="attended").stack().rename("weight").reset_index()
    base = alt.Chart(data).encode(
        x=alt.X("attended:N", title="category attended to", axis=alt.Axis(labelAngle=-45, labelOverlap=False)),
        y=alt.Y("attending:N", title="category of the attending item"))
    cells = base.mark_rect().encode(
        color=alt.Color("weight:Q", title="share", scale=alt.Scale(scheme="purples", domain=[0, 1])),
        tooltip=["attending:N", "attended:N", alt.Tooltip("weight:Q", format=".1%")])
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("weight:Q", format=".0%"),
        color=alt.condition("datum.weight > 0.5", alt.value("white"), alt.value("#1F1D2B")))
    size = max(240, 34 * len(matrix))
    return (cells + text).properties(width=size, height=size)


# Evaluate

@st.cache_data(max_entries=8, show_spinner="Evaluating on the test split, with the baselines…")
def _evaluation(run_dir: str, versions: tuple):
    return evaluate_run(run_dir)


def evaluation(run: rundir.Run):
    """evaluate_run for the run's best weights, cached until they change (needs the run's data)."""
    return _evaluation(str(run.path), _versions(run))


def metrics_tables(metrics: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(full-ranking table, sampled table): one row per model, columns HR@K, NDCG@K, MRR."""
    table = metrics_table(metrics)
    sampled = table.index.str.endswith("(sampled)")
    return table[~sampled], table[sampled].rename(index=lambda name: name.removesuffix(" (sampled)"))


def metrics_chart(full: pd.DataFrame, sampled: pd.DataFrame) -> alt.FacetChart:
    columns = list(full.columns)
    protocols = {"Full ranking": full, "Sampled (the true item against 100 random ones)": sampled}
    data = pd.concat([
        table.rename_axis("model").reset_index().melt(id_vars="model", var_name="metric").assign(protocol=protocol)
        for protocol, table in protocols.items()])
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("metric:N", sort=columns, title=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("model:N", sort=list(MODEL_COLORS)),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", title=None, scale=alt.Scale(domain=list(MODEL_COLORS),
                                                               range=list(MODEL_COLORS.values()))),
        tooltip=["model:N", "metric:N", alt.Tooltip("value:Q", format=".4f")],
    ).properties(width=820, height=200).facet(row=alt.Row("protocol:N", title=None, sort=list(protocols),
                                                          header=alt.Header(labelAngle=0, labelAlign="left",
                                                                            labelAnchor="start", labelOrient="top",
                                                                            labelFontSize=13)))


def breakdown_table(breakdown: pd.DataFrame, metric: str = "ndcg@10") -> pd.DataFrame:
    """One row per history-length group, one column per model."""
    table = breakdown.pivot(index=["group", "history", "users"], columns="model", values=metric)
    order = list(dict.fromkeys(breakdown["group"]))
    return table.reset_index().set_index("group").loc[order].reset_index()[
        ["group", "history", "users"] + [m for m in MODEL_COLORS if m in table.columns]]


def breakdown_chart(breakdown: pd.DataFrame, metric: str = "ndcg@10") -> alt.Chart:
    data = breakdown.assign(label=breakdown["group"] + " (" + breakdown["history"] + ")")
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("label:N", sort=list(dict.fromkeys(data["label"])), title=None,
                axis=alt.Axis(labelAngle=0, labelLimit=220, labelOverlap=False)),
        xOffset=alt.XOffset("model:N", sort=list(MODEL_COLORS)),
        y=alt.Y(f"{metric}:Q", title=metric.upper()),
        color=alt.Color("model:N", title=None, scale=alt.Scale(domain=list(MODEL_COLORS),
                                                               range=list(MODEL_COLORS.values()))),
        tooltip=["group:N", "history:N", "users:Q", "model:N", alt.Tooltip(f"{metric}:Q", format=".4f")],
    ).properties(height=260)


def umap_installed() -> bool:
    return importlib.util.find_spec("umap") is not None


@st.cache_data(max_entries=8, show_spinner="Projecting the item embeddings…")
def _embedding_points(run_dir: str, versions: tuple, method: str, _model, _catalog, _popularity):
    return analysis.embedding_map(_model, _catalog, _popularity, method)


def embedding_points(run: rundir.Run, dataset, method: str) -> pd.DataFrame:
    """The item embedding map of the run's model; popularity only when its data is available."""
    popularity = np.bincount(dataset.items, minlength=dataset.num_items + 1)[1:] if dataset is not None else None
    model = recommender(run)
    return _embedding_points(str(run.path), _versions(run), method, model.model, model.catalog, popularity)


def embedding_chart(points: pd.DataFrame, colour_by: str) -> alt.Chart:
    colour = (alt.Color("category:N", title="category", scale=alt.Scale(scheme="tableau10"))
              if colour_by == "category" else
              alt.Color("popularity:Q", title="interactions", scale=alt.Scale(type="log", scheme="viridis")))
    return alt.Chart(points).mark_circle(size=28, opacity=0.75).encode(
        x=alt.X("x:Q", axis=None), y=alt.Y("y:Q", axis=None), color=colour,
        tooltip=["title:N", "category:N", alt.Tooltip("popularity:Q", format=","), "item_id:N"],
    ).properties(height=460).interactive()


def run_comparison(runs: list[rundir.Run]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves: run, epoch, metric, value; summary: one row per run) for the runs given."""
    curves, rows = [], []
    for run in runs:
        name = workspace().run_name(run)
        for epoch in run.metrics():
            for metric in ("loss", "valid_ndcg@10"):
                if metric in epoch:
                    curves.append({"run": name, "epoch": epoch["epoch"], "metric": metric, "value": epoch[metric]})
        config, status, test = run.config(), run.status(), run.test_metrics() or {}
        model, train = config.get("model", {}), config.get("train", {})
        rows.append({
            "run": name, "state": status.get("state"), "epochs": len(run.metrics()),
            "best valid NDCG@10": status.get("best_valid_ndcg@10"),
            **{label: test.get(key) for label, key in (("NDCG@10", "ndcg@10"), ("HR@10", "hr@10"), ("MRR", "mrr"),
                                                       ("sampled NDCG@10", "sampled_ndcg@10"))},
            "loss": train.get("loss"), "layers": model.get("num_blocks"), "heads": model.get("num_heads"),
            "d": model.get("hidden"), "maxlen": model.get("maxlen"),
            "minutes": (status.get("elapsed_seconds") or 0) / 60,
        })
    return pd.DataFrame(curves, columns=["run", "epoch", "metric", "value"]), pd.DataFrame(rows)


def curves_chart(curves: pd.DataFrame) -> alt.FacetChart:
    return alt.Chart(curves).mark_line(point=alt.OverlayMarkDef(size=20)).encode(
        x=alt.X("epoch:Q"), y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("run:N", title=None),
        tooltip=["run:N", "epoch:Q", "metric:N", alt.Tooltip("value:Q", format=".4f")],
    ).properties(width=400, height=240).facet(column=alt.Column("metric:N", title=None)).resolve_scale(y="independent")
