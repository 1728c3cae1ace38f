"""Charts and display tables: pure functions from data to Altair (or Plotly) charts and DataFrames.

Nothing here touches Streamlit, so every chart can be built and checked in a test.
"""

import math
import time

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..analysis import attention_table, prediction_focus
from ..evaluate import METRICS, evaluated_models, metrics_table
from ..explain import GRADIENT_STEPS, METHODS, SIGNALS
from ..export import Section
from ..inference import rank_changes
from ..rundir import INTERRUPTED
from ..schedule import duration  # noqa: F401 (the pages format durations through charts)
from ..summary import with_interval

STATE_COLORS = {"running": "blue", "finished": "green", "stopped": "orange", "failed": "red", INTERRUPTED: "gray",
                "queued": "violet"}


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


def progress_text(progress: dict, running: bool) -> str:
    """'epoch 12 of about 48 in the 10 min budget, step 300 of 704 · about 6 min left': where a
    run stands against its plan (progress.json), and, while it runs, how long it has left."""
    planned = progress.get("planned_epochs", progress["epochs"])
    if progress.get("ends_by_budget"):
        of = f"of about {math.ceil(planned)} in the {duration(progress['budget_seconds'])} budget"
    else:
        of = f"of {progress['epochs']}"
    text = f"epoch {progress['epoch']} {of}, step {progress['step']} of {progress['steps_per_epoch']}"
    if running and progress.get("eta_seconds", 0) >= 1:
        left = about(progress["eta_seconds"])
        text += (f" · {left} left" if progress.get("ends_by_budget") or "end_step" not in progress
                 else f" · up to {left.removeprefix('about ')} left, early stopping may end it sooner")
    return text


def estimate_text(result: dict, usual: dict | None = None) -> str:
    """What an estimate (estimate.py) says, in a sentence: per epoch, and what the time budget buys
    or how long the epoch limit takes; with `usual` (schedule.usual_progress at the epochs bought),
    where earlier runs on the data were by then."""
    per_epoch = about(result["epoch_seconds"]).removeprefix("about ")
    if result.get("time_budget_seconds"):
        epochs = result["epochs"]
        if epochs < result.get("epoch_limit", epochs + 1):
            by_then = "" if not usual else (
                f" Earlier runs on this data had reached {usual['share_of_best']:.0%} of their best validation "
                f"NDCG@10 by epoch {max(epochs, 0):.0f} ({usual['runs']} finished run{'s' * (usual['runs'] != 1)}).")
            return (f"**About {per_epoch} per epoch**: the {duration(result['time_budget_seconds'])} budget buys "
                    f"about {max(epochs, 0):.0f} epoch{'s' * (round(epochs) != 1)} and the test evaluation. "
                    "The learning rate decays to zero at the budget's end." + by_then)
        return (f"**About {per_epoch} per epoch**: all {result['epoch_limit']} epochs and the test evaluation fit "
                f"in the budget, {about(result['total_seconds'])} in all.")
    epochs = result["epochs"]
    return (f"**About {per_epoch} per epoch**, up to {about(result['total_seconds']).removeprefix('about ')} for "
            f"{epochs} epoch{'s' * (epochs > 1)} and the test evaluation. Early stopping usually ends a run sooner; "
            "a time budget bounds it.")


def short_duration(seconds: float | None) -> str:
    """'45s', '3m 05s', '2h 07m': for a metric's big digits, in a narrow column."""
    return "–" if seconds is None else duration(seconds).replace(" min", "m").replace(" h", "h").replace(" s", "s")


def about(seconds: float) -> str:
    """A rough duration: 'about 3 s', 'about 40 s', 'about 3 min', 'about 2 h 10 min'."""
    if seconds < 10:  # to the second: a small log's 1.3-s epoch is not "about 5 s"
        return f"about {max(1, round(seconds))} s"
    if seconds < 60:
        return f"about {round(seconds / 5) * 5} s"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min"
    return f"about {duration(round(seconds / 600) * 600)}"


def percent(probability: float) -> str:
    """'42%', '1.7%', '0.04%': enough digits that a probability over a big catalog is not '0%'."""
    if probability >= 0.1:
        return f"{probability:.0%}"
    return f"{probability:.1%}" if probability >= 0.001 else f"{probability:.2%}"


def first_checkpoint_eta(progress: dict, estimate: dict | None = None) -> str:
    """When a run in its first epoch writes its first checkpoint: from its progress so far, else
    from the estimate taken before it started, else without a time."""
    steps, step = progress.get("steps_per_epoch"), progress.get("step")
    if progress.get("epoch") == 1 and steps and step:
        seconds_per_step = progress.get("seconds_per_step") or \
            progress["eta_seconds"] / max(progress["epochs"] * steps - progress["global_step"], 1)  # a run from before
        return f"the first checkpoint comes at the end of epoch 1, in {about(seconds_per_step * (steps - step))}"
    if estimate and estimate.get("epoch_seconds"):
        return (f"the first checkpoint comes at the end of epoch 1, in {about(estimate['epoch_seconds'])} "
                "once the data is loaded")
    return "the first checkpoint comes at the end of epoch 1; the run is still loading its data"


