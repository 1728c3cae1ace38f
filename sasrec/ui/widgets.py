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

from .. import analysis, rundir
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
    and the end of the page. A run in its first epoch says when its first checkpoint comes, and
    the page opens by itself once it is there."""
    try:
        return caches.recommender(run)
    except USER_ERRORS as err:
        if run.state() == rundir.RUNNING and not caches.has_checkpoint(run):
            wait_for_first_checkpoint(run)
        else:
            error(err)
        st.stop()


def wait_for_first_checkpoint(run: rundir.Run) -> None:
    @st.fragment(run_every=2.0)
    def waiting():
        if caches.has_checkpoint(run) or run.state() != rundir.RUNNING:
            st.rerun()
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
    top one first), as bars; clicking a bar selects that item in the history (rerunning
    `fragment`). Returns the explain.Explanation shown."""
    ids = list(result.items["item_id"])
    labels = dict(zip(ids, (f"{rank}. {title}" for rank, title in zip(result.items["rank"], result.items["title"]))))
    # The item picked stays explained while it is in the top k; until one is picked, the top one is. The
    # widget is new for every new top k, so that what it shows and what it holds never part.
    picked = st.session_state.get(f"{key}_item")
    widget_key = f"{key}_target_{hash(tuple(ids))}"
    target = st.selectbox("Why this prediction?", ids, index=ids.index(picked) if picked in ids else 0,
                          format_func=labels.get, key=widget_key, width=360,
                          on_change=lambda: st.session_state.update({f"{key}_item": st.session_state[widget_key]}),
                          help="Each item of the history is removed in turn, and the history scored again")
    explanation = removal_effects(model, history, target, exclude)
    first = len(history) - len(explanation.effects)  # where the items the model read start in the history
    focus = state.playground_focus()
    st.markdown(charts.why_sentence(explanation.target, explanation.effects))
    st.altair_chart(charts.why_chart(explanation.effects, None if focus is None or focus < first else focus - first + 1),
                    key=f"{key}_chart", on_select=lambda: state.focus_history_item(f"{key}_chart", first, fragment))
    st.caption(f"Each bar: the probability **{charts.short(explanation.target['title'], 40)}** loses when that item is "
               f"removed (grey: it gains). All {len(explanation.effects)} removals in one batch, "
               f"{explanation.seconds * 1000:.0f} ms. Click a bar to select its item in the history.")
    return explanation


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


def report_download(run: rundir.Run, which: str, history: list[str], result, explanation, second, key: str) -> None:
    """A button that saves the report to hand out (export.py), built only when clicked. second:
    (label, Recommendation) of the second model, or None."""
    def render() -> str:
        sections = charts.report_sections(model_name=model_label(run, which), history_length=len(history), result=result,
                                          explanation=explanation, metrics=run.test_metrics(), second=second)
        return render_html(f"Why {run.name} predicts {explanation.target['title']}", describe_model(run, which),
                           sections, f"Made with SASRec Explorer on {charts.when(time.time())}.")

    st.download_button("Report (HTML)", render, f"sasrec-{run.name}-report.html", "text/html", key=key,
                       icon=":material/download:", on_click="ignore",
                       help="One self-contained file to hand out: the history, the predictions, why, the attention "
                            "maps and the run's test metrics against the baselines. It opens in any browser, offline.")


def attention_side_by_side(first_label: str, first, first_explanation, second_model: tuple[rundir.Run, str],
                           history: list[str], focus: int | None) -> None:
    """The Attention page's two models on one history: for each, what it predicts, what its
    prediction looks at (attention, rollout, removal effect) and the model view."""
    second_label = model_label(*second_model)
    st.header(f"Beside {second_label}")
    try:
        model = caches.recommender_at(*second_model)
        second = model.recommend(history, k=len(first.items))
        second_explanation = removal_effects(model, history)
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
            st.altair_chart(charts.focus_and_effect_bars(focus_table, explanation.effects, result.history, focus,
                                                         panel_width=70), key=f"{key}_bars",
                            on_select=lambda key=key: state.focus_from_selection(f"{key}_bars", "item", "position"))
            st.altair_chart(charts.model_view(analysis.attention_table(result.history, result.attention), focus),
                            key=f"{key}_view")


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
    """How often attention points to the item whose removal matters most, over validation users
    (caches.attention_agreement, computed in the background)."""
    def show(agreement: dict) -> None:
        st.caption(f"In each of {agreement['users']} validation histories, every item was removed in turn to find the "
                   "one whose removal lowers the top prediction's probability most. How often is it the item each "
                   "of these points to (for the run's current weights)?")
        for column, row in zip(st.columns(len(agreement["rates"])), charts.agreement_table(agreement).itertuples()):
            column.metric(row.signal, f"{row.agreement:.0%}")

    when_ready("att_agreement", lambda: caches.attention_agreement(run, dataset),
               "Removing each item of 300 validation histories in turn; the figures appear here when that is done.", show)
