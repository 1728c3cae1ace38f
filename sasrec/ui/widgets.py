"""Parts of pages: the page setup and sidebar, the model picker, searches, tables with
their column settings, and readable errors."""

import importlib.util
import json
import re
import runpy
import time

import altair as alt
import pandas as pd
import streamlit as st

from .. import analysis, counterfactual, insights, rundir
from ..config import form_fields, preset_values
from ..explain import removal_effects
from ..export import render_html
from ..readers import DataError
from ..workspace import REPO, devices
from . import caches, charts, signin, state


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
    """The active dataset and model, and who is signed in, on every page."""
    with st.sidebar:
        if signin.current_user() is None:  # nothing to show before signing in
            return
        signin.account()
        st.caption("Active dataset")
        st.markdown(f"**{state.active_dataset_name()}**")
        st.caption("Active model")
        run = state.active_run()
        if run is None:
            st.markdown("_none yet: train one on the Train page_")
        else:
            run_state = run.state()
            st.markdown(f"**{run.name}** :{charts.STATE_COLORS.get(run_state, 'gray')}-badge[{run_state}]")


# An absolute path in a message: /a/b/c (shown as its last part, c).
ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])(?:/[^\s/:'\"()\[\],;]+)+/([^\s/:'\"()\[\],;]*)")


def readable(message: str) -> str:
    """A message as a user sees it: no server paths, only the names at their ends."""
    return ABSOLUTE_PATH.sub(lambda m: m.group(1) or "/", message)


def error(err: Exception | str) -> None:
    """A readable message for an error the user can act on."""
    st.error(readable(str(err)), icon=":material/error:")


# Errors a user can act on: pages show their message, never a traceback.
USER_ERRORS = (DataError, rundir.RunError, OSError)


def guarded(action):
    """A widget callback that changes the workspace: its error (a viewer's refusal, say, when the
    page was drawn before a sign-in expired) is a message at the top of the page, not a traceback."""
    def callback(*args, **kwargs):
        try:
            action(*args, **kwargs)
        except USER_ERRORS as err:
            error(err)

    return callback


PRESET_LABELS = {"auto": "Auto (chosen from the data)", "sasrec+": "SASRec+ (cross-entropy, maxlen 200)",
                 "paper": "Paper (BCE)", "demo": "Demo (fast, for the sample data)"}


AUTO = "auto"  # chosen from the data: the fields are narrow, their help says so
LABELS = {"ce": "Full CE", "bce": "BCE", "sampled-ce": "Sampled CE"}  # cross-entropy; the help says which is which


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
                                            help=meta["help"], placeholder=AUTO)
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
        # While the run trains the summary follows it on its own (epochs done), without a rerun of the page.
        st.fragment(lambda: st.caption(run_summary(run)), key=f"{key}_summary",
                    run_every=LIVE_SECONDS if states[name] == rundir.RUNNING else None)()
    return run


LIVE_SECONDS = 5.0  # how often views of a training run refresh themselves


def run_summary(run: rundir.Run) -> str:
    config, status = run.config(), run.status()
    model, dataset = config.get("model", {}), config.get("dataset", {})
    parts = [f"trained on **{(config.get('data') or {}).get('name', '?')}**"]
    if dataset:
        parts.append(f"{dataset.get('items', 0):,} items")
    if {"num_blocks", "num_heads", "hidden", "maxlen"} <= set(model):
        parts.append(f"{model['num_blocks']} layers × {model['num_heads']} heads, d = {model['hidden']}"
                     + (f", last {model['maxlen']} items" if model["maxlen"] else ""))  # None until the trainer chose
    if status.get("state") == rundir.RUNNING:
        done, progress = len(run.metrics()), run.progress()
        left = f", ready in {charts.about(progress['eta_seconds'])}" \
            if progress.get("ends_by_budget") and progress.get("eta_seconds") else ""
        parts.append(f"training: epoch {done} done{left}, predictions use its latest checkpoint" if done
                     else "training: in its first epoch")
    elif status.get("best_epoch"):
        parts.append(f"best epoch {status['best_epoch']} of {status.get('epochs', '?')}")
    return " · ".join(parts)


