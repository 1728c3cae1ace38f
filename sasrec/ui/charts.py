"""Charts and display tables: pure functions from data to Altair charts and DataFrames.

Nothing here touches Streamlit, so every chart can be built and checked in a test.
"""

import time

import altair as alt
import numpy as np
import pandas as pd

from ..evaluate import metrics_table
from ..inference import rank_changes
from ..rundir import INTERRUPTED

STATE_COLORS = {"running": "blue", "finished": "green", "stopped": "orange", "failed": "red", INTERRUPTED: "gray"}


def report_table(report: list[dict]) -> pd.DataFrame:
    """Dataset.report as one row per step: rows, users and items before → after."""
    def change(before, after):
        return f"{after:,}" if before in (None, after) else f"{before:,} → {after:,}"

    rows = []
    for previous, step in zip([None, *report], report):
        notes = [step.get("note"), step.get("skipped_rows") and f"{step['skipped_rows']:,} malformed rows skipped",
                 step.get("timestamps") and f"timestamps read as {step['timestamps']}",
                 step.get("passes") and f"{step['passes']} passes"]
        counts = {key.title(): change(previous and previous[key], step[key]) for key in ("rows", "users", "items")}
        rows.append({"Step": step["step"], **counts, "Note": "; ".join(n for n in notes if n)})
    return pd.DataFrame(rows)


def length_chart(histogram: pd.DataFrame) -> alt.Chart:
    return alt.Chart(histogram).mark_rect(stroke="white", strokeWidth=0.5).encode(
        alt.X("start:Q", scale=alt.Scale(nice=False), title="sequence length"),
        alt.X2("end:Q"), alt.Y("users:Q", title="users"), alt.Y2(datum=0),
        tooltip=[alt.Tooltip("start:Q", title="from"), alt.Tooltip("end:Q", title="below"), "users:Q"],
    ).properties(height=260)


def popularity_chart(curve: pd.DataFrame) -> alt.Chart:
    return alt.Chart(curve).mark_line().encode(
        alt.X("rank:Q", scale=alt.Scale(type="log", nice=False), title="item rank by popularity (log scale)"),
        alt.Y("interactions:Q", scale=alt.Scale(type="log"), title="interactions (log scale)"),
        tooltip=["rank:Q", "interactions:Q", alt.Tooltip("share:Q", format=".1%", title="share up to this rank")],
    ).properties(height=260)


def activity_chart(per_period: pd.DataFrame, unit: str) -> alt.Chart:
    return alt.Chart(per_period).mark_bar().encode(
        alt.X("period:T", title=None), alt.Y("interactions:Q", title=f"interactions per {unit}"),
        tooltip=[alt.Tooltip("period:T", title=f"{unit} from"), alt.Tooltip("interactions:Q", format=",")],
    ).properties(height=220)


