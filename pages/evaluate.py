"""Evaluate: test metrics against the baselines, where SASRec wins, the item embeddings, and runs side by side."""

import streamlit as st

from sasrec import analysis, rundir, ui

ui.page_setup()

st.title("Evaluate")
run = ui.choose_run("ev_run")

if run.status().get("state") == rundir.RUNNING:
    st.info("This run is still training: its test metrics come once it has ended. Its curves are below.",
            icon=":material/hourglass_top:")
else:
    ui.load_recommender(run)
    dataset = ui.dataset_or_none(run)

    st.header("Test metrics")
    metrics = run.test_metrics() or (ui.evaluation(run).metrics if dataset is not None else None)
    if metrics is None:
        st.caption("Neither saved test metrics nor the data to compute them are available for this run.")
    else:
        full, sampled = ui.metrics_tables(metrics)
        number = st.column_config.NumberColumn(format="%.4f")
        st.markdown("**Full ranking**: the true next item is ranked against every item in the catalog "
                    "(already-watched items excluded).")
        st.dataframe(full, key="ev_full", column_config={c: number for c in full.columns})
        st.markdown("**Sampled**, the paper's protocol: the true item is ranked against only 100 random items the "
                    "user never interacted with, which makes every model look better.")
        st.dataframe(sampled, key="ev_sampled", column_config={c: number for c in sampled.columns})
        st.altair_chart(ui.metrics_chart(full, sampled), key="ev_metrics_chart")

    st.header("By history length")
    if dataset is None:
        st.caption("This breakdown needs the data the run was trained on.")
    else:
        breakdown = analysis.breakdown_by_length(ui.evaluation(run).per_user)
        st.caption("Test users split into terciles by how many items they had watched before the held-out one, "
                   "and each model's NDCG@10 in each.")
        chart_column, table_column = st.columns(2, gap="large")
        chart_column.altair_chart(ui.breakdown_chart(breakdown), key="ev_breakdown_chart")
        table_column.dataframe(ui.breakdown_table(breakdown), hide_index=True, key="ev_breakdown", column_config={
            "group": st.column_config.TextColumn(width=64), "users": st.column_config.NumberColumn(width=56),
            **{model: st.column_config.NumberColumn(format="%.4f", width=84) for model in ui.MODEL_COLORS}})

    st.header("Item embeddings")
    with st.container(horizontal=True, vertical_alignment="bottom"):
        colour_by = st.segmented_control("Colour by", ["category", "popularity"], default="category",
                                         key="ev_colour", required=True,
                                         disabled=dataset is None)
        method = st.segmented_control("Projection", ["PCA", "UMAP"] if ui.umap_installed() else ["PCA"],
                                      default="PCA", key="ev_projection", required=True)
    points = ui.embedding_points(run, dataset, method.lower())
    shown = points.nlargest(5000, "popularity") if dataset is not None else points.head(5000)
    st.caption(f"Each dot is an item; items the model treats alike lie close together. Showing {len(shown):,} of "
               f"{len(points):,} items" + (", the most popular." if len(shown) < len(points) else "."))
    st.altair_chart(ui.embedding_chart(shown, colour_by), key="ev_embeddings")

st.header("Compare runs")
names = [ui.workspace().run_name(r) for r in ui.workspace().runs()]
chosen = st.multiselect("Runs", names, default=[ui.workspace().run_name(run)], key="ev_compare")
curves, summary = ui.run_comparison([ui.workspace().run(name) for name in chosen])
if not curves.empty:
    st.altair_chart(ui.curves_chart(curves), key="ev_curves")
st.dataframe(summary, hide_index=True, key="ev_summary", column_config={
    c: st.column_config.NumberColumn(format="%.4f") for c in summary.columns if "NDCG" in c or "HR" in c or c == "MRR"}
    | {"minutes": st.column_config.NumberColumn(format="%.1f")})