def load_recommender(run: rundir.Run):
    """The run's model; if there is none (no checkpoint yet, a broken run), a readable message
    and the end of the page. A run in its first epoch says when its first checkpoint comes, a queued
    run that it waits for a slot, and the page opens by itself once the checkpoint is there."""
    try:
        return caches.recommender(run)
    except USER_ERRORS as err:
        if run.state() in (rundir.RUNNING, rundir.QUEUED) and not caches.has_checkpoint(run):
            wait_for_first_checkpoint(run)
        else:
            error(err)
        st.stop()


def wait_for_first_checkpoint(run: rundir.Run) -> None:
    @st.fragment(run_every=2.0)
    def waiting():
        state = run.state()
        if caches.has_checkpoint(run) or state not in (rundir.RUNNING, rundir.QUEUED):
            st.rerun()
        if state == rundir.QUEUED:
            st.info(f"**{run.name}** is waiting for a free training slot (its place is on the Train page), and "
                    "this page needs its weights: they come at the end of its first epoch. The page fills in by "
                    "itself then.", icon=":material/hourglass_top:")
            return
        st.info(f"**{run.name}** is still in its first epoch, and this page needs its weights: "
                f"{charts.first_checkpoint_eta(run.progress(), run.launch().get('estimate'))}. "
                "The page fills in by itself then.", icon=":material/hourglass_top:")

    waiting()


def dataset_or_none(run: rundir.Run):
    """The run's training data, or None with an error when it has moved or changed: the
    features that need dataset users are then off, the rest works from the model's catalog."""
    try:
        return caches.run_dataset(run)
    except USER_ERRORS as err:
        error(DataError(f"Dataset users are unavailable: {err}"))
        return None


def user_search(run: rundir.Run, dataset, key: str, on_pick) -> None:
    """A type-ahead search over the dataset's user ids, in a fragment of its own (typing reruns
    only it); picking a user calls on_pick(user_id)."""
    @st.fragment(key=f"{key}_fragment")
    def search():
        query = st.text_input("Find a dataset user", key=key, type="search", live=True,
                              placeholder=f"user id, e.g. {dataset.user_ids[0]}")
        found = caches.find_users(run, dataset, query or "")
        if query and found.empty:
            st.caption(f"No user id contains “{query}”.")
        with st.container(horizontal=True):
            for row in found.itertuples():
                st.button(f"{row.user_id} · {row.items} items", key=f"{key}_{row.user_id}", icon=":material/person:",
                          type="tertiary", on_click=on_pick, args=(row.user_id,))

    search()


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


def chart_downloads(chart: alt.TopLevelMixin, name: str, key: str) -> None:
    """Buttons that save `chart` as SVG and as PNG (twice the screen's resolution, for slides),
    each drawn only when clicked, by vl-convert-python, without a browser. Without that optional
    package there are no buttons."""
    if importlib.util.find_spec("vl_convert") is None:
        return

    def spec() -> str:
        with alt.data_transformers.enable("default", max_rows=None):  # inline the data, however long
            return chart.to_json()

    def svg() -> str:
        import vl_convert

        return vl_convert.vegalite_to_svg(spec())

    def png() -> bytes:
        import vl_convert

        return vl_convert.vegalite_to_png(spec(), scale=2)

    with st.container(horizontal=True, gap="small", key=f"{key}_downloads"):
        st.download_button("SVG", svg, f"{name}.svg", "image/svg+xml", key=f"{key}_svg", icon=":material/download:",
                           type="tertiary", on_click="ignore")
        st.download_button("PNG", png, f"{name}.png", "image/png", key=f"{key}_png", icon=":material/download:",
                           type="tertiary", on_click="ignore")


def chart(chart_: alt.TopLevelMixin, key: str, name: str, **kwargs):
    """st.altair_chart with SVG and PNG downloads under it (chart_downloads)."""
    shown = st.altair_chart(chart_, key=key, **kwargs)
    chart_downloads(chart_, name, key)
    return shown


# Why this prediction, a second model, watching the model learn, and the report to hand out