# Epochs are whole numbers, and a value axis over one point (a one-epoch run) shows a few digits, not 9.055755.
EPOCH_AXIS = alt.Axis(tickMinStep=1, format="d")
VALUE_AXIS = alt.Axis(format=".3~f")


def loss_chart(progress: dict) -> alt.Chart:
    steps_per_epoch = max(progress.get("steps_per_epoch", 1), 1)
    curve = pd.DataFrame(progress.get("loss_curve") or [], columns=["step", "loss"])
    curve["epoch"] = curve["step"] / steps_per_epoch
    return alt.Chart(curve).mark_line().encode(
        alt.X("epoch:Q", title="epoch", axis=EPOCH_AXIS),
        alt.Y("loss:Q", scale=alt.Scale(zero=False), title=None, axis=VALUE_AXIS),
        tooltip=[alt.Tooltip("epoch:Q", format=".2f"), alt.Tooltip("loss:Q", format=".4f")],
    ).properties(height=240)


def validation_chart(metrics: list[dict]) -> alt.Chart:
    rows = [{"epoch": m["epoch"], "metric": name, "value": m[key]} for m in metrics
            for name, key in (("NDCG@10", "valid_ndcg@10"), ("HR@10", "valid_hr@10")) if key in m]
    return alt.Chart(pd.DataFrame(rows, columns=["epoch", "metric", "value"])).mark_line(point=True).encode(
        alt.X("epoch:Q", title="epoch", axis=EPOCH_AXIS), alt.Y("value:Q", title=None, axis=VALUE_AXIS),
        alt.Color("metric:N", legend=alt.Legend(orient="bottom", title=None)),  # below: never over the lines
        tooltip=["epoch:Q", "metric:N", alt.Tooltip("value:Q", format=".4f")],
    ).properties(height=240)


def device_label(device: str) -> str:
    """'the CPU', 'GPU 1', 'Apple's GPU'."""
    if device.startswith("cuda"):
        return f"GPU {device.partition(':')[2] or 0}"
    return {"cpu": "the CPU", "mps": "Apple's GPU"}.get(device, device)


def queue_start(seconds: float | None) -> str:
    """When a queued run should start: 'starts in about 4 min (14:05)'."""
    if seconds is None:
        return "starts when a run ahead of it ends (there is no time estimate for it)"
    if seconds < 5:
        return "starts in a moment"
    return f"starts in {about(seconds)} ({time.strftime('%H:%M', time.localtime(time.time() + seconds))})"


def queue_table(queue: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"place": entry["place"], "run": entry["name"], "device": device_label(entry["device"]),
                          "queued by": entry["user"], "queued": when(entry["queued"]),
                          "starts": queue_start(entry["starts_in"]).removeprefix("starts ")} for entry in queue])


def audit_table(entries: list[dict]) -> pd.DataFrame:
    """The audit log's entries as a table: when (UTC, as logged), who, what, which, and the rest."""
    rows = []
    for entry in entries:
        rest = {k: v for k, v in entry.items() if k not in ("when", "who", "what", "action", "dataset", "run")}
        rows.append({"when": str(entry.get("when", "?")).replace("T", " ").replace("Z", " UTC"), "who": entry.get("who"),
                     "what": f"refused: {entry.get('action')}" if entry.get("what") == "denied" else entry.get("what"),
                     "dataset": entry.get("dataset"), "run": entry.get("run"),
                     "details": ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rest.items())})
    return pd.DataFrame(rows, columns=["when", "who", "what", "dataset", "run", "details"])


def runs_table(summaries: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "name": s["name"], "dataset": s["dataset"], "status": s["state"],
        "best valid NDCG@10": s["best_valid_ndcg@10"], "test NDCG@10": s["test_ndcg@10"], "test HR@10": s["test_hr@10"],
        "duration": duration(s["duration_seconds"]), "device": s["device"], "started": when(s["started"]),
    } for s in summaries])


ACCENT, HIGHLIGHT = "#5B4BDB", "#E4572E"


MODEL_COLORS = {"SASRec": ACCENT, "EASE": "#2E9E8F", "Markov": "#F2A541", "Most popular": "#9AA0A6"}


def short(title: str, width: int = 24) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"


def _move_label(change: str) -> str:
    kind, _, steps = change.partition(" ")
    return {"new": "new", "same": "=", "up": f"▲ {steps}", "down": f"▼ {steps}"}[kind]


def prediction_table(items: pd.DataFrame, before: list[str] | None, target: str | None) -> pd.DataFrame:
    """The top-k as shown: rank, change since the last edit (if any), title, category,
    score, probability and, for a dataset user, whether it is the held-out next item."""
    table = items[["rank", "title", "category", "score", "probability"]].copy()
    if table["category"].isna().all():  # a catalog without categories
        table = table.drop(columns="category")
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
    """(full-ranking table, sampled table): one row per model, columns HR@K, NDCG@K, MRR (numbers, for the
    HTML report; the Evaluate page shows summary.metrics_table, with intervals)."""
    table = metrics_table(metrics)
    sampled = table.index.str.endswith("(sampled)")
    return table[~sampled], table[sampled].rename(index=lambda name: name.removesuffix(" (sampled)"))


