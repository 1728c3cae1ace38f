"""What a browser session has active, and the Playground's history.

The pages share three things: the active dataset, the active run and the Playground
history. They live in st.session_state, and in the URL's query parameters so that a reload
or a shared link keeps them; a new visit without them opens on what the workspace used
last. Names from the URL are resolved by the workspace's registry, never used as paths.
"""

import json

import numpy as np
import pandas as pd
import streamlit as st

from .. import rundir, synthetic
from ..config import preset_values
from ..workspace import DEMO_NAME, SAMPLE_NAME, Workspace
from . import caches


@st.cache_resource
def workspace() -> Workspace:
    return Workspace()


def _shared(key: str, default):
    """A value shared by all pages: session state first, then the URL, then the default."""
    if key not in st.session_state:
        st.session_state[key] = st.query_params.get(key, default)
    return st.session_state[key]


def _share(key: str, value) -> None:
    st.session_state[key] = value
    st.query_params[key] = value
    workspace().remember(**{key: value})


def active_dataset_name() -> str:
    return active_dataset().name


def set_active_dataset(name: str) -> None:
    _share("dataset", name)


def active_dataset():
    """The active dataset: this session's, else the link's, else the one used last in this workspace."""
    ws = workspace()
    try:
        return ws.dataset(_shared("dataset", ws.recent().get("dataset") or SAMPLE_NAME))
    except rundir.RunError:  # deleted, or a name that was never there
        st.session_state["dataset"] = SAMPLE_NAME
        return ws.dataset(SAMPLE_NAME)


def active_run_name() -> str | None:
    run = active_run()
    return run.name if run else None


def set_active_run(name: str) -> None:
    _share("run", name)


def active_run() -> rundir.Run | None:
    """The active run: this session's, else the link's, else the one used last, else the newest."""
    ws = workspace()
    runs = ws.runs()
    if not runs:
        return None
    recent = ws.recent().get("run")
    fallback = recent if recent in {r.name for r in runs} else runs[0].name
    try:
        return ws.run(_shared("run", fallback))
    except rundir.RunError:  # deleted, or a name that was never there
        st.session_state["run"] = fallback
        return ws.run(fallback)


def history() -> list[str]:
    """The Playground's history of original item ids, oldest first. In the URL it is a JSON list,
    so that ids holding commas or any other separator come back as they were."""
    if "history" not in st.session_state:
        try:
            items = json.loads(st.query_params.get("history", "[]"))
        except json.JSONDecodeError:
            items = []
        st.session_state["history"] = [str(i) for i in items] if isinstance(items, list) else []
    return st.session_state["history"]


def set_history(items: list[str], remember_undo: bool = True) -> None:
    if remember_undo:
        st.session_state.setdefault("history_undo", []).append(list(history()))
    st.session_state["history"] = list(items)
    st.query_params["history"] = json.dumps(list(items))


def sync_query_params() -> None:
    """st.navigation starts each page with a clean URL; put the shared values back."""
    for key in ("dataset", "run"):
        if st.session_state.get(key):
            st.query_params[key] = st.session_state[key]
    if st.session_state.get("history"):
        st.query_params["history"] = json.dumps(st.session_state["history"])


def start_demo() -> None:
    """Activate the sample data, the demo model and an example history in which the
    planted patterns show: two horror films, then the first episodes of a horror series."""
    set_active_dataset(SAMPLE_NAME)
    set_active_run(DEMO_NAME)
    set_history(example_history(caches.recommender(workspace().run(DEMO_NAME))), remember_undo=False)


def remember_upload(widget_key: str, path_key: str) -> None:
    """on_change of a file uploader: store the file in the workspace once, and remember its path
    so that it is still there after a visit to another page (the uploader itself forgets)."""
    uploaded = st.session_state[widget_key]
    if uploaded is None:
        st.session_state.pop(path_key, None)
    else:
        st.session_state[path_key] = str(workspace().store_upload(uploaded.name, uploaded.getvalue()))


def apply_preset() -> None:
    """on_change of the preset: put its settings into the training form."""
    for name, value in preset_values(st.session_state["train_preset"]).items():
        st.session_state[f"train_{name}"] = value


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


def playground_user() -> dict | None:
    """The dataset user the history started from: {"id", "target"}, or None."""
    return st.session_state.get("pg_user")


def playground_focus() -> int | None:
    """The history position (0-based) selected for moving or removing."""
    return st.session_state.get("pg_focus")


def start_history(items: list[str], user: str | None = None, target: str | None = None) -> None:
    """A new history, not an edit: rank moves start again from it."""
    set_history(items)
    st.session_state["pg_user"] = {"id": user, "target": target} if user else None
    st.session_state["pg_focus"] = None
    st.session_state.pop("pg_what_if", None)


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


def drop_unknown(recommender_) -> None:
    unknown = set(recommender_.unknown(history()))
    set_history([item for item in history() if item not in unknown])


def what_if(run: rundir.Run, settings: tuple, item_ids: list[str]) -> list[str] | None:
    """The top-k item ids shown before the latest change (of the history, k, the settings or,
    while training, the weights), to measure rank moves against; None until there is one."""
    key = (str(run.path), caches._versions(run), tuple(history()), settings)
    shown = st.session_state.setdefault("pg_what_if", {"key": None, "shown": None, "before": None})
    if shown["key"] != key:
        shown.update(key=key, before=shown["shown"], shown=list(item_ids))
    return shown["before"]


def pick_attention_user(user_id: str) -> None:
    st.session_state["att_user"] = user_id
    st.session_state["att_user_popover"] = False


def attention_user_history(dataset) -> list[str]:
    """The picked dataset user's history (without the held-out item), or [] before a pick."""
    user_id = st.session_state.get("att_user")
    if dataset is None or not user_id:
        return []
    return user_history(dataset, user_id)[0]


def focus_from_selection(chart_key: str, selection: str, field: str) -> None:
    """on_select callback: a clicked cell or bar highlights its history item everywhere."""
    points = st.session_state[chart_key]["selection"][selection]
    st.session_state["att_focus"] = int(points[0][field]) if points else None