def epoch_slider(run: rundir.Run, key: str) -> str:
    """Which of the run's weights to look at: "" for its current ones, else a snapshot ("epoch-0004").
    A run without snapshots gets a note instead of a slider."""
    choices = state.checkpoint_choices(run)
    if len(choices) < 2:
        st.caption(f":material/timeline: **{run.name}** kept no snapshots of earlier epochs (a run trained before "
                   f"they existed, or still in its first epoch), so there is no learning to watch. Training keeps "
                   f"them at epochs 1, 2, 4, 8, … (at most {rundir.SNAPSHOT_BUDGET_BYTES // 2**20} MB per run).")
        return ""
    widget_key = f"{key}_{run.name}"
    return st.select_slider(
        "Watch it learn: the weights after", list(choices), value=state.viewed_checkpoint(choices),
        format_func=choices.get, key=widget_key, on_change=state.view_checkpoint, args=(widget_key,),
        help=f"Training keeps snapshots at epochs 1, 2, 4, 8, … (at most {rundir.SNAPSHOT_BUDGET_BYTES // 2**20} MB per "
             "run); while a run trains, those so far are here.")


def model_at(run: rundir.Run, which: str):
    """The run's model at `which` (epoch_slider); a readable error and the end of the page if it cannot load."""
    if not which:
        return load_recommender(run)
    try:
        return caches.recommender_at(run, which)
    except USER_ERRORS as err:
        error(err)
        st.stop()


def second_model_picker(key: str) -> tuple[rundir.Run, str] | None:
    """Pick a second model to show beside the first: another run, or this one at an earlier epoch."""
    options = state.second_model_options()
    current = state.second_model()
    value = json.dumps([current[0].name, current[1]]) if current else ""
    st.selectbox("Compare with", ["", *options], index=([""] + list(options)).index(value) if value in options else 0,
                 format_func=lambda v: options.get(v, "no second model"), key=key, width=260,
                 on_change=state.set_second_model, args=(key,),
                 help="Show a second model beside this one, on the same history: another run, or this run at an "
                      "earlier epoch")
    return state.second_model()


def model_label(run: rundir.Run, which: str) -> str:
    return f"{run.name} · {state.checkpoint_choices(run).get(which, which)}"


def side_by_side(first_label: str, first, second_model: tuple[rundir.Run, str], history, k: int, exclude: bool):
    """Two models' predictions for one history, side by side, the items that differ marked, and a
    line on how much the two top-k lists share. second_model: (run, checkpoint). Returns (its
    label, its Recommendation), or None with a readable error when it cannot read this history."""
    second_label = model_label(*second_model)
    try:
        second = caches.recommender_at(*second_model).recommend(history, k=k, exclude_history=exclude)
    except USER_ERRORS as err:
        error(DataError(f"{second_label} cannot show this history: {err}"))
        return None
    first_table, second_table, shared = charts.side_by_side(first.items, second.items)
    st.markdown(charts.overlap_sentence(shared, first.items, second.items))

    def mark_differing(row):
        return ["background-color: #FCE8E6" if row["other rank"] == charts.NOT_IN_OTHER else ""] * len(row)

    for column, label, table, other, key in zip(st.columns(2), (first_label, second_label), (first_table, second_table),
                                                (second_label, first_label), ("pg_first", "pg_second")):
        with column:
            st.markdown(f"**{label}**")
            st.dataframe(table.style.apply(mark_differing, axis=1), hide_index=True, key=key, column_config={
                "rank": st.column_config.NumberColumn("#", width=28),
                "title": st.column_config.TextColumn("Title", width=118),
                "probability": st.column_config.NumberColumn("Prob.", format="percent", width=58),
                "other rank": st.column_config.TextColumn("Other", width=44, help=f"Its rank for {other}; – (and the "
                                                          "row marked) when not in its top k")})
    return second_label, second