def _model_colour(models=None) -> alt.Color:
    """Each model in its colour; the legend lists `models` (default: all of them)."""
    models = [m for m in MODEL_COLORS if models is None or m in set(models)]
    return alt.Color("model:N", title=None, scale=alt.Scale(domain=models, range=[MODEL_COLORS[m] for m in models]))


def _error_bars(y: str, y2: str, **encoding) -> alt.Chart:
    """Rules from y to y2 (an interval), drawn over bars or points that share the other encodings."""
    return alt.Chart().mark_rule(color="#1F1D2B", strokeWidth=1.2).encode(y=y, y2=y2, **encoding)


def metrics_chart(metrics: dict) -> alt.FacetChart:
    """Every model's HR@K, NDCG@K and MRR as bars with their 95 % intervals, full ranking above sampled."""
    protocols = {"Full ranking": "", "Sampled (the true item against 100 random ones)": "sampled_"}
    ci95 = metrics.get("ci95", {})
    rows = []
    for protocol, infix in protocols.items():
        for prefix, model in evaluated_models(metrics).items():
            for metric in METRICS:
                key = prefix + infix + metric
                if metrics.get(key) is not None:
                    low, high = ci95.get(key, (metrics[key], metrics[key]))
                    rows.append({"protocol": protocol, "model": model, "metric": metric.upper(),
                                 "value": metrics[key], "low": low, "high": high})
    data = pd.DataFrame(rows, columns=["protocol", "model", "metric", "value", "low", "high"])
    x = alt.X("metric:N", sort=[m.upper() for m in METRICS], title=None, axis=alt.Axis(labelAngle=0))
    offset = alt.XOffset("model:N", sort=list(MODEL_COLORS))
    tooltip = ["model:N", "metric:N", alt.Tooltip("value:Q", format=".4f"),
               alt.Tooltip("low:Q", format=".4f", title="95 % from"), alt.Tooltip("high:Q", format=".4f", title="to")]
    bars = alt.Chart().mark_bar().encode(
        x=x, xOffset=offset,
        # Each protocol on its own scale: full-ranking values of 0.02-0.05 would be invisible on 0-1.
        y=alt.Y("value:Q", title=None, axis=alt.Axis(format=".2~f", tickCount=4)),
        color=_model_colour(data["model"]), tooltip=tooltip)
    return alt.layer(bars, _error_bars("low:Q", "high:Q", x=x, xOffset=offset, tooltip=tooltip), data=data).properties(
        width=820, height=200).facet(row=alt.Row("protocol:N", title=None, sort=list(protocols), header=alt.Header(
            labelAngle=0, labelAlign="left", labelAnchor="start", labelOrient="top", labelFontSize=13))
    ).resolve_scale(y="independent")


def breakdown_chart(breakdown: pd.DataFrame, models: list[str] | None = None, metric: str = "ndcg@10") -> alt.LayerChart:
    """One breakdown (breakdowns.py, rows of one "by"): each group's metric per model, as bars with 95 % intervals."""
    # Two-line labels ("short" over "1–3 items"), so that they fit under their bars in a narrow column.
    data = breakdown[breakdown["model"].isin(models)] if models else breakdown
    data = data.assign(label=data["group"] + "|" + data["span"])
    if f"{metric}_low" not in data:
        data = data.assign(**{f"{metric}_low": data[metric], f"{metric}_high": data[metric]})
    x = alt.X("label:N", sort=list(dict.fromkeys(data["label"])), title=None,
              axis=alt.Axis(labelAngle=0, labelLimit=160, labelExpr="split(datum.label, '|')", labelPadding=6,
                            labelOverlap=False))
    offset = alt.XOffset("model:N", sort=list(MODEL_COLORS))
    tooltip = ["group:N", "span:N", "users:Q", "model:N", alt.Tooltip(f"{metric}:Q", format=".4f"),
               alt.Tooltip(f"{metric}_low:Q", format=".4f", title="95 % from"),
               alt.Tooltip(f"{metric}_high:Q", format=".4f", title="to")]
    bars = alt.Chart().mark_bar().encode(x=x, xOffset=offset, y=alt.Y(f"{metric}:Q", title=metric.upper()),
                                         color=_model_colour(data["model"]), tooltip=tooltip)
    return alt.layer(bars, _error_bars(f"{metric}_low:Q", f"{metric}_high:Q", x=x, xOffset=offset, tooltip=tooltip),
                     data=data).properties(height=260)


TRADEOFF_AXES = {  # metric -> (its button, its axis title)
    "avg_popularity@10": ("average popularity", "average popularity of the top 10 (training users per item)"),
    "long_tail@10": ("long-tail share", "long-tail share of the top 10"),
    "novelty@10": ("novelty", "novelty of the top 10 (bits)")}


