"""What a browser session has active, and the Playground's history.

The pages share three things: the active dataset, the active run and the Playground
history. They live in st.session_state, and in the URL's query parameters so that a reload
or a shared link keeps them; a new visit without them opens on what the workspace used
last. Names from the URL are resolved by the workspace's registry, never used as paths.
"""

import json

import numpy as np
import streamlit as st

from .. import access, rundir, schedule, training_queue
from ..config import PRESETS, preset_values
from ..workspace import DEMO_NAME, SAMPLE_NAME, Workspace, devices
from . import caches, charts, signin


@st.cache_resource
def shared_workspace() -> Workspace:
    """The server's workspace, acting for nobody who may change it: pages use workspace(). Made once
    per server: it sets the training queue's slots from the configuration, and starts the queue's
    runner again if runs wait and it is gone (as after a reboot)."""
    ws = Workspace(user=access.ANONYMOUS)
    training_queue.configure(ws.root, signin.training_slots())
    if training_queue.waiting(ws):
        training_queue.ensure_runner(ws.root)
    return ws


def workspace() -> Workspace:
    """The workspace, acting for this session's user as they are when each change is made."""
    return shared_workspace().acting_as(signin.acting_user)

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
    for key in ("dataset", "run", "k", "at", "compare", "off"):
        if st.session_state.get(key):
            st.query_params[key] = st.session_state[key]
    if st.session_state.get("history"):
        st.query_params["history"] = json.dumps(st.session_state["history"])


def start_demo() -> None:
    """Activate the sample data, the demo model and an example history in which the
    planted patterns show: two horror films, then the first episodes of a horror series."""
    set_active_dataset(SAMPLE_NAME)
    set_active_run(DEMO_NAME)
    demo = workspace().run(DEMO_NAME)
    set_history(example_history(demo, caches.recommender(demo)), remember_undo=False)


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
    apply_settings(preset_values(st.session_state["train_preset"]))
    st.session_state.pop("train_estimate", None)


def apply_settings(values: dict) -> None:
    """Put settings (by field name; None: chosen from the data) into the training form."""
    for name, value in values.items():
        st.session_state[f"train_{name}"] = value


def restore_train_form(run: rundir.Run | None) -> None:
    """A new session (a reload, a second tab) starts the Train page's form from the settings of
    the run it shows, not from the first preset."""
    if run is None or "train_preset" in st.session_state or workspace().is_builtin(run):
        return
    preset, values = run_form_settings(run)
    if preset is not None:
        st.session_state["train_preset"] = preset
        apply_settings(values)


def run_form_settings(run: rundir.Run) -> tuple[str | None, dict]:
    """(preset, form values) a run was started with: the preset the Train page recorded in its
    launch.json (else "auto"), and each form setting as given, None where it was chosen from the
    data. (None, {}) for a run without a readable config."""
    config = run.config()
    if not isinstance(config.get("model"), dict) or not isinstance(config.get("train"), dict):
        return None, {}
    preset = run.launch().get("preset")
    chosen = config.get("chosen") or {}
    given = config["model"] | config["train"]
    values = {name: None if name in chosen else given.get(name, default)
              for name, default in preset_values("auto").items()}
    if values.get("device") not in devices():  # trained on a device this machine lacks
        values.pop("device", None)
    return (preset if preset in PRESETS else "auto"), values


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


def start_history(items: list[str], user: str | None = None, target: str | None = None,
                  why: str | None = None) -> None:
    """A new history, not an edit: rank moves start again from it. why: the line on an example customer."""
    set_history(items)
    st.session_state["pg_user"] = {"id": user, "target": target, "why": why} if user else None
    st.session_state["pg_focus"] = None
    st.session_state.pop("pg_what_if", None)


def start_from_user(dataset, user_id: str) -> None:
    items, target = user_history(dataset, user_id)
    start_history(items, user_id, target)
    st.session_state["pg_user_popover"] = False  # close the picker: the history is what matters now


def start_example_customer(example: dict) -> None:
    """One of the run's example customers (insights.example_customers)."""
    start_history(list(example["history"]), example["user_id"], example["target"], f"{example['label']}: {example['why']}")


def example_history(run: rundir.Run, recommender_) -> list[str] | None:
    """The bundled sample's demo history (two films of a genre, then a series' first
    episodes, so that the next episode should come first), if the model's catalog is the
    sample's; None otherwise."""
    return caches.example_history(run, recommender_)


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


# Watching the model learn, a second model, and links that reproduce the Playground. Each is in
# the session and in the URL (k, at, compare), so that a link opens the same view in a new tab
# or after a server restart; names from the URL resolve through the workspace, checkpoints only
# among what the run lists.

