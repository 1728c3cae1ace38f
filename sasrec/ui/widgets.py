"""Parts of pages: the page setup and sidebar, the model picker, searches, tables with
their column settings, and readable errors."""

import importlib.util
import runpy

import altair as alt
import pandas as pd
import streamlit as st

from .. import rundir
from ..config import form_fields, preset_values
from ..readers import DataError
from ..workspace import REPO, devices
from . import caches, charts, state


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
        st.markdown(f"**{state.active_dataset_name()}**")
        st.caption("Active model")
        run = state.active_run()
        if run is None:
            st.markdown("_none yet: train one on the Train page_")
        else:
            run_state = run.state()
            st.markdown(f"**{run.name}** :{charts.STATE_COLORS.get(run_state, 'gray')}-badge[{run_state}]")


def error(err: Exception) -> None:
    """A readable message for an error the user can act on."""
    st.error(str(err), icon=":material/error:")


# Errors a user can act on: pages show their message, never a traceback.
USER_ERRORS = (DataError, rundir.RunError, OSError)


PRESET_LABELS = {"auto": "Auto (chosen from the data)", "sasrec+": "SASRec+ (cross-entropy, maxlen 200)",
                 "paper": "Paper (BCE)", "demo": "Demo (fast, for the sample data)"}


AUTO = "auto (from the data)"
LABELS = {"ce": "Cross-entropy over all items", "bce": "BCE, one negative (paper)",
          "sampled-ce": "Sampled cross-entropy (large catalogs)"}


RUNS_COLUMNS = {column: st.column_config.NumberColumn(format="%.4f")
                for column in ("best valid NDCG@10", "test NDCG@10", "test HR@10")}


def settings_form(preset: str) -> dict:
    """The Train page's settings, one widget per setting declared with form=True (config.py),
    starting from the preset's values; an empty field means "chosen from the data". Returns
    the values by setting name."""
    for name, value in preset_values(preset).items():
        st.session_state.setdefault(f"train_{name}", value)
    choices = devices()
    values = {}
    columns = st.columns(2)
    for i, (_, f) in enumerate(form_fields()):
        meta, key, cell = f.metadata, f"train_{f.name}", columns[i % 2]
        if f.name == "device":
            values[f.name] = cell.selectbox(meta["label"], list(choices), format_func=choices.get, key=key,
                                            persist_state="session")
        elif meta["choices"]:
            options = list(meta["choices"]) if f.default is not None else [None, *meta["choices"]]
            values[f.name] = cell.selectbox(meta["label"], options, key=key, persist_state="session",
                                            format_func=lambda v: AUTO if v is None else LABELS.get(v, v),
                                            help=meta["help"])
        else:
            kind = meta["type"] or type(f.default)
            values[f.name] = cell.number_input(
                meta["label"], kind(meta["low"]), kind(meta["high"]), step=meta["step"] and kind(meta["step"]),
                key=key, persist_state="session", placeholder=AUTO, help=meta["help"],
                format="%.4f" if kind is float and meta["step"] and meta["step"] < 0.01 else None)
    return values


def choose_run(key: str) -> rundir.Run:
    """The model picker at the top of a page: picking a run makes it the active one. With
    no run at all the page ends here, pointing to the Train page."""
    runs = state.workspace().runs()
    if not runs:
        st.info("No model yet: train one on the Train page first.", icon=":material/info:")
        st.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")
        st.stop()
    names = [run.name for run in runs]
    states = {run.name: run.state() for run in runs}
    with st.container(horizontal=True, vertical_alignment="bottom"):
        name = st.selectbox("Model", names, index=names.index(state.active_run_name()), key=key, width=320,
                            format_func=lambda n: f"{n} · {states[n]}",
                            on_change=lambda: state.set_active_run(st.session_state[key]))
        run = state.workspace().run(name)
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
        return caches.recommender(run)
    except USER_ERRORS as err:
        error(err)
        st.stop()


def dataset_or_none(run: rundir.Run):
    """The run's training data, or None with an error when it has moved or changed: the
    features that need dataset users are then off, the rest works from the model's catalog."""
    try:
        return caches.run_dataset(run)
    except USER_ERRORS as err:
        error(DataError(f"Dataset users are unavailable: {err}"))
        return None


def user_search(dataset, key: str, on_pick) -> None:
    """A type-ahead search over the dataset's user ids; picking a user calls on_pick(user_id)."""
    query = st.text_input("Find a dataset user", key=key, type="search", live=True,
                          placeholder=f"user id, e.g. {dataset.user_ids[0]}")
    found = state.find_users(dataset, query or "")
    if query and found.empty:
        st.caption(f"No user id contains “{query}”.")
    with st.container(horizontal=True):
        for row in found.itertuples():
            st.button(f"{row.user_id} · {row.items} items", key=f"{key}_{row.user_id}", icon=":material/person:",
                      type="tertiary", on_click=on_pick, args=(row.user_id,))


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
