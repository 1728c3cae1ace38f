"""Evaluate: test metrics against the baselines, where SASRec wins, the item embeddings, and runs side by side."""

import streamlit as st

from sasrec import rundir
from sasrec.ui import caches, charts, state, widgets

widgets.page_setup()


def embedding_map(run, points) -> None:
    """The item embedding map with its controls."""
    with st.container(horizontal=True, vertical_alignment="bottom"):
        colours = ["category", "popularity"] if charts.has_categories(points) else ["popularity"]
        colour_by = st.segmented_control("Colour by", colours, default=colours[0], key="ev_colour", required=True)
        method = st.segmented_control("Projection", ["PCA", "UMAP"] if caches.umap_installed() else ["PCA"],
                                      default="PCA", key="ev_projection", required=True)
    figure, shown = caches.embedding_figure(run, method.lower(), colour_by)
    st.caption("Each dot is an item; items the model treats alike lie close together. Hover for its title; "
               "drag to pan, scroll to zoom. "
               + (f"Showing the {shown:,} most popular of {len(points):,} items." if shown < len(points)
                  else f"All {len(points):,} items."))
    st.plotly_chart(figure, key="ev_embeddings", config={"scrollZoom": True, "displaylogo": False})


st.title("Evaluate")
run = widgets.choose_run("ev_run")

if run.state() == rundir.RUNNING:
    st.info("This run is still training: its test metrics come once it has ended. Its curves are below.",
            icon=":material/hourglass_top:")
else:
    try:
        tables = caches.evaluation(run)
    except widgets.USER_ERRORS as err:
        widgets.error(err)
        tables = {}
    metrics = run.test_metrics()

    st.header("Test metrics")
    if metrics is None:
        st.caption("This run ended before its first validation, so it has no test metrics.")
    else:
        full, sampled = charts.metrics_tables(metrics)
        number = st.column_config.NumberColumn(format="%.4f")
        st.markdown(f"**Full ranking**: the true next item of each of {metrics.get('users', 0):,} test users is "
                    "ranked against every item in the catalog (already-watched items excluded)."
                    + (f" {metrics['skipped_users']:,} users with fewer than 3 events have no test item."
                       if metrics.get("skipped_users") else ""))
        st.dataframe(full, key="ev_full", column_config={c: number for c in full.columns})
        st.markdown("**Sampled**, the paper's protocol: the true item is ranked against only 100 random items the "
                    "user never interacted with, which makes every model look better.")
        st.dataframe(sampled, key="ev_sampled", column_config={c: number for c in sampled.columns})
        st.altair_chart(charts.metrics_chart(full, sampled), key="ev_metrics_chart")

    st.header("By history length")
    if "breakdown" not in tables:
        st.caption("This breakdown comes with the test metrics.")
    else:
        st.caption("Test users split into terciles by how many items they had watched before the held-out one, "
                   "and each model's NDCG@10 in each.")
        chart_column, table_column = st.columns([1, 1.3], gap="large")
        chart_column.altair_chart(charts.breakdown_chart(tables["breakdown"]), key="ev_breakdown_chart")
        table_column.dataframe(charts.breakdown_table(tables["breakdown"]), hide_index=True, key="ev_breakdown",
                               column_config={
            "group": st.column_config.TextColumn(width=64), "history": st.column_config.TextColumn(width=100),
            "users": st.column_config.NumberColumn(format="localized", width=64),
            **{model: st.column_config.NumberColumn(format="%.4f", width=96) for model in charts.MODEL_COLORS}})

    st.header("Item embeddings")
    if "embedding" in tables:
        # A fragment: its controls redraw only the map, and nothing else on the page redraws it.
        st.fragment(embedding_map, key="ev_map")(run, tables["embedding"])
    else:
        st.caption("The embedding map comes with the test metrics.")

st.header("Compare runs")


@st.fragment(key="ev_comparison")
def comparison():
    runs = {r.name: r for r in state.workspace().runs()}
    chosen = st.multiselect("Runs", list(runs), default=[run.name], key="ev_compare")
    curves, summary = charts.run_comparison([runs[name] for name in chosen])
    if not curves.empty:
        st.altair_chart(charts.curves_chart(curves), key="ev_curves")
    # Narrow columns, so that all of them fit in the page's width.
    st.dataframe(summary, hide_index=True, key="ev_summary", column_config={
        c: st.column_config.NumberColumn(format="%.4f", width=84 if len(c) < 8 else 128)
        for c in summary.columns if "NDCG" in c or "HR" in c or c == "MRR"}
        | {"epochs": st.column_config.NumberColumn(width=60), "state": st.column_config.TextColumn(width=76),
           "loss": st.column_config.TextColumn(width=80),
           "model": st.column_config.TextColumn(width=140, help="blocks × heads, hidden size, items read"),
           "minutes": st.column_config.NumberColumn(format="%.1f", width=64)})


comparison()