def tradeoff_chart(points: pd.DataFrame, x: str = "avg_popularity@10") -> alt.LayerChart:
    """NDCG@10 against a beyond-accuracy metric (TRADEOFF_AXES), each with its 95 % interval: every model and
    baseline (summary.tradeoff_points), and the run's snapshots joined in epoch order."""
    share = x == "long_tail@10"
    x_axis = alt.X(f"{x}:Q", title=TRADEOFF_AXES[x][1], scale=alt.Scale(zero=False),
                   axis=alt.Axis(format=".0%" if share else "~s"))
    y_axis = alt.Y("ndcg@10:Q", title="NDCG@10", scale=alt.Scale(zero=False), axis=alt.Axis(format=".3~f"))
    tooltip = [alt.Tooltip("name:N", title="model"), alt.Tooltip("users:Q", format=",", title="test users"),
               alt.Tooltip("ndcg@10:Q", format=".4f"), alt.Tooltip("ndcg@10_low:Q", format=".4f", title="95 % from"),
               alt.Tooltip("ndcg@10_high:Q", format=".4f", title="to"),
               alt.Tooltip(f"{x}:Q", format=".1%" if share else ".2f", title=x.removesuffix("@10").replace("_", " ")),
               alt.Tooltip(f"{x}_low:Q", format=".1%" if share else ".2f", title="95 % from "),
               alt.Tooltip(f"{x}_high:Q", format=".1%" if share else ".2f", title="to ")]
    colour = _model_colour(points["model"])
    snapshots = points[points["kind"] == "snapshot"]
    path = alt.Chart(snapshots).mark_line(color=ACCENT, strokeDash=[4, 3], opacity=0.6, point=False).encode(
        x=x_axis, y=y_axis, order="epoch:Q")
    dots = alt.Chart(points).mark_point(filled=True, size=90, opacity=1).encode(
        x=x_axis, y=y_axis, color=colour, tooltip=tooltip,
        shape=alt.Shape("kind:N", title=None, scale=alt.Scale(domain=["model", "baseline", "snapshot"],
                                                               range=["circle", "square", "triangle-up"])))
    labels = alt.Chart(points).mark_text(align="left", dx=7, dy=-7, fontSize=11, color="#1F1D2B").encode(
        x=x_axis, y=y_axis, text="label:N")
    vertical = alt.Chart(points).mark_rule(opacity=0.5).encode(x=x_axis, y="ndcg@10_low:Q", y2="ndcg@10_high:Q",
                                                                 color=colour)
    horizontal = alt.Chart(points).mark_rule(opacity=0.5).encode(x=f"{x}_low:Q", x2=f"{x}_high:Q", y=y_axis,
                                                                   color=colour)
    return (path + vertical + horizontal + dots + labels).properties(height=380)


EMBEDDING_POINTS = 100_000  # the most the embedding map draws (WebGL keeps this many responsive)
PALETTE = ["#5B4BDB", "#E4572E", "#2E9E8F", "#F2A541", "#8E44AD", "#3D7DD8", "#C2185B", "#7CB342", "#6D4C41",
           "#00ACC1"]


def embedding_points_shown(points: pd.DataFrame, most: int = EMBEDDING_POINTS) -> pd.DataFrame:
    """The points the map draws: all of them, or the `most` most popular."""
    return points if len(points) <= most else points.nlargest(most, "popularity")


def has_categories(points: pd.DataFrame) -> bool:
    return "category" in points and points["category"].notna().any()


def embedding_figure(points: pd.DataFrame, colour_by: str) -> go.Figure:
    """The item embedding map as a Plotly WebGL scatter (a hundred thousand points stay smooth),
    with each item's title, category, popularity and id on hover. Coloured by category (the ten
    largest, the rest grey as "other") or by popularity on a log scale.

    One trace per category either way, so that a point's category is its trace's name, and every
    per-point array is numeric or fixed-width text: Plotly serialises those quickly (object
    arrays and per-point hover strings took seconds for 100,000 points)."""
    category = points["category"].astype("string") if has_categories(points) else None
    popularity = points["popularity"].astype("float64").fillna(0).to_numpy()
    titles = points["title"].astype("string").fillna("").str.slice(0, 80).to_numpy(dtype=str)
    ids = points["item_id"].astype("string").to_numpy(dtype=str)
    x, y = points["x"].to_numpy(dtype=np.float32), points["y"].to_numpy(dtype=np.float32)
    by_category = colour_by == "category" and category is not None
    if category is None:
        groups, names = np.zeros(len(points), dtype=int), [""]
    else:
        largest = list(category.value_counts().index[:len(PALETTE)])
        kept = category.where(category.isin(largest), "other").fillna("other").to_numpy(dtype=str)
        names = [name for name in [*largest, "other"] if (kept == name).any()]
        groups = pd.Categorical(kept, categories=names).codes
    colours = dict(zip(names, PALETTE)) | {"other": "#B0B4BA"}
    logs = np.log10(popularity + 1).astype(np.float32)
    hover = ("<b>%{text}</b><br>" + ("%{fullData.name}<br>" if category is not None else "")
             + "%{customdata:,} interactions<br>id %{hovertext}<extra></extra>")
    figure = go.Figure()
    for group, name in enumerate(names):
        chosen = groups == group
        marker = {"size": 5, "opacity": 0.75}
        marker |= {"color": colours[name]} if by_category else {"color": logs[chosen], "coloraxis": "coloraxis"}
        figure.add_trace(go.Scattergl(x=x[chosen], y=y[chosen], text=titles[chosen], hovertext=ids[chosen],
                                      customdata=popularity[chosen].astype(np.int64), name=name or "items",
                                      mode="markers", marker=marker, hovertemplate=hover, showlegend=by_category))
    ticks = [t for t in (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000) if t <= max(popularity.max(), 1) * 10]
    figure.update_layout(height=480, margin={"l": 0, "r": 0, "t": 10, "b": 0}, dragmode="pan", hovermode="closest",
                         legend={"itemsizing": "constant", "title": {"text": "category"}},
                         xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"},
                         plot_bgcolor="white")
    if not by_category:
        figure.update_layout(coloraxis={"colorscale": "Viridis", "colorbar": {
            "title": {"text": "interactions"}, "tickvals": np.log10(np.array(ticks) + 1).tolist(),
            "ticktext": [f"{t:,}" for t in ticks]}})
    return figure