def checkpoint_choices(run: rundir.Run) -> dict[str, str]:
    """The weights the run can be looked at with, by checkpoint name ("" = its current ones), in epoch order."""
    return charts.checkpoint_labels(run.snapshots(), run.metrics(), run.state() == rundir.RUNNING)


def _set_link(key: str, value: str) -> None:
    st.session_state[key] = value
    if value:
        st.query_params[key] = value
    else:
        st.query_params.pop(key, None)


def viewed_checkpoint(choices: dict[str, str]) -> str:
    """The epoch slider's checkpoint: this session's, else the link's; "" (the current weights) if not one of `choices`."""
    value = _shared("at", "")
    return value if value in choices else ""


def view_checkpoint(widget_key: str) -> None:
    """on_change of an epoch slider: every page shows the model at that checkpoint."""
    _set_link("at", st.session_state[widget_key])


def second_model() -> tuple[rundir.Run, str] | None:
    """(run, checkpoint) of the model shown beside the active one, or None. In the URL it is a JSON
    pair, ["run name", "epoch-0004"]; a name the workspace does not list, or a checkpoint the run
    does not have, is no second model."""
    try:
        name, which = json.loads(_shared("compare", "") or "null")
        run = workspace().run(str(name))
    except (TypeError, ValueError, rundir.RunError):
        return None
    return (run, which) if which in checkpoint_choices(run) else None


def second_model_options() -> dict[str, str]:
    """Every run at each of its checkpoints, as the second model picker offers them: JSON pair -> label."""
    options = {}
    for run in workspace().runs():
        for which, label in checkpoint_choices(run).items():
            options[json.dumps([run.name, which])] = f"{run.name} · {label}"
    return options


def set_second_model(widget_key: str) -> None:
    _set_link("compare", st.session_state[widget_key] or "")


def top_k(widget_key: str) -> None:
    """Start a Top-k input from this session, else the link (1 to 100, default 10); call before the widget."""
    if widget_key not in st.session_state:
        try:
            k = int(_shared("k", "10"))
        except ValueError:
            k = 10
        st.session_state[widget_key] = min(max(k, 1), 100)


def share_top_k(widget_key: str) -> None:
    _set_link("k", str(st.session_state[widget_key]))


def focus_history_item(chart_key: str, first_index: int, fragment: str) -> None:
    """on_select of the "why" chart: a clicked bar selects its item in the Playground's history
    (first_index: where the items the model read start in it), and the history redraws."""
    points = st.session_state[chart_key]["selection"]["item"]
    st.session_state["pg_focus"] = first_index + int(points[0]["position"]) - 1 if points else None
    for key in [key for key in st.session_state if str(key).startswith("pg_items_")]:
        st.session_state[key] = st.session_state["pg_focus"]  # the history's chips show it
    st.rerun(fragment)


def heads_off() -> list[tuple[int, int]]:
    """The attention heads switched off on the Playground, as 0-based (layer, head) pairs. In the
    URL ("off") a JSON list of 1-based [layer, head] pairs; anything else there is no head off.
    Pairs outside the model are dropped by the caller, which knows its shape."""
    try:
        pairs = json.loads(_shared("off", "") or "[]")
        return sorted({(int(layer) - 1, int(head) - 1) for layer, head in pairs})
    except (TypeError, ValueError):
        return []


def set_heads_off(pairs) -> None:
    _set_link("off", json.dumps(sorted([layer + 1, head + 1] for layer, head in pairs)) if pairs else "")


def switch_heads(widget_key: str, layer: int, num_heads: int) -> None:
    """on_change of a layer's head switches (pills of the heads that are on): the heads not picked are off."""
    on = set(st.session_state[widget_key] or [])
    others = [pair for pair in heads_off() if pair[0] != layer]
    set_heads_off(others + [(layer, head) for head in range(num_heads) if head not in on])


def usual_progress(dataset_name: str, loss: str, epochs: float) -> dict | None:
    """Where the workspace's finished runs on this dataset, with this loss, were after `epochs` epochs
    (schedule.usual_progress): what an estimate can say a budget's epochs usually give."""
    ws = workspace()
    try:
        used = set(ws.runs_using(ws.dataset(dataset_name)))
    except rundir.RunError:
        return None
    curves = [run.metrics() for run in ws.runs() if run.name in used and run.state() == rundir.FINISHED
              and (run.config().get("train") or {}).get("loss") == loss]
    return schedule.usual_progress(curves, epochs)
