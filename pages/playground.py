"""Playground: edit a viewing history and watch the next-item predictions follow every edit."""

import streamlit as st

from sasrec import rundir
from sasrec.ui import caches, charts, state, widgets

widgets.page_setup()

st.title("Playground")
run = widgets.choose_run("pg_run")
recommender = widgets.load_recommender(run)
history = state.history()

edit_column, predictions_column = st.columns([0.85, 1.15], gap="large")

with edit_column:
    st.subheader("History")
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption("Start from", width="content")
        example = state.example_history(recommender)
        if example:
            st.button("Example", key="pg_example", icon=":material/auto_awesome:", on_click=state.start_history,
                      args=(example,), help="Two films of a genre, then the first episodes of a series")
        with st.popover("Dataset user", icon=":material/person_search:", key="pg_user_popover", on_change="rerun"):
            dataset = widgets.dataset_or_none(run)
            if dataset is not None:
                st.button("Random user", key="pg_random_user", icon=":material/casino:",
                          on_click=lambda: state.start_from_user(dataset, state.random_user(dataset)))
                widgets.user_search(dataset, "pg_user_search", on_pick=lambda user_id: state.start_from_user(dataset, user_id))

    user = state.playground_user()
    if user:
        st.caption(f"Dataset user **{user['id']}**: their history without the last item, which is held out as "
                   f"the true next item and marked in the predictions when it appears.")
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

    @st.fragment
    def add_items():
        # A fragment, so that typing reruns only the search, not the predictions.
        query = st.text_input("Add an item", key="pg_search", type="search", live=True,
                              placeholder="search the catalog by title or id")
        found = recommender.search(query or "", limit=9)
        if query and found.empty:
            st.caption(f"Nothing in the catalog matches “{query}”.")
        with st.container(horizontal=True):
            for row in found.head(8).itertuples():
                label = f"{row.title} · {row.category}" if isinstance(row.category, str) else row.title
                if st.button(label, key=f"pg_add_{row.item_id}", icon=":material/add:", type="tertiary"):
                    state.add_item(row.item_id)
                    st.rerun()
        if len(found) > 8:
            st.caption("More items match: type more of the title to narrow the list.")

    add_items()


def predictions():
    model = widgets.load_recommender(run)
    history = state.history()
    with st.container(horizontal=True, vertical_alignment="bottom"):
        k = st.number_input("Top k", 1, 100, 10, key="pg_k", width=110)
        exclude = st.toggle("Hide items already in the history", True, key="pg_exclude")
    if not history:
        st.info("Add an item to see what the model predicts next.", icon=":material/playlist_add:")
        return
    try:
        result = model.recommend(history, k=k, exclude_history=exclude)
    except widgets.USER_ERRORS as err:
        widgets.error(err)
        st.button("Remove the unknown items", key="pg_drop_unknown", on_click=state.drop_unknown, args=(model,))
        return
    before = state.what_if(run, (k, exclude), list(result.items["item_id"]))
    target = (state.playground_user() or {}).get("target")
    widgets.show_predictions(charts.prediction_table(result.items, before, target))
    notes = [f"Predicted in {result.seconds * 1000:.1f} ms on the server"]
    if before is not None:
        notes.append("▲ ▼ rank moves since the last edit")
    if target is not None:
        rank = result.items.index[result.items["item_id"] == target]
        where = f"at rank {rank[0] + 1}" if len(rank) else f"not in the top {k}"
        notes.append(f"true next item **{caches.titles(model, [target])[0]}** {where}")
    st.caption(" · ".join(notes))


with predictions_column:
    st.subheader("Predictions")
    # While the run trains, refresh every few seconds: the predictions improve live.
    st.fragment(predictions, run_every="5s" if run.state() == rundir.RUNNING else None)()
