"""Shared helpers for the Streamlit pages: the workspace, what is active, cached loaders.

The pages share three things: the active dataset, the active run and the Playground
history. They live in st.session_state, and in the URL's query parameters so that a
reload keeps them. Everything else is read back from the workspace on disk.
"""

from pathlib import Path

import streamlit as st

from . import rundir
from .data import DataError
from .inference import Recommender, load_run_dataset
from .workspace import SAMPLE_NAME, Workspace

STATE_COLORS = {"running": "blue", "finished": "green", "stopped": "orange", "failed": "red"}


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
            state = run.status().get("state", "unknown")
            name = workspace().run_name(run)
            st.markdown(f"**{name}** :{STATE_COLORS.get(state, 'gray')}-badge[{state}]")


def error(err: Exception) -> None:
    """A readable message for an error the user can act on."""
    st.error(str(err), icon=":material/error:")


# Errors a user can act on: pages show their message, never a traceback.
USER_ERRORS = (DataError, rundir.RunError, FileNotFoundError)


# Data and Train pages


# Playground, Attention and Evaluate pages