def why_prediction(model, history: list[str], result, exclude: bool, key: str, fragment: str):
    """"Why this prediction?": the removal effect of each history item on a predicted item (the
    top one first), as bars; with "Gradients" on, beside its integrated gradients and the last
    layer's attention. Clicking a bar selects that item in the history (rerunning `fragment`).
    Returns the explain.Explanation shown."""
    ids = list(result.items["item_id"])
    labels = dict(zip(ids, (f"{rank}. {title}" for rank, title in zip(result.items["rank"], result.items["title"]))))
    # The item picked stays explained while it is in the top k; until one is picked, the top one is. The
    # widget is new for every new top k, so that what it shows and what it holds never part.
    picked = st.session_state.get(f"{key}_item")
    widget_key = f"{key}_target_{hash(tuple(ids))}"
    with st.container(horizontal=True, vertical_alignment="bottom"):
        target = st.selectbox("Why this prediction?", ids, index=ids.index(picked) if picked in ids else 0,
                              format_func=labels.get, key=widget_key, width=360,
                              on_change=lambda: st.session_state.update({f"{key}_item": st.session_state[widget_key]}),
                              help="Each item of the history is removed in turn, and the history scored again")
        # Off by default: the gradients' batch costs more than the removals', and every edit pays for what is shown.
        gradients = st.toggle("Gradients", key=f"{key}_gradients",
                              help="Integrated gradients of the prediction's score on each item's embedding, beside "
                                   "the removal effect and the last layer's attention")
    explanation = removal_effects(model, history, target, exclude, gradients=gradients)
    first = len(history) - len(explanation.effects)  # where the items the model read start in the history
    focus = state.playground_focus()
    focus = None if focus is None or focus < first else focus - first + 1
    st.markdown(charts.why_sentence(explanation.target, explanation.effects))
    if gradients:
        views = analysis.prediction_focus(result.history, result.attention)
        last_layer = views[views["view"] == f"Layer {result.attention.shape[0]}"].assign(view="Attention, last layer")
        why = charts.focus_and_effect_bars(last_layer, explanation.effects, result.history, focus, panel_width=120)
    else:
        why = charts.why_chart(explanation.effects, focus)
    chart(why, f"{key}_chart", "why", on_select=lambda: state.focus_history_item(f"{key}_chart", first, fragment))
    st.caption(f"Each bar: the probability **{charts.short(explanation.target['title'], 40)}** loses when that item is "
               f"removed (grey: it gains). All {len(explanation.effects)} removals in one batch"
               f"{', the gradients in another' if gradients else ''}, {explanation.seconds * 1000:.0f} ms. Click a bar "
               "to select its item in the history.")
    if gradients:
        st.caption(charts.gradient_sentence(explanation.target, explanation.effects))
    return explanation