def run_comparison(runs: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves: run, epoch, metric, value; summary: one row per run) for the runs (rundir.Run) given."""
    curves, rows = [], []
    for run in runs:
        name = run.name
        for epoch in run.metrics():
            for metric in ("loss", "valid_ndcg@10"):
                if metric in epoch:
                    curves.append({"run": name, "epoch": epoch["epoch"], "metric": metric, "value": epoch[metric]})
        config, status, test, metrics = run.config(), run.status(), run.test_metrics() or {}, run.metrics()
        model, train = config.get("model", {}), config.get("train", {})
        rows.append({
            "run": name, "state": run.state(), "epochs": len(metrics),
            # from the validations themselves: a run stopped before its first has none (not -1)
            "best valid NDCG@10": max((m["valid_ndcg@10"] for m in metrics if "valid_ndcg@10" in m), default=None),
            **{label: with_interval(test.get(key), test.get("ci95", {}).get(key))
               for label, key in (("NDCG@10", "ndcg@10"), ("HR@10", "hr@10"), ("MRR", "mrr"),
                                  ("sampled NDCG@10", "sampled_ndcg@10"))},
            "loss": train.get("loss"),
            # one column for the shape, so that the table fits the page's width
            "model": (f"{model.get('num_blocks')}×{model.get('num_heads')}, d {model.get('hidden')}, "
                      f"last {model.get('maxlen')}") if model else None,
            "minutes": (status.get("elapsed_seconds") or 0) / 60,
        })
    return pd.DataFrame(curves, columns=["run", "epoch", "metric", "value"]), pd.DataFrame(rows)


def curves_chart(curves: pd.DataFrame) -> alt.FacetChart:
    return alt.Chart(curves).mark_line(point=alt.OverlayMarkDef(size=20)).encode(
        x=alt.X("epoch:Q", axis=EPOCH_AXIS), y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False), axis=VALUE_AXIS),
        color=alt.Color("run:N", title=None),
        tooltip=["run:N", "epoch:Q", "metric:N", alt.Tooltip("value:Q", format=".4f")],
    ).properties(width=400, height=240).facet(column=alt.Column("metric:N", title=None)).resolve_scale(y="independent")


# Why this prediction: removal effects, a second model, snapshots, and the report to hand out

EFFECT_VIEW = "Removal effect"
GRADIENT_VIEW = "Gradient (IG)"
DISAGREE_NOTE = ("Attention says where the prediction looks; the removal effect says what an item changes. They can "
                 "disagree: an item looked at can change little (another item carries the same signal), and an item "
                 "barely looked at can matter (through the residual path or an earlier layer). Trust the effect for "
                 "\"why\", and attention for \"how\".")


def why_chart(effects: pd.DataFrame, focus: int | None) -> alt.Chart:
    """How much each history item supports the prediction: the probability it loses when the item
    is removed (explain.removal_effects). Bars are selectable (selection "item", field position)."""
    data, labels = _labelled(effects, effects, "position")
    data = data.assign(lost=-data["probability_change"],
                       supports=np.where(data["probability_change"] < 0, "supports it", "holds it back"))
    return alt.Chart(data).mark_bar().encode(
        y=alt.Y("position_label:O", sort=labels, title=None, axis=alt.Axis(labelLimit=190, labelOverlap=False)),
        x=alt.X("lost:Q", title="probability lost without the item", axis=alt.Axis(format=".1~%", tickCount=4)),
        color=alt.condition(_in_focus(focus, "position"), alt.value(HIGHLIGHT),
                            alt.Color("supports:N", title=None, legend=None,
                                      scale=alt.Scale(domain=["supports it", "holds it back"],
                                                      range=[ACCENT, "#9AA0A6"]))),
        tooltip=[alt.Tooltip("title:N"), alt.Tooltip("position:Q"), alt.Tooltip("supports:N", title="the item"),
                 alt.Tooltip("lost:Q", format=".1%", title="probability lost without it"),
                 alt.Tooltip("rank_without:Q", title="its rank without it"),
                 alt.Tooltip("top_title:N", title="first without it")],
    ).properties(height=alt.Step(20)).add_params(
        alt.selection_point(name="item", fields=["position"]))


def focus_and_effect_bars(focus_table: pd.DataFrame, effects: pd.DataFrame, shown: pd.DataFrame,
                          focus: int | None, panel_width: int = 95) -> alt.FacetChart:
    """The last position's attention (the views of analysis.prediction_focus given: layers, rollout),
    the removal effect and, where `effects` has them, the integrated gradients, side by side on the
    same item axis. A gradient bar is the item's share of all the attribution (its attribution over
    the sum of their sizes), so that every panel reads in percent. Bars are selectable (selection
    "item", field position)."""
    attention = focus_table.rename(columns={"weight": "value"}).assign(measure="attention weight")
    panels = [attention, effects[["position", "item_id", "title"]].assign(
        view=EFFECT_VIEW, value=-effects["probability_change"], measure="probability lost without it")]
    if "gradient" in effects:
        total = max(float(effects["gradient"].abs().sum()), 1e-12)
        panels.append(effects[["position", "item_id", "title"]].assign(
            view=GRADIENT_VIEW, value=effects["gradient"] / total, measure="share of the attribution (IG)"))
    data, labels = _labelled(pd.concat(panels, ignore_index=True), shown, "position")
    views = list(dict.fromkeys(data["view"]))
    return alt.Chart(data).mark_bar().encode(
        y=alt.Y("position_label:O", sort=labels, title=None, axis=alt.Axis(labelLimit=160, labelOverlap=False)),
        x=alt.X("value:Q", title=None, axis=alt.Axis(format=".1~%", tickCount=3)),
        color=alt.when(_in_focus(focus, "position")).then(alt.value(HIGHLIGHT)).when("datum.value < 0").then(
            alt.value("#9AA0A6")).otherwise(alt.value(ACCENT)),
        tooltip=[alt.Tooltip("title:N"), alt.Tooltip("position:Q"), alt.Tooltip("view:N"),
                 alt.Tooltip("value:Q", format=".1%"), alt.Tooltip("measure:N")],
    ).properties(width=panel_width, height=max(120, 17 * len(shown))).add_params(
        alt.selection_point(name="item", fields=["position"])
    ).facet(column=alt.Column("view:N", sort=views, title=None, header=alt.Header(labelFontSize=13)),
            spacing=12).resolve_scale(x="independent")


def gradient_sentence(target: dict, effects: pd.DataFrame) -> str:
    """How the integrated gradients add up: completeness, checked in the open."""
    total, rise = effects["gradient"].sum(), target["score"] - target["baseline_score"]
    strongest = effects.loc[effects["gradient"].idxmax()]
    return (f"Gradient: integrated gradients of {target['title']}'s score along the path from the padding embedding "
            f"to each item's ({GRADIENT_STEPS} steps in one batch). They add up to {total:+.2f}; the score is {rise:+.2f} "
            f"above that baseline. The largest, {strongest['gradient']:+.2f}, is {strongest['title']}'s.")


def why_sentence(target: dict, effects: pd.DataFrame) -> str:
    """One line on the item that matters most, e.g. 'Without Winter Attic S1E2 (position 4), Winter
    Attic S1E3 falls from 84% to 34% (rank 1 → 2), and Hollow Crypt comes first.'"""
    strongest = effects.loc[effects["probability_change"].idxmin()]
    if strongest["probability_change"] >= 0:
        return f"No single item of the history supports {target['title']}: removing any one raises its probability."
    after = target["probability"] + strongest["probability_change"]
    rank = (f"rank {target['rank']} → {strongest['rank_without']}" if strongest["rank_change"] else
            f"still rank {target['rank']}")
    first = "" if strongest["top_item_id"] == target["item_id"] else f", and {strongest['top_title']} comes first"
    return (f"Without {strongest['title']} (position {strongest['position']}), {target['title']} falls from "
            f"{target['probability']:.0%} to {after:.0%} ({rank}){first}.")


