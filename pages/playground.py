"""Playground: edit a viewing history and watch the next-item predictions follow every edit.

The history and the predictions are one fragment: an edit reruns them, not the page around
them. Typing in a search reruns only that search; while the run trains, only the
predictions refresh on their own."""

import streamlit as st

from sasrec import rundir
from sasrec.ui import caches, charts, state, widgets

widgets.page_setup()

MAIN = "pg_main"  # the fragment an edit reruns

st.title("Playground")
run = widgets.choose_run("pg_run")
recommender = widgets.load_recommender(run)
training = run.state() == rundir.RUNNING


def then_show(edit):
    """A callback for a widget in a nested fragment (a search result): make the edit, then rerun
    the history and the predictions, not only the search."""
    def callback(*args):
        edit(*args)
        st.rerun(MAIN)

    return callback


def add_items():
    # A fragment of its own, so that typing reruns only the search.
    query = st.text_input("Add an item", key="pg_search", type="search", live=True,
                          placeholder="search the catalog by title or id")
    found = caches.search_catalog(run, recommender, query or "", limit=9)
    if query and found.empty:
        st.caption(f"Nothing in the catalog matches “{query}”.")
    with st.container(horizontal=True):
        for row in found.head(8).itertuples():
            label = f"{row.title} · {row.category}" if isinstance(row.category, str) else row.title
            st.button(label, key=f"pg_add_{row.item_id}", icon=":material/add:", type="tertiary",
                      on_click=then_show(state.add_item), args=(row.item_id,))
    if len(found) > 8:
        st.caption("More items match: type more of the title to narrow the list.")


def history_editor(history: list[str]) -> None:
    st.subheader("History")
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption("Start from", width="content")
        example = state.example_history(run, recommender)
        if example:
            st.button("Example", key="pg_example", icon=":material/auto_awesome:", on_click=state.start_history,
                      args=(example,), help="Two films of a genre, then the first episodes of a series")
        with st.popover("Dataset user", icon=":material/person_search:", key="pg_user_popover",
                        on_change="rerun") as picker:
            if picker.open:  # the dataset is loaded only when someone wants a user from it
                dataset = widgets.dataset_or_none(run)
                if dataset is not None:
                    pick = then_show(lambda user_id: state.start_from_user(dataset, user_id))
                    st.button("Random user", key="pg_random_user", icon=":material/casino:",
                              on_click=lambda: state.start_from_user(dataset, state.random_user(dataset)))
                    widgets.user_search(run, dataset, "pg_user_search", on_pick=pick)
    widgets.example_customers(run, "pg_examples", on_pick=then_show(state.start_example_customer))

    user = state.playground_user()
    if user:
        st.caption(f"Dataset user **{user['id']}**: their history without the last item, which is held out as "
                   f"the true next item and marked in the predictions when it appears.")
        if user.get("why"):
            st.caption(f":material/lightbulb: {user['why']}")
    if len(history) > recommender.maxlen:
        st.caption(f":material/info: The model looks at the last {recommender.maxlen} of these {len(history)} items.")

    focus = None
    if history:
        titles = caches.titles(recommender, history)
        with st.container(height=230 if len(history) > 24 else "content", border=len(history) > 24):
            focus = st.pills(f"{len(history)} item{'s' * (len(history) > 1)}, oldest first: pick one to move or "
                             "remove it",
                             range(len(history)), format_func=lambda i: f"{i + 1}. {charts.short(titles[i], 30)}",
                             default=state.playground_focus(), key=f"pg_items_{hash(tuple(history))}")
    else:
        st.caption("The history is empty: start from the example or a dataset user, or add items below.")
    st.session_state["pg_focus"] = focus

    with st.container(horizontal=True):
        st.button("Earlier", key="pg_earlier", icon=":material/arrow_back:", type="tertiary",
                  on_click=state.move_item, args=(focus, -1), disabled=focus is None or focus == 0)
        st.button("Later", key="pg_later", icon=":material/arrow_forward:", type="tertiary",
                  on_click=state.move_item, args=(focus, 1), disabled=focus is None or focus == len(history) - 1)
        st.button("Remove", key="pg_remove", icon=":material/close:", type="tertiary",
                  on_click=state.remove_item, args=(focus,), disabled=focus is None)
        st.button("Undo", key="pg_undo", icon=":material/undo:", type="tertiary",
                  on_click=state.undo_history, disabled=not state.can_undo())
        st.button("Clear", key="pg_clear", icon=":material/delete_sweep:", type="tertiary",
                  on_click=state.clear_history, disabled=not history)
        with st.popover("Keep last…", icon=":material/content_cut:", type="tertiary", disabled=len(history) < 2):
            last = st.number_input("Items to keep", 1, max(len(history), 1), min(10, max(len(history), 1)),
                                   key="pg_keep_n")
            st.button(f"Keep the last {last}", key="pg_keep", on_click=state.keep_last, args=(last,))

    st.fragment(add_items, key="pg_search_fragment")()