def when(epoch_seconds: float | None) -> str:
    """'2026-11-27 14:05' in the server's time zone."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch_seconds)) if epoch_seconds else "at an unknown time"


def duration(seconds: float | None) -> str:
    """'45 s', '3 min 05 s', '2 h 07 min'."""
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def loss_chart(progress: dict) -> alt.Chart:
    steps_per_epoch = max(progress.get("steps_per_epoch", 1), 1)
    curve = pd.DataFrame(progress.get("loss_curve") or [], columns=["step", "loss"])
    curve["epoch"] = curve["step"] / steps_per_epoch
    return alt.Chart(curve).mark_line().encode(
        alt.X("epoch:Q", title="epoch"), alt.Y("loss:Q", scale=alt.Scale(zero=False), title=None),
        tooltip=[alt.Tooltip("epoch:Q", format=".2f"), alt.Tooltip("loss:Q", format=".4f")],
    ).properties(height=240)


def validation_chart(metrics: list[dict]) -> alt.Chart:
    rows = [{"epoch": m["epoch"], "metric": name, "value": m[key]} for m in metrics
            for name, key in (("NDCG@10", "valid_ndcg@10"), ("HR@10", "valid_hr@10")) if key in m]
    return alt.Chart(pd.DataFrame(rows, columns=["epoch", "metric", "value"])).mark_line(point=True).encode(
        alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1)), alt.Y("value:Q", title=None),
        alt.Color("metric:N", legend=alt.Legend(orient="bottom-right", title=None)),
        tooltip=["epoch:Q", "metric:N", alt.Tooltip("value:Q", format=".4f")],
    ).properties(height=240)


def runs_table(summaries: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "name": s["name"], "dataset": s["dataset"], "status": s["state"],
        "best valid NDCG@10": s["best_valid_ndcg@10"], "test NDCG@10": s["test_ndcg@10"], "test HR@10": s["test_hr@10"],
        "duration": duration(s["duration_seconds"]), "device": s["device"], "started": when(s["started"]),
    } for s in summaries])


ACCENT, HIGHLIGHT = "#5B4BDB", "#E4572E"


MODEL_COLORS = {"SASRec": ACCENT, "Markov": "#F2A541", "Most popular": "#9AA0A6"}


def short(title: str, width: int = 24) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"


def _move_label(change: str) -> str:
    kind, _, steps = change.partition(" ")
    return {"new": "new", "same": "=", "up": f"▲ {steps}", "down": f"▼ {steps}"}[kind]


def prediction_table(items: pd.DataFrame, before: list[str] | None, target: str | None) -> pd.DataFrame:
    """The top-k as shown: rank, change since the last edit (if any), title, category,
    score, probability and, for a dataset user, whether it is the held-out next item."""
    table = items[["rank", "title", "category", "score", "probability"]].copy()
    if before is not None:
        table.insert(1, "change", [_move_label(c) for c in rank_changes(before, list(items["item_id"]))])
    if target is not None:
        table["held-out next"] = (items["item_id"] == target).to_numpy()
    return table


def _labelled(table: pd.DataFrame, shown: pd.DataFrame, *columns: str) -> tuple[pd.DataFrame, list[str]]:
    """Axis labels "position. short title", unique even when an item repeats, for the
    position columns given; and all labels in history order, for sorting the axes.
    shown: Recommendation.history, the items the model saw."""
    labels = [f"{p}. {short(t)}" for p, t in zip(shown["position"], shown["title"])]
    lookup = np.array(labels, dtype=object)
    return table.assign(**{f"{c}_label": lookup[table[c].to_numpy() - 1] for c in columns}), labels


def _weight_colour(legend=True) -> alt.Color:
    # a square-root scale, so that the many small weights of a long history stay visible
    return alt.Color("weight:Q", title="weight", legend=alt.Legend() if legend else None,
                     scale=alt.Scale(scheme="purples", type="sqrt", domain=[0, 1]))


def _in_focus(focus: int | None, *fields: str) -> str:
    """A Vega expression: whether a mark belongs to the highlighted history position."""
    return " || ".join(f"datum.{f} == {int(focus)}" for f in fields) if focus is not None else "false"


def attention_heatmap(table: pd.DataFrame, shown: pd.DataFrame, focus: int | None) -> alt.FacetChart:
    """One layer's causal attention, one heatmap per head: rows attend to columns. Cells
    are selectable (selection "cell", fields query and key)."""
    data, labels = _labelled(table, shown, "query", "key")
    heads, T = table["head"].nunique(), len(shown)
    # square cells, as large as lets all heads fit side by side in the wide layout's ~1000 px
    cell = int(np.clip((880 - 30 * heads) / (heads * T), 7, 34))
    axis = {"labelLimit": 170, "labelFontSize": min(11, cell - 2), "labelOverlap": False, "labelFlush": False}
    highlighted = _in_focus(focus, "query", "key")
    chart = alt.Chart(data).mark_rect().encode(
        x=alt.X("key_label:O", sort=labels, title="attended item", axis=alt.Axis(labelAngle=-55, **axis)),
        y=alt.Y("query_label:O", sort=labels, title="attending item", axis=alt.Axis(**axis)),
        color=_weight_colour(),
        stroke=alt.condition(highlighted, alt.value(HIGHLIGHT), alt.value("white")),
        strokeWidth=alt.condition(highlighted, alt.value(1.2), alt.value(0.5)),
        tooltip=[alt.Tooltip("query_title:N", title="attending"), alt.Tooltip("query:Q", title="at position"),
                 alt.Tooltip("key_title:N", title="attends to"), alt.Tooltip("key:Q", title="at position "),
                 alt.Tooltip("weight:Q", format=".3f"), alt.Tooltip("head:Q")],
    ).properties(width=cell * T, height=cell * T).add_params(alt.selection_point(name="cell", fields=["query", "key"]))
    return chart.facet(column=alt.Column("head:O", title=None, header=alt.Header(labelExpr="'Head ' + datum.value",
                                                                                 labelFontSize=13)))


def model_view(table: pd.DataFrame, focus: int | None) -> alt.FacetChart:
    """Every layer and head at a glance, as small multiples (BertViz's model view)."""
    size = 120
    return alt.Chart(table).mark_rect().encode(
        x=alt.X("key:O", axis=None), y=alt.Y("query:O", axis=None),
        color=_weight_colour(legend=False),
        opacity=alt.condition(_in_focus(focus, "query", "key"), alt.value(1.0),
                              alt.value(1.0 if focus is None else 0.35)),
        tooltip=[alt.Tooltip("query_title:N", title="attending"), alt.Tooltip("key_title:N", title="attends to"),
                 alt.Tooltip("weight:Q", format=".3f"), "layer:Q", "head:Q"],
    ).properties(width=size, height=size).facet(
        row=alt.Row("layer:O", title=None, header=alt.Header(labelExpr="'Layer ' + datum.value", labelAngle=0,
                                                             labelAlign="left")),
        column=alt.Column("head:O", title=None, header=alt.Header(labelExpr="'Head ' + datum.value")),
        spacing=8)


def focus_bars(focus_table: pd.DataFrame, shown: pd.DataFrame, focus: int | None) -> alt.FacetChart:
    """The last position's attention per layer, and the rollout, over the history items.
    Bars are selectable (selection "item", field position)."""
    data, labels = _labelled(focus_table, shown, "position")
    views = list(dict.fromkeys(focus_table["view"]))
    return alt.Chart(data).mark_bar().encode(
        y=alt.Y("position_label:O", sort=labels, title=None, axis=alt.Axis(labelLimit=190, labelOverlap=False)),
        x=alt.X("weight:Q", title=None, axis=alt.Axis(format=".0%", tickCount=3)),
        color=alt.condition(_in_focus(focus, "position"), alt.value(HIGHLIGHT), alt.value(ACCENT)),
        tooltip=[alt.Tooltip("title:N"), alt.Tooltip("position:Q"), alt.Tooltip("view:N"),
                 alt.Tooltip("weight:Q", format=".1%")],
    ).properties(width=120, height=max(120, 17 * len(shown))).add_params(
        alt.selection_point(name="item", fields=["position"])
    ).facet(column=alt.Column("view:N", sort=views, title=None, header=alt.Header(labelFontSize=13))).resolve_scale(
        x="independent")


def distance_chart(by_distance: pd.DataFrame, max_distance: int = 40) -> alt.LayerChart:
    near = by_distance[by_distance["distance"] <= max_distance]
    layers = near.assign(series="Layer " + near["layer"].astype(str))
    uniform = near[near["layer"] == 1].assign(series="Even spread", weight=lambda d: d["uniform"])
    data = pd.concat([layers, uniform])
    series = list(dict.fromkeys(data["series"]))
    palette = ["#5B4BDB", "#E4572E", "#2E9E8F", "#F2A541", "#8E44AD", "#3D7DD8"]
    colours = [palette[i % len(palette)] for i in range(len(series) - 1)] + ["#9AA0A6"]
    return alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=alt.X("distance:Q", title="items back from the attending position (0 = itself)"),
        y=alt.Y("weight:Q", title="mean attention weight", scale=alt.Scale(type="sqrt")),
        color=alt.Color("series:N", title=None, scale=alt.Scale(domain=series, range=colours)),
        strokeDash=alt.condition("datum.series == 'Even spread'", alt.value([4, 4]), alt.value([1, 0])),
        tooltip=["series:N", "distance:Q", alt.Tooltip("weight:Q", format=".4f"), alt.Tooltip("pairs:Q", format=",")],
    ).properties(height=300)