def agreement_table(agreement: dict) -> pd.DataFrame:
    """explain.attention_effect_agreement as rows: what points to an item, and how often it is the item that matters most."""
    names = [name for name in SIGNALS if name in agreement["rates"]]  # a run from before the gradient has no rate for it
    return pd.DataFrame({"signal": [SIGNALS[name] for name in names],
                         "agreement": [agreement["rates"][name] for name in names]})


def three_way_table(agreement: dict) -> pd.DataFrame | None:
    """Attention, removal and gradient compared (explain.attention_effect_agreement's "agreement"): for
    each pair, the share of users for whom both name the same item, as a symmetric table with the
    method names as index and columns (1 on the diagonal); None for a run from before the gradient."""
    pairs = agreement.get("agreement")
    if not pairs:
        return None
    labels = list(METHODS.values())
    table = pd.DataFrame(np.eye(len(METHODS)), index=labels, columns=labels)
    for pair, share in pairs.items():
        if "|" in pair:
            first, second = (METHODS[name] for name in pair.split("|"))
            table.loc[first, second] = table.loc[second, first] = share
    return table


def head_importance_table(importance: dict) -> pd.DataFrame:
    """insights.head_importance as one row per layer, one column per head and one for the whole layer:
    the drop in validation NDCG@10 when that is switched off."""
    masked = pd.DataFrame(importance["masked"])
    masked["switched off"] = [f"Head {int(h)}" if pd.notna(h) else "Whole layer" for h in masked["head"]]
    table = masked.pivot(index="layer", columns="switched off", values="drop")
    columns = sorted((c for c in table.columns if c != "Whole layer"), key=lambda c: int(c.split()[1]))
    return table[columns + ["Whole layer"]].rename(index=lambda layer: f"Layer {layer}")