def counterfactual_section(run: rundir.Run, model, history: list[str], k: int, exclude: bool, context: tuple,
                           key: str, fragment: str) -> object:
    """"What would change it?": the fewest edits that put another item first, or that bring a chosen
    item into the top k (counterfactual.search, on a click), the history and its edited version side
    by side, and a button that loads the edited one (rerunning `fragment`, which shows the history).
    context: what else the result depends on (the checkpoint, the heads off). Returns the
    counterfactual.Counterfactual shown, or None."""
    st.markdown("**What would change it?**")
    with st.container(horizontal=True, vertical_alignment="bottom"):
        # a select box, not a segmented control: the history's chips are the page's only radio buttons
        goal = st.selectbox("Find the fewest edits that", ["flip", "bring"], key=f"{key}_goal", width=250,
                            format_func={"flip": "put another item first",
                                         "bring": f"bring an item into the top {k}"}.get)
        target = None
        if goal == "bring":
            query = st.text_input("Item", key=f"{key}_query", type="search", width=170,
                                  placeholder="search, or pick below")
            if query:
                candidates = caches.search_catalog(run, model, query, limit=30)
            else:  # the items just outside the top k: the ones a small change is most likely to bring in
                candidates = model.recommend(history, k=k + 30, exclude_history=exclude).items.iloc[k:]
            options = dict(zip(candidates["item_id"], candidates["title"]))
            target = st.selectbox("Bring in", list(options), format_func=options.get, key=f"{key}_target", width=240,
                                  index=None, placeholder="pick an item")
        search = st.button("Search", key=f"{key}_search", icon=":material/manage_search:",
                           disabled=goal == "bring" and target is None)
    signature = (tuple(history), goal, target, k, exclude, context)
    if search:
        try:
            with st.spinner("Trying removals, replacements and moves…"):
                found = counterfactual.search(model, history, goal, target, k, exclude)
        except USER_ERRORS as err:
            error(err)
            return None
        st.session_state[f"{key}_result"] = (signature, found)
    kept = st.session_state.get(f"{key}_result")
    if kept is None or kept[0] != signature:
        st.caption("Removals, replacements by similar items (nearest in the model's item space) and moves to the end, "
                   f"at most {counterfactual.MAX_EDITS} edits; each step's edited histories are scored in one batch.")
        return None
    found = kept[1]
    st.markdown(charts.counterfactual_sentence(found, k))
    if len(found.edits):
        columns = st.container(key=f"{key}_histories").columns(2)
        for column, label, table, key_ in zip(columns, ("As it is", "Edited"), (found.original, found.edited),
                                              (f"{key}_original", f"{key}_edited")):
            with column:
                st.markdown(f"**{label}**")
                st.dataframe(table[["position", "title", "change"]].style.apply(
                    lambda row: ["background-color: #FFF3C4" if row["change"] else ""] * len(row), axis=1),
                    hide_index=True, key=key_, height=min(400, 38 + 35 * len(table)),
                    column_config={"position": st.column_config.NumberColumn("#", width=30),
                                   "title": st.column_config.TextColumn("Title", width=170),
                                   "change": st.column_config.TextColumn("Edit", width=70)})
        def load() -> None:
            state.set_history(found.edited_ids)
            st.rerun(fragment)  # the history is shown outside this fragment

        st.button("Load the edited history", key=f"{key}_load", icon=":material/input:", on_click=load,
                  help="Make the edited history the Playground's (Undo brings this one back)")
    st.caption(f"{found.candidates:,} edited histories scored in {found.seconds:.2f} s.")
    return found


def describe_model(run: rundir.Run, which: str) -> str:
    """'demo at best: epoch 9 · 2 layers × 2 heads, d = 64, last 50 items · trained on sample (3,000 users, 2,106 items)'"""
    config = run.config()
    model, data, dataset = config.get("model") or {}, config.get("data") or {}, config.get("dataset") or {}
    parts = [f"Model {model_label(run, which)}"]
    if {"num_blocks", "num_heads", "hidden", "maxlen"} <= set(model):
        parts.append(f"{model.get('num_blocks')} layers × {model.get('num_heads')} heads, d = {model.get('hidden')}, "
                     f"last {model.get('maxlen')} items")
    trained = f"trained on {data.get('name') or '?'}"
    if dataset:
        trained += f" ({dataset.get('users', 0):,} users, {dataset.get('items', 0):,} items)"
    return " · ".join(parts + [trained])


def report_download(run: rundir.Run, which: str, history: list[str], result, explanation, second, key: str,
                    model=None, exclude: bool = True, heads_off=(), found=None, k: int = 10) -> None:
    """A button that saves the report to hand out (export.py), built only when clicked. second:
    (label, Recommendation) of the second model, or None; model: the one explained, whose
    integrated gradients the report adds if the page did not show them; heads_off: the heads
    switched off; found: the counterfactual shown, or None."""
    def render() -> str:
        explained = explanation
        if model is not None and "gradient" not in explanation.effects:
            explained = removal_effects(model, history, explanation.target["item_id"], exclude, gradients=True)
        sections = charts.report_sections(model_name=model_label(run, which), history_length=len(history), result=result,
                                          explanation=explained, metrics=run.test_metrics(), second=second,
                                          heads_off=heads_off, counterfactual=found, k=k)
        return render_html(f"Why {run.name} predicts {explanation.target['title']}", describe_model(run, which),
                           sections, f"Made with SASRec Explorer on {charts.when(time.time())}.")

    st.download_button("Report (HTML)", render, f"sasrec-{run.name}-report.html", "text/html", key=key,
                       icon=":material/download:", on_click="ignore",
                       help="One self-contained file to hand out: the history, the predictions, why (removal effects "
                            "and gradients), the attention maps, the heads switched off and the smallest change found, "
                            "if any, and the run's test metrics against the baselines. It opens in any browser, offline.")


