"""Attention: where each layer and head looks, for one history and across many users."""

import streamlit as st

from sasrec import analysis
from sasrec.explain import removal_effects
from sasrec.ui import caches, charts, state, widgets

widgets.page_setup()

st.title("Attention")
run = widgets.choose_run("att_run")
recommender = widgets.load_recommender(run)
with st.container(horizontal=True, vertical_alignment="bottom"):
    which = widgets.epoch_slider(run, "att_epoch")
    second_model = widgets.second_model_picker("att_compare")
recommender = widgets.model_at(run, which)

dataset = widgets.dataset_or_none(run)
with st.container(horizontal=True, vertical_alignment="bottom"):
    source = st.segmented_control("Input", ["Playground history", "Dataset user"], default="Playground history",
                                  key="att_source", required=True, disabled=dataset is None)
    if source == "Dataset user":
        with st.popover(f"User {st.session_state.get('att_user') or '…'}", icon=":material/person_search:",
                        key="att_user_popover", on_change="rerun"):
            widgets.user_search(run, dataset, "att_user_search", on_pick=state.pick_attention_user)
items = state.history() if source == "Playground history" else state.attention_user_history(dataset)
if not items:
    st.info("Nothing to look at yet: build a history on the Playground, or pick a dataset user.",
            icon=":material/playlist_add:")
    st.page_link("pages/playground.py", label="Open the Playground", icon=":material/playlist_play:")
    st.stop()

longest = min(len(items), recommender.maxlen, 100)
with st.container(horizontal=True, vertical_alignment="bottom"):
    shown = longest
    if longest > 1:
        shown = st.slider("Last items shown (the model runs on these)", 1, longest, min(longest, 30), width=360,
                          key=f"att_shown_{longest}")
    try:
        result = recommender.recommend(items[-shown:], k=10)
        explanation = removal_effects(recommender, items[-shown:], gradients=True)
    except widgets.USER_ERRORS as err:
        widgets.error(err)
        st.stop()
    focus = widgets.attention_focus_picker(result.history)

top = result.items.iloc[0]
st.markdown(f"Predicted next: **{top['title']}** ({charts.percent(top['probability'])}). Rows attend to columns; a causal model "
            "only looks back. Click a cell or a bar to highlight its item everywhere.")
table = analysis.attention_table(result.history, result.attention)

looks, overview = st.columns([1.4, 1], gap="large")
with looks:
    st.subheader("What the prediction looks at")
    st.caption("The last position's attention in each layer (heads averaged), the rollout: how much of each "
               "item reaches the prediction through all layers and the residual connections, the removal "
               "effect: the probability the prediction loses when the item is removed (grey: it gains), and the "
               "gradient: each item's share of the integrated gradients of the prediction's score.")
    widgets.chart(charts.focus_and_effect_bars(analysis.prediction_focus(result.history, result.attention),
                                               explanation.effects, result.history, focus, panel_width=75),
                  "att_bars", "prediction_focus",
                  on_select=lambda: state.focus_from_selection("att_bars", "item", "position"))
    st.caption(f":material/info: {charts.why_sentence(explanation.target, explanation.effects)} "
               f"{charts.gradient_sentence(explanation.target, explanation.effects)} {charts.DISAGREE_NOTE}")
with overview:
    st.subheader("Model view")
    st.caption("Every layer and head at a glance.")
    widgets.chart(charts.model_view(table, focus), "att_model_view", "model_view")

if second_model is not None:
    widgets.attention_side_by_side(widgets.model_label(run, which), result, explanation, second_model, items[-shown:],
                                   focus)
    st.header(f"{widgets.model_label(run, which)}, layer by layer")

for layer in range(1, result.attention.shape[0] + 1):
    key = f"att_heatmap_{layer}"
    heatmap = charts.attention_heatmap(table[table["layer"] == layer], result.history, focus)
    st.subheader(f"Layer {layer}")
    widgets.chart(heatmap, key, f"attention_layer_{layer}",
                  on_select=lambda key=key: state.focus_from_selection(key, "cell", "key"))

with st.expander("Weights shown, as a table"):
    st.dataframe(table, hide_index=True, key="att_weights", column_config={
        "weight": st.column_config.NumberColumn(format="%.4f")})
widgets.effects_table(recommender, items[-shown:], "att_effects")
st.download_button("Download the weights (CSV)", table.to_csv(index=False), "attention_weights.csv", "text/csv",
                   key="att_csv", icon=":material/download:", on_click="ignore")

st.header("Across many users")
st.subheader("Which heads matter?")
widgets.head_importance_section(run)
if dataset is None:
    st.caption("The other averages need the data the run was trained on.")
else:
    st.subheader("Does attention point to the item that matters?")
    widgets.agreement_section(run, dataset)

    def show_aggregates(found) -> None:
        by_distance, categories, num_users = found
        st.caption(f"Averaged over the validation histories of {num_users} sampled users.")
        distance_column, category_column = st.columns(2, gap="large")
        with distance_column:
            st.subheader("Recent or old items?")
            st.caption("Mean attention by how far back the attended item is (the paper's Figure 4). Early positions "
                       "see few items, so even an even spread decays; above the dashed line, the model prefers them.")
            widgets.chart(charts.distance_chart(by_distance), "att_distance", "attention_by_distance")
        with category_column:
            st.subheader("Which categories attend to which")
            if categories is None:
                st.caption("The catalog has no categories.")
            else:
                st.caption("Share of each category's attention that goes to each category (the paper's Figure 5).")
                widgets.chart(charts.category_heatmap(categories), "att_categories", "category_attention")

    widgets.when_ready("att_aggregates", lambda: caches.attention_aggregates(run, dataset),
                       "Averaging attention over 500 sampled validation users; the charts appear here when that is "
                       "done.", show_aggregates)