def category_heatmap(matrix: pd.DataFrame) -> alt.LayerChart:
    data = matrix.rename_axis(index="attending", columns="attended").stack().rename("weight").reset_index()
    base = alt.Chart(data).encode(
        x=alt.X("attended:N", title="category attended to", axis=alt.Axis(labelAngle=-45, labelOverlap=False)),
        y=alt.Y("attending:N", title="category of the attending item"))
    cells = base.mark_rect().encode(
        color=alt.Color("weight:Q", title="share", scale=alt.Scale(scheme="purples", domain=[0, 1])),
        tooltip=["attending:N", "attended:N", alt.Tooltip("weight:Q", format=".1%")])
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("weight:Q", format=".0%"),
        color=alt.condition("datum.weight > 0.5", alt.value("white"), alt.value("#1F1D2B")))
    size = max(240, 34 * len(matrix))
    return (cells + text).properties(width=size, height=size)


def metrics_tables(metrics: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(full-ranking table, sampled table): one row per model, columns HR@K, NDCG@K, MRR."""
    table = metrics_table(metrics)
    sampled = table.index.str.endswith("(sampled)")
    return table[~sampled], table[sampled].rename(index=lambda name: name.removesuffix(" (sampled)"))


def metrics_chart(full: pd.DataFrame, sampled: pd.DataFrame) -> alt.FacetChart:
    columns = list(full.columns)
    protocols = {"Full ranking": full, "Sampled (the true item against 100 random ones)": sampled}
    data = pd.concat([
        table.rename_axis("model").reset_index().melt(id_vars="model", var_name="metric").assign(protocol=protocol)
        for protocol, table in protocols.items()])
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("metric:N", sort=columns, title=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("model:N", sort=list(MODEL_COLORS)),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", title=None, scale=alt.Scale(domain=list(MODEL_COLORS),
                                                               range=list(MODEL_COLORS.values()))),
        tooltip=["model:N", "metric:N", alt.Tooltip("value:Q", format=".4f")],
    ).properties(width=820, height=200).facet(row=alt.Row("protocol:N", title=None, sort=list(protocols),
                                                          header=alt.Header(labelAngle=0, labelAlign="left",
                                                                            labelAnchor="start", labelOrient="top",
                                                                            labelFontSize=13)))


def breakdown_table(breakdown: pd.DataFrame, metric: str = "ndcg@10") -> pd.DataFrame:
    """One row per history-length group, one column per model."""
    table = breakdown.pivot(index=["group", "history", "users"], columns="model", values=metric)
    order = list(dict.fromkeys(breakdown["group"]))
    return table.reset_index().set_index("group").loc[order].reset_index()[
        ["group", "history", "users"] + [m for m in MODEL_COLORS if m in table.columns]]


def breakdown_chart(breakdown: pd.DataFrame, metric: str = "ndcg@10") -> alt.Chart:
    data = breakdown.assign(label=breakdown["group"] + " (" + breakdown["history"] + ")")
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("label:N", sort=list(dict.fromkeys(data["label"])), title=None,
                axis=alt.Axis(labelAngle=0, labelLimit=220, labelOverlap=False)),
        xOffset=alt.XOffset("model:N", sort=list(MODEL_COLORS)),
        y=alt.Y(f"{metric}:Q", title=metric.upper()),
        color=alt.Color("model:N", title=None, scale=alt.Scale(domain=list(MODEL_COLORS),
                                                               range=list(MODEL_COLORS.values()))),
        tooltip=["group:N", "history:N", "users:Q", "model:N", alt.Tooltip(f"{metric}:Q", format=".4f")],
    ).properties(height=260)


def embedding_chart(points: pd.DataFrame, colour_by: str) -> alt.Chart:
    colour = (alt.Color("category:N", title="category", scale=alt.Scale(scheme="tableau10"))
              if colour_by == "category" else
              alt.Color("popularity:Q", title="interactions", scale=alt.Scale(type="log", scheme="viridis")))
    return alt.Chart(points).mark_circle(size=28, opacity=0.75).encode(
        x=alt.X("x:Q", axis=None), y=alt.Y("y:Q", axis=None), color=colour,
        tooltip=["title:N", "category:N", alt.Tooltip("popularity:Q", format=","), "item_id:N"],
    ).properties(height=460).interactive()


def run_comparison(runs: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves: run, epoch, metric, value; summary: one row per run) for the runs (rundir.Run) given."""
    curves, rows = [], []
    for run in runs:
        name = run.name
        for epoch in run.metrics():
            for metric in ("loss", "valid_ndcg@10"):
                if metric in epoch:
                    curves.append({"run": name, "epoch": epoch["epoch"], "metric": metric, "value": epoch[metric]})
        config, status, test = run.config(), run.status(), run.test_metrics() or {}
        model, train = config.get("model", {}), config.get("train", {})
        rows.append({
            "run": name, "state": status.get("state"), "epochs": len(run.metrics()),
            "best valid NDCG@10": status.get("best_valid_ndcg@10"),
            **{label: test.get(key) for label, key in (("NDCG@10", "ndcg@10"), ("HR@10", "hr@10"), ("MRR", "mrr"),
                                                       ("sampled NDCG@10", "sampled_ndcg@10"))},
            "loss": train.get("loss"), "layers": model.get("num_blocks"), "heads": model.get("num_heads"),
            "d": model.get("hidden"), "maxlen": model.get("maxlen"),
            "minutes": (status.get("elapsed_seconds") or 0) / 60,
        })
    return pd.DataFrame(curves, columns=["run", "epoch", "metric", "value"]), pd.DataFrame(rows)


def curves_chart(curves: pd.DataFrame) -> alt.FacetChart:
    return alt.Chart(curves).mark_line(point=alt.OverlayMarkDef(size=20)).encode(
        x=alt.X("epoch:Q"), y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("run:N", title=None),
        tooltip=["run:N", "epoch:Q", "metric:N", alt.Tooltip("value:Q", format=".4f")],
    ).properties(width=400, height=240).facet(column=alt.Column("metric:N", title=None)).resolve_scale(y="independent")