def attention_side_by_side(first_label: str, first, first_explanation, second_model: tuple[rundir.Run, str],
                           history: list[str], focus: int | None) -> None:
    """The Attention page's two models on one history: for each, what it predicts, what its
    prediction looks at (attention, rollout, removal effect) and the model view."""
    second_label = model_label(*second_model)
    st.header(f"Beside {second_label}")
    try:
        model = caches.recommender_at(*second_model)
        second = model.recommend(history, k=len(first.items))
        second_explanation = removal_effects(model, history, gradients=True)
    except USER_ERRORS as err:
        error(DataError(f"{second_label} cannot show this history: {err}"))
        return
    st.markdown(charts.overlap_sentence(charts.side_by_side(first.items, second.items)[2], first.items, second.items))
    for column, label, result, explanation, key in zip(
            st.columns(2, gap="large"), (first_label, second_label), (first, second),
            (first_explanation, second_explanation), ("att_first", "att_second")):
        with column:
            st.subheader(label)
            top = result.items.iloc[0]
            st.markdown(f"Predicted next: **{top['title']}** ({top['probability']:.0%})")
            focus_table = analysis.prediction_focus(result.history, result.attention)
            chart(charts.focus_and_effect_bars(focus_table, explanation.effects, result.history, focus, panel_width=60),
                  f"{key}_bars", f"prediction_focus_{key}",
                  on_select=lambda key=key: state.focus_from_selection(f"{key}_bars", "item", "position"))
            chart(charts.model_view(analysis.attention_table(result.history, result.attention), focus), f"{key}_view",
                  f"model_view_{key}")


def effects_table(model, history: list[str], key: str) -> None:
    """The removal effects as a table, with the effect of replacing each item by its most similar
    other item instead; computed only while the expander is open."""
    with st.expander("Removal and replacement effects, as a table", key=key, on_change="rerun") as opened:
        if not opened.open:
            return
        effects = removal_effects(model, history, replace=True).effects
        st.caption("For each item: how the top prediction's probability and rank change when the item is removed, "
                   "and when it is replaced by the item whose embedding is most like it (never one of the history).")
        st.dataframe(effects[["position", "title", "probability_change", "rank_change", "top_title", "replacement_title",
                              "replacement_probability_change", "replacement_rank_change"]].assign(
            probability_change=effects["probability_change"] * 100,
            replacement_probability_change=effects["replacement_probability_change"] * 100),
            hide_index=True, key=f"{key}_table", column_config={
                "probability_change": st.column_config.NumberColumn("removed: probability", format="%+.2f pts"),
                "rank_change": st.column_config.NumberColumn("removed: rank", format="%+d"),
                "top_title": "removed: first",
                "replacement_title": "replaced by",
                "replacement_probability_change": st.column_config.NumberColumn("replaced: probability",
                                                                                format="%+.2f pts"),
                "replacement_rank_change": st.column_config.NumberColumn("replaced: rank", format="%+d")})


def when_ready(key: str, compute, waiting: str, show) -> None:
    """A section whose result is computed in the background: `compute()` is None until it is
    ready. Until then the section says `waiting` and looks again every second; then it shows the
    result with `show(result)` and stops polling."""
    def section(polling: bool) -> None:
        found = compute()
        if found is None:
            st.caption(f":material/hourglass_top: {waiting}")
            return
        if polling:  # ready now: once more without polling
            st.rerun()
        show(found)

    polling = compute() is None
    st.fragment(section, key=key, run_every=1.0 if polling else None)(polling)


