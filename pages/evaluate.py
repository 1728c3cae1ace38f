"""Evaluate: test metrics with intervals against the baselines, whether the differences are real, what
the models recommend beyond accuracy, where each wins, the item embeddings, and runs side by side."""

import streamlit as st

from sasrec import rundir, summary
from sasrec.breakdowns import BY
from sasrec.report import is_current
from sasrec.ui import caches, charts, state, widgets

widgets.page_setup()
INTERVALS = ("Each figure comes with its 95 % interval in brackets: the range the mean would take over other "
             "samples of test users (1,000 bootstrap resamples of the users).")


def test_metrics(metrics: dict) -> None:
    st.header("Test metrics")
    st.markdown(f"**Full ranking**: the true next item of each of {metrics.get('users', 0):,} test users is ranked "
                "against every item in the catalog (already-watched items excluded)."
                + (f" {metrics['skipped_users']:,} users with fewer than 3 events have no test item."
                   if metrics.get("skipped_users") else "") + " " + INTERVALS)
    kind, note = summary.ease_note(metrics)
    if kind == "wins":
        st.warning(note, icon=":material/priority_high:")
    elif kind == "absent":
        st.info(note, icon=":material/block:")
    st.markdown("\n".join(f"- {summary.verdict(metrics, baseline)}" for baseline in summary.evaluated_models(metrics)
                          if baseline))
    if kind == "fitted":
        st.caption(note)
    st.dataframe(summary.metrics_table(metrics), key="ev_full")
    st.markdown("**Sampled**, the paper's protocol: the true item is ranked against only 100 random items the "
                "user never interacted with, which makes every model look better.")
    st.dataframe(summary.metrics_table(metrics, sampled=True), key="ev_sampled")
    st.altair_chart(charts.metrics_chart(metrics), key="ev_metrics_chart")


def tradeoff(points) -> None:
    x = st.segmented_control("Against", list(charts.TRADEOFF_AXES), default="avg_popularity@10", required=True,
                             key="ev_tradeoff_x", format_func=lambda name: charts.TRADEOFF_AXES[name][0])
    st.altair_chart(charts.tradeoff_chart(points, x), key="ev_tradeoff")


def beyond_accuracy(run, metrics: dict) -> None:
    st.header("Beyond accuracy")
    st.caption("What each model's top 10 holds, for every test user. Coverage: the share of the catalog recommended "
               "to anyone. Popularity: how many training users had an item. Long tail: items outside the most "
               "popular 20 %. Novelty: how surprising an item is, log₂(users ÷ its popularity) bits. Diversity: the "
               "share of pairs in a list from different categories. In brackets, 95 % intervals: coverage's by the "
               "jackknife over users, the others' by the bootstrap.")
    st.dataframe(summary.beyond_table(metrics), key="ev_beyond")
    st.subheader("Accuracy against popularity")
    points = summary.tradeoff_points(metrics, charts.best_epoch(run.metrics()))
    snapshots = points[points["kind"] == "snapshot"]
    st.caption("Each model and baseline, and the run's snapshots during training (triangles labelled by their epoch, "
               "joined in epoch order): "
               "up is more accurate, left recommends less popular items. The bars are 95 % intervals."
               + (f" Snapshots are evaluated on a fixed sample of {snapshots['users'].iloc[0]:,} test users, hence "
                  "their wider intervals." if len(snapshots) and snapshots["users"].iloc[0] < metrics["users"] else "")
               + ("" if len(snapshots) else " This run kept no snapshots."))
    st.fragment(tradeoff, key="ev_tradeoff_fragment")(points)


def breakdowns(metrics: dict, breakdown) -> None:
    st.header("Where each model wins")
    best = summary.best_baseline(metrics)
    models = ["SASRec"] + ([summary.MODELS[best]] if best else [])
    available = [by for by in BY if (breakdown["by"] == by).any()]

    def section():
        by = st.segmented_control("Users by", available, default=available[0], required=True, key="ev_breakdown_by",
                                  format_func=BY.get)
        chosen = breakdown[breakdown["by"] == by]
        st.caption({"length": "Test users split into terciles by how many items they had before the test item.",
                    "popularity": "Test users by how popular their test item was in training: the head is the most "
                                  "popular items holding a third of the training interactions, the torso the next "
                                  "third, the tail the rest.",
                    "recency": "Test users split into terciles by when they were last active (their test item's "
                               "date)."}[by]
                   + f" SASRec beside the best baseline overall ({models[-1]}); small groups have wide intervals.")
        chart_column, table_column = st.columns([1, 1.4], gap="large")
        chart_column.altair_chart(charts.breakdown_chart(chosen, models), key="ev_breakdown_chart")
        table_column.dataframe(summary.breakdown_table(chosen, models), hide_index=True, key="ev_breakdown",
                               column_config={"group": st.column_config.TextColumn(width=64),
                                              "users": st.column_config.NumberColumn(format="localized", width=64)})
        if "recency" not in available:
            st.caption("This log has no timestamps, so there is no breakdown by when users were last active.")

    st.fragment(section, key="ev_breakdowns")()


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
        tables = False  # the error says why there is nothing to show
    metrics = run.test_metrics()
    if tables is False:
        pass
    elif tables is None:
        widgets.when_ready("ev_evaluating", lambda: caches.evaluation(run),
                           "Evaluating this run on the test split: every model and baseline, EASE, the intervals and "
                           "the snapshots (once, in the background; for a big log a minute or two). This page fills "
                           "in when it is done.", lambda tables: None)
    elif metrics is None:
        st.header("Test metrics")
        st.caption("This run ended before its first validation, so it has no test metrics.")
    elif not is_current(metrics) or not tables:
        st.info("This run was evaluated before intervals, EASE and beyond-accuracy metrics existed, and it did not "
                "end cleanly, so it is not evaluated again here: `python -m sasrec evaluate RUN_DIR --recompute` "
                "does it.", icon=":material/history:")
    else:
        test_metrics(metrics)
        beyond_accuracy(run, metrics)
        breakdowns(metrics, tables["breakdown"])
        st.header("Item embeddings")
        # A fragment: its controls redraw only the map, and nothing else on the page redraws it.
        st.fragment(embedding_map, key="ev_map")(run, tables["embedding"])

st.header("Compare runs")


@st.fragment(key="ev_comparison")
def comparison():
    runs = {r.name: r for r in state.workspace().runs()}
    chosen = st.multiselect("Runs", list(runs), default=[run.name], key="ev_compare")
    curves, table = charts.run_comparison([runs[name] for name in chosen])
    if not curves.empty:
        st.altair_chart(charts.curves_chart(curves), key="ev_curves")
    # Narrow columns, so that all of them fit in the page's width.
    st.dataframe(table, hide_index=True, key="ev_summary", column_config={
        c: st.column_config.TextColumn(width=150) for c in table.columns if "NDCG" in c or "HR" in c or c == "MRR"}
        | {"epochs": st.column_config.NumberColumn(width=60), "state": st.column_config.TextColumn(width=76),
           "best valid NDCG@10": st.column_config.NumberColumn(format="%.4f", width=90),
           "loss": st.column_config.TextColumn(width=80),
           "model": st.column_config.TextColumn(width=140, help="blocks × heads, hidden size, items read"),
           "minutes": st.column_config.NumberColumn(format="%.1f", width=64)})
    for other in chosen[1:]:
        try:
            st.markdown("- " + summary.comparison_sentence(caches.compared(runs[chosen[0]], runs[other])))
        except widgets.USER_ERRORS as err:
            st.caption(f"{chosen[0]} and {other}: {widgets.readable(str(err))}")


comparison()