def predictions():
    if training and run.state() != rundir.RUNNING:  # it has ended: its best weights, and no more refreshing
        st.rerun()
    history = state.history()
    state.top_k("pg_k")  # from the link, the first time
    with st.container(horizontal=True, vertical_alignment="bottom"):
        k = st.number_input("Top k", 1, 100, key="pg_k", width=110, on_change=state.share_top_k, args=("pg_k",))
        exclude = st.toggle("Hide items already in the history", True, key="pg_exclude")
        second_model = widgets.second_model_picker("pg_compare")
    which = widgets.epoch_slider(run, "pg_epoch")
    model = widgets.model_at(run, which)
    off = widgets.head_switches(model.model.config, "pg_heads")
    model = model.without_heads(off)
    if not history:
        st.info("Add an item to see what the model predicts next.", icon=":material/playlist_add:")
        return
    try:
        result = model.recommend(history, k=k, exclude_history=exclude)
    except widgets.USER_ERRORS as err:
        widgets.error(err)
        st.button("Remove the unknown items", key="pg_drop_unknown", on_click=state.drop_unknown, args=(model,))
        return
    if second_model is not None:  # two models side by side: they replace the single table
        second = widgets.side_by_side(widgets.model_label(run, which), result, second_model, history, k, exclude)
        if second is not None:
            explain_and_report(model, history, result, exclude, which, second, k, off)
            return
    before = state.what_if(run, (k, exclude, which, tuple(off)), list(result.items["item_id"]))
    target = (state.playground_user() or {}).get("target")
    widgets.show_predictions(charts.prediction_table(result.items, before, target))
    notes = [f"Predicted in {result.seconds * 1000:.1f} ms on the server"]
    if off:
        notes.append(f"{len(off)} head{'s' * (len(off) > 1)} switched off")
    if before is not None:
        notes.append("▲ ▼ rank moves since the last edit")
    if target is not None:
        rank = result.items.index[result.items["item_id"] == target]
        where = f"at rank {rank[0] + 1}" if len(rank) else f"not in the top {k}"
        notes.append(f"true next item **{caches.titles(model, [target])[0]}** {where}")
    if training:
        epochs = len(run.metrics())
        notes.append(f"weights after epoch {epochs}, refreshed while it trains" if epochs else
                     "weights from the first epoch, refreshed while it trains")
    st.caption(" · ".join(notes))
    explain_and_report(model, history, result, exclude, which, None, k, off)


def explain_and_report(model, history, result, exclude, which, second, k, off):
    """Why the selected prediction (removal effects, gradients), what would change it, and the report to hand out."""
    with st.container(key="pg_why_section"):
        explanation = widgets.why_prediction(model, history, result, exclude, "pg_why", MAIN)
    with st.container(key="pg_counterfactual_section"):
        found = widgets.counterfactual_section(run, model, history, k, exclude, (which, tuple(off)), "pg_cf",
                                              MAIN)
    widgets.report_download(run, which, history, result, explanation, second, "pg_report", model=model,
                            exclude=exclude, heads_off=off, found=found, k=k)


@st.fragment(key=MAIN)
def playground():
    edit_column, predictions_column = st.columns([0.85, 1.15], gap="large")
    with edit_column:
        history_editor(state.history())
    with predictions_column:
        st.subheader("Predictions")
        # While the run trains, the predictions refresh every few seconds: they improve live.
        st.fragment(predictions, key="pg_predictions", run_every=widgets.LIVE_SECONDS if training else None)()


playground()