def head_importance_chart(importance: dict) -> alt.LayerChart:
    """The drop in validation NDCG@10 with each head, and each whole layer, switched off, as a heatmap
    of layers × heads with the drop written in each cell, relative to the full model's NDCG@10."""
    full = importance["ndcg@10"]
    table = head_importance_table(importance)
    data = table.rename_axis(index="layer", columns="off").stack().rename("drop").reset_index()
    data["relative"] = data["drop"] / full if full else 0.0
    data["ndcg"] = full - data["drop"]
    limit = max(float(data["relative"].abs().max()), 1e-6)
    base = alt.Chart(data).encode(
        x=alt.X("off:N", sort=list(table.columns), title="switched off", axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("layer:N", sort=list(table.index), title=None))
    cells = base.mark_rect(stroke="white").encode(
        # no legend: each cell says its value
        color=alt.Color("relative:Q", legend=None,
                        scale=alt.Scale(scheme="purpleorange", reverse=True, domain=[-limit, limit])),
        tooltip=["layer:N", alt.Tooltip("off:N", title="switched off"),
                 alt.Tooltip("ndcg:Q", format=".4f", title="NDCG@10 without it"),
                 alt.Tooltip("drop:Q", format="+.4f", title="NDCG@10 lost"),
                 alt.Tooltip("relative:Q", format="+.1%", title="share of NDCG@10 lost")])
    text = base.mark_text(fontSize=12).encode(
        text=alt.Text("relative:Q", format="+.1%"),
        color=alt.condition(f"abs(datum.relative) > {limit * 0.6}", alt.value("white"), alt.value("#1F1D2B")))
    # Sizes per cell: Streamlit draws a small layered chart of fixed height at a fraction of it.
    return (cells + text).properties(width=alt.Step(110), height=alt.Step(44))


def counterfactual_sentence(found, k: int) -> str:
    """What counterfactual.search found, in one line: the edits, and what they do."""
    what = "; ".join(_edit_words(edit) for edit in found.edits.itertuples())
    before, after = found.before, found.after
    if found.goal == "flip":
        if not found.found:
            return (f"No change of up to {found.steps} edits found puts another item before **{before['title']}**; "
                    f"the closest ({what}) still puts **{after['title']}** first.")
        return (f"{what[0].upper()}{what[1:]}: **{after['title']}** comes first ({percent(after['probability'])}) "
                f"instead of **{before['title']}** ({percent(before['probability'])}).")
    if not len(found.edits):
        return f"**{before['title']}** is already at rank {before['rank']}, in the top {k}."
    if not found.found:
        return (f"No change of up to {found.steps} edits found brings **{before['title']}** into the top {k}; the "
                f"closest ({what}) moves it from rank {before['rank']} to {after['rank']}.")
    return f"{what[0].upper()}{what[1:]}: **{before['title']}** moves from rank {before['rank']} to {after['rank']}."


def _edit_words(edit) -> str:
    if edit.kind == "remove":
        return f"remove {edit.title} (position {edit.position})"
    if edit.kind == "replace":
        return f"replace {edit.title} (position {edit.position}) by {edit.replacement_title}"
    return f"move {edit.title} (position {edit.position}) to the end"


NOT_IN_OTHER = "–"


def side_by_side(first: pd.DataFrame, second: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Two models' top-k (Recommendation.items) as shown side by side: rank, title, probability, the
    item's rank in the other list ("–" when it is not there, which marks the items that differ);
    and how many items the two lists share."""
    def table(items, other):
        ranks = dict(zip(other["item_id"], other["rank"]))
        shown = items[["rank", "title", "probability"]].copy()
        shown["other rank"] = [str(ranks[item]) if item in ranks else NOT_IN_OTHER for item in items["item_id"]]
        return shown

    return table(first, second), table(second, first), len(set(first["item_id"]) & set(second["item_id"]))


def overlap_sentence(shared: int, first: pd.DataFrame, second: pd.DataFrame) -> str:
    k = max(len(first), len(second))
    same_top = len(first) and len(second) and first["item_id"].iloc[0] == second["item_id"].iloc[0]
    return (f"The two top-{k} lists share {shared} of {k} items ({shared / max(k, 1):.0%}); "
            f"{'the same' if same_top else 'a different'} item comes first.")


def best_epoch(metrics: list[dict]) -> int | None:
    """The epoch of best.safetensors: the first with the highest validation NDCG@10."""
    validated = [m for m in metrics if m.get("valid_ndcg@10") is not None]
    return max(validated, key=lambda m: m["valid_ndcg@10"])["epoch"] if validated else None


def checkpoint_labels(snapshots: list[int], metrics: list[dict], running: bool) -> dict[str, str]:
    """The weights a run can be looked at with, by checkpoint name, in epoch order: its snapshots
    ("epoch-0004": "epoch 4") and its current weights ("": the latest while it trains, else the
    best), each epoch once."""
    if running:
        epoch = metrics[-1]["epoch"] if metrics else None
        current = f"latest: epoch {epoch}" if epoch else "latest"
    else:
        epoch = best_epoch(metrics) or (metrics[-1]["epoch"] if metrics else None)
        current = f"best: epoch {epoch}" if epoch else "best"
    by_epoch = {e: (f"epoch-{e:04d}", f"epoch {e}") for e in snapshots if e != epoch}
    by_epoch[epoch if epoch is not None else float("inf")] = ("", current)
    return dict(by_epoch[e] for e in sorted(by_epoch))


def _percent(values) -> list[str]:
    return [f"{value:.1%}" for value in values]


def _spec(chart) -> dict:
    with alt.data_transformers.enable("default", max_rows=None):  # inline the data, however long
        return chart.to_dict()


def report_sections(*, model_name: str, history_length: int, result, explanation, metrics: dict | None,
                    second: tuple[str, object] | None = None, heads_off=(), counterfactual=None, k: int = 10) -> list:
    """The sections of the HTML report (export.render_html): the history, the heads switched off if
    any, the predictions, why the top one (with integrated gradients where the explanation has
    them), what the prediction looks at, attention layer by layer, the smallest change found if
    there is one, a second model if there is one, and the run's test metrics against the
    baselines. result: inference.Recommendation; explanation: explain.Explanation of its top
    item; second: (its name, its Recommendation); heads_off: 0-based (layer, head) pairs;
    counterfactual: counterfactual.Counterfactual, for a top k of `k`."""
    shown = result.history
    read = len(shown)
    history = shown[["position", "title", "category", "item_id"]]
    sections = [Section("The history", [f"{history_length} items, oldest first." + (
        f" The model reads the last {read}; those are listed." if read < history_length else "")], history)]
    if heads_off:
        sections.append(Section("Heads switched off", [
            "Everything below is the model with these attention heads switched off: their output is zeroed before "
            "the heads are mixed, the rest of the model is unchanged."],
            pd.DataFrame({"layer": [layer + 1 for layer, _ in heads_off], "head": [head + 1 for _, head in heads_off]})))
    predictions = result.items[["rank", "title", "category", "probability", "score", "item_id"]].assign(
        probability=_percent(result.items["probability"]))
    sections.append(Section("What the model predicts next", [
        "Probability: the model's softmax over every item not in the history. Score: its raw logit."], predictions))

    target, effects = explanation.target, explanation.effects
    lost = effects.assign(**{"probability without it": _percent(target["probability"] + effects["probability_change"]),
                             "probability_change": [f"{change * 100:+.1f} points" for change in effects["probability_change"]]})
    sections.append(Section(
        f"Why {target['title']}?",
        [f"Each item of the history was removed in turn and the history scored again. {why_sentence(target, effects)}",
         "A bar is the probability the prediction loses without that item; grey bars are items that hold it back.",
         *([gradient_sentence(target, effects)] if "gradient" in effects else [])],
        lost[["position", "title", "probability without it", "probability_change", "rank_without", "top_title"]].rename(
            columns={"probability_change": "change", "rank_without": "rank without it",
                     "top_title": "first without it"}),
        [_spec(why_chart(effects, None).properties(width=560))]))
    sections.append(Section("What the prediction looks at", [
        "The last position's attention in each layer (heads averaged), the rollout through all layers, and the "
        "removal effect, on the same items.", DISAGREE_NOTE],
        charts=[_spec(focus_and_effect_bars(prediction_focus(shown, result.attention), effects, shown, None))]))
    table = attention_table(shown, result.attention)
    sections.append(Section("Attention, layer by layer", [
        "Rows attend to columns; a causal model only looks back. One heatmap per head."],
        charts=[_spec(attention_heatmap(table[table["layer"] == layer], shown, None).properties(title=f"Layer {layer}"))
                for layer in range(1, result.attention.shape[0] + 1)]))
    if counterfactual is not None:
        sections.append(Section("The smallest change found", [
            counterfactual_sentence(counterfactual, k).replace("**", ""),
            f"A beam search over removals, replacements by similar items and moves to the end; {counterfactual.candidates} "
            "edited histories were scored. The edited history, with what changed:"],
            counterfactual.edited[["position", "title", "category", "change"]]))
    if second is not None:
        name, other = second
        first_table, second_table, shared = side_by_side(result.items, other.items)
        both = pd.DataFrame({"rank": first_table["rank"], model_name: first_table["title"],
                             "probability": _percent(first_table["probability"])})
        both = both.join(pd.DataFrame({name: second_table["title"],
                                       f"{name} probability": _percent(second_table["probability"])}), how="outer")
        sections.append(Section(f"A second model: {name}", [overlap_sentence(shared, result.items, other.items)],
                                both))
    if metrics:
        full, _ = metrics_tables(metrics)
        who = f"each of {metrics['users']:,} test users" if metrics.get("users") else "each test user"
        sections.append(Section("How good the model is", [
            f"The true next item of {who}, ranked against every item "
            "(already-watched items excluded), for SASRec and the baselines: the most popular items, a Markov "
            "chain of item-to-item transitions and, where the catalog allows, EASE, a linear item-item model. "
            "Higher is better."], full.rename_axis("model").reset_index()))
    else:
        sections.append(Section("How good the model is", ["This run has no test metrics yet: they are written "
                                                          "once training has ended."]))
    return sections