def agreement_section(run: rundir.Run, dataset) -> None:
    """How often attention points to the item whose removal matters most, over validation users, and
    how often attention, removal and gradient name the same item (caches.attention_agreement: stored
    by the run, else computed in the background)."""
    def show(agreement: dict) -> None:
        st.caption(f"In each of {agreement['users']} validation histories, every item was removed in turn to find the "
                   "one whose removal lowers the top prediction's probability most. How often is it the item each "
                   "of these points to?")
        table = charts.agreement_table(agreement)
        for column, row in zip(st.columns(len(table)), table.itertuples()):
            column.metric(row.signal, f"{row.agreement:.0%}")
        three_way = charts.three_way_table(agreement)
        if three_way is not None:
            st.markdown("**Attention, removal and gradient: how often two name the same item**")
            left, right = st.container(key="att_three_way").columns([1.2, 1], gap="large")
            with left:
                st.dataframe(three_way.map(lambda share: f"{share:.0%}"), key="att_three_way_table")
            right.caption(f"For each history, each method names the item the top prediction rests on most: the largest "
                          f"last-layer attention, the largest removal effect, the largest integrated gradient. All three "
                          f"agree for **{agreement['agreement']['all']:.0%}** of the users; an item drawn at random would "
                          f"match another method's for {agreement['rates']['chance']:.0%}. Where they agree the story is "
                          "solid; where they do not, attention shows where the model looks, not what it uses.")

    when_ready("att_agreement", lambda: caches.attention_agreement(run, dataset),
               f"Removing each item of {insights.AGREEMENT_USERS} validation histories in turn and integrating "
               "gradients; the figures appear here when that is done.", show)


def head_switches(config, key: str) -> list[tuple[int, int]]:
    """The attention heads as a grid of switches, one row of pills per layer: a head picked is on;
    a layer with none picked is off. Returns the heads off, 0-based (layer, head) pairs, as the
    session (and its link) holds them."""
    off = [(layer, head) for layer, head in state.heads_off()
           if 0 <= layer < config.num_blocks and 0 <= head < config.num_heads]
    with st.container(horizontal=True, vertical_alignment="bottom", key=f"{key}_grid"):
        for layer in range(config.num_blocks):
            widget_key = f"{key}_{layer}"
            st.session_state[widget_key] = [head for head in range(config.num_heads) if (layer, head) not in off]
            st.pills(f"Layer {layer + 1} heads", list(range(config.num_heads)), selection_mode="multi",
                     format_func=lambda head: f"H{head + 1}", key=widget_key, on_change=state.switch_heads,
                     args=(widget_key, layer, config.num_heads),
                     help="Switch a head off to see the predictions without it; all of a layer's heads off is the "
                          "layer off")
        st.button("All on", key=f"{key}_reset", icon=":material/restart_alt:", type="tertiary", disabled=not off,
                  on_click=state.set_heads_off, args=([],))
    return off


ICONS = {"typical": ":material/person:", "loyal": ":material/favorite:", "explorer": ":material/explore:",
         "short": ":material/fiber_new:", "beats_markov": ":material/trending_up:"}


def example_customers(run: rundir.Run, key: str, on_pick) -> None:
    """One-click starts from the run's example customers (insights.example_customers), each with its
    line on why it is worth showing (on hover, and under the history once picked); picking one
    calls on_pick(example)."""
    def show(found: dict) -> None:
        if "unavailable" in found:
            st.caption(f"No example customers: {readable(found['unavailable'])}")
            return
        with st.container(horizontal=True, vertical_alignment="center"):
            st.caption("Example customers", width="content")
            for example in found["examples"]:
                st.button(example["label"], key=f"{key}_{example['kind']}", icon=ICONS.get(example["kind"]),
                          help=example["why"], on_click=on_pick, args=(example,))

    when_ready(key, lambda: caches.run_insights(run), "Picking example customers from the data…", show)


def head_importance_section(run: rundir.Run) -> None:
    """The drop in validation NDCG@10 with each head, and each layer, switched off (stored by the run)."""
    def show(found: dict) -> None:
        if "unavailable" in found:
            st.caption(f"No head importance: {readable(found['unavailable'])}")
            return
        importance = found["head_importance"]
        st.caption(f"Validation NDCG@10 of {importance['users']:,} sampled users is {importance['ndcg@10']:.4f} with "
                   "every head on. Each cell: the share of it lost when that head, or the whole layer, is switched off "
                   "(negative: the model does better without it). Try it on one history on the Playground.")
        with st.container(key="att_head_importance"):
            chart(charts.head_importance_chart(importance), "att_head_importance_chart", "head_importance")

    when_ready("att_head_importance_section", lambda: caches.run_insights(run),
               "Scoring the validation users with each head switched off; the chart appears here when that is done.",
               show)
