"""What a run's evaluation says, as tables and sentences: the same words on the Evaluate page and
from `python -m sasrec evaluate`. Reads only the stored test metrics (report.py)."""

import pandas as pd

from . import stats
from .beyond import NAMES as BEYOND_NAMES
from .beyond import TRADEOFF
from .evaluate import METRICS, MODELS, evaluated_models

HEADLINE = "ndcg@10"  # the metric the sentences are about


def with_interval(value, interval, digits: int = 4, percent: bool = False) -> str:
    """'0.0529 (0.0511–0.0547)', or '73.1% (71.6–74.6%)' for a share; '–' for no value."""
    if value is None or value != value:
        return "–"
    if percent:
        low, high = interval or (value, value)
        return f"{value:.1%} ({low * 100:.1f}–{high:.1%})"
    if interval is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({interval[0]:.{digits}f}–{interval[1]:.{digits}f})"


def metrics_table(metrics: dict, sampled: bool = False) -> pd.DataFrame:
    """One row per metric (HR@K, NDCG@K, MRR), one column per model, each cell 'value (low–high)': full
    ranking, or the sampled protocol. Models are columns so that four fit side by side."""
    ci95 = metrics.get("ci95", {})
    columns = {}
    for prefix, name in evaluated_models(metrics).items():
        key = prefix + ("sampled_" if sampled else "")
        columns[name] = {m.upper(): with_interval(metrics.get(key + m), ci95.get(key + m)) for m in METRICS}
    return pd.DataFrame(columns)


def beyond_table(metrics: dict) -> pd.DataFrame:
    """One row per model: coverage, average popularity, long-tail share, novelty and (with categories)
    diversity of its top-10 lists, each 'value (low–high)'."""
    ci95 = metrics.get("ci95", {})
    rows = {}
    for prefix, name in evaluated_models(metrics).items():
        row = {}
        for metric, label in BEYOND_NAMES.items():
            key = f"{prefix}{metric}@10"
            if key in metrics:
                share = metric in ("coverage", "long_tail", "diversity")
                digits = 1 if metric == "avg_popularity" else 2
                row[label] = with_interval(metrics[key], ci95.get(key), digits=digits, percent=share)
        rows[name] = row
    return pd.DataFrame(rows).T


def verdict(metrics: dict, baseline: str, metric: str = HEADLINE) -> str:
    """One sentence on SASRec against one baseline (its prefix, e.g. "markov_"): how far apart they are,
    the interval of the difference, the p-value, and whether that is more than noise."""
    test = metrics.get("versus", {}).get(baseline.removesuffix("_"), {}).get(metric)
    name = MODELS[baseline]
    if test is None:
        return f"SASRec against {name}: no paired test stored."
    difference, (low, high) = test["difference"], test["ci95"]
    direction = "higher" if difference > 0 else "lower"
    words = (f"SASRec's {metric.upper()} is {abs(difference):.4f} {direction} than {name}'s (95 % interval of the "
             f"difference {low:+.4f} to {high:+.4f}, {stats.p_text(test['p_value'])})")
    if test["significant"]:
        return words + ": a real difference, not noise."
    return words + ": not significant; on these users the two cannot be told apart."


def best_baseline(metrics: dict, metric: str = HEADLINE) -> str | None:
    """The prefix of the baseline with the highest `metric`, or None."""
    found = {prefix: metrics[prefix + metric] for prefix in evaluated_models(metrics) if prefix}
    return max(found, key=found.get) if found else None


def ease_note(metrics: dict) -> tuple[str, str]:
    """(kind, sentence) about EASE: kind "absent" (with the reason), "wins" (EASE's NDCG@10 is higher than
    SASRec's: said plainly), or "fitted"."""
    ease = metrics.get("ease") or {}
    if not ease.get("computed"):
        return "absent", (ease.get("reason") or "EASE was not fitted for this run (it predates EASE).") + "."
    searched = (f", searched on the {ease['searched_items']:,} most popular items"
                if ease.get("searched_items", 0) < metrics.get("items", float("inf")) else "")
    chosen = (f"λ = {ease['lambda']:g}, the best of {len(ease['validation_ndcg@10'])} values on "
              f"{ease['validation_users']:,} validation users{searched}"
              + (f"; fitted for run {ease['reused_from']} on the same data" if ease.get("reused_from") else ""))
    if metrics.get("ease_" + HEADLINE, 0) > metrics.get(HEADLINE, 0):
        test = metrics.get("versus", {}).get("ease", {}).get(HEADLINE, {})
        how = ("significantly" if test.get("significant") else "though not significantly")
        return "wins", (f"EASE, a non-sequential linear model, beats SASRec on this data, {how}: NDCG@10 "
                        f"{metrics['ease_' + HEADLINE]:.4f} against {metrics[HEADLINE]:.4f} ({chosen}).")
    return "fitted", f"EASE: {chosen}."


def breakdown_table(breakdown: pd.DataFrame, models: list[str], metric: str = HEADLINE) -> pd.DataFrame:
    """One row per group of one breakdown (report's breakdown.parquet, filtered to one "by"): group, span,
    users, and each model's metric 'value (low–high)'."""
    table = breakdown[breakdown["model"].isin(models)].copy()
    table["cell"] = [with_interval(v, (lo, hi)) for v, lo, hi in
                     zip(table[metric], table[f"{metric}_low"], table[f"{metric}_high"])]
    wide = table.pivot(index=["group", "span", "users"], columns="model", values="cell")
    order = list(dict.fromkeys(table["group"]))
    return wide.reset_index().set_index("group").loc[order].reset_index()[["group", "span", "users", *models]]


def comparison_sentence(compared: dict) -> str:
    """report.compare_runs in words: the NDCG@10 difference and its test, and the lists' overlap."""
    test = compared["ndcg@10"]
    words = (f"{compared['first']} against {compared['second']} on the same {compared['users']:,} test users: NDCG@10 "
             f"{test['first']:.4f} against {test['second']:.4f}, a difference of {test['difference']:+.4f} "
             f"(95 % interval {test['ci95'][0]:+.4f} to {test['ci95'][1]:+.4f}, {stats.p_text(test['p_value'])}): "
             + ("significant" if test["significant"] else "not significant"))
    overlap = compared["overlap@10"]
    return words + (f". Their top-10 lists share {overlap['mean']:.0%} of their items on average (Jaccard, "
                    f"{overlap['ci95'][0]:.0%}–{overlap['ci95'][1]:.0%}).")


def tradeoff_points(metrics: dict, best_epoch: int | None = None) -> pd.DataFrame:
    """The trade-off chart's points: every model and baseline on all test users, and each snapshot of the
    run (report.snapshot_points, on a sample of them), with NDCG@10 and the per-user beyond-accuracy
    metrics, each with columns NAME_low and NAME_high for its interval."""
    ci95 = metrics.get("ci95", {})
    names = ["ndcg@10", *(f"{metric}@10" for metric in TRADEOFF)]
    rows = []
    for prefix, model in evaluated_models(metrics).items():
        label = model if prefix or best_epoch is None else f"SASRec (epoch {best_epoch})"
        row = {"name": label, "label": label, "model": model, "kind": "baseline" if prefix else "model",
               "epoch": best_epoch if not prefix else None, "users": metrics.get("users")}
        for name in names:
            value = metrics.get(prefix + name)
            low, high = ci95.get(prefix + name) or (value, value)
            row |= {name: value, f"{name}_low": low, f"{name}_high": high}
        rows.append(row)
    for point in metrics.get("snapshots", []):
        # labelled by its epoch, except the best one, whose weights are SASRec's own point (labelled already)
        label = "" if point["epoch"] == best_epoch else str(point["epoch"])
        row = {"name": f"SASRec at epoch {point['epoch']} ({point['users']:,} users)", "label": label,
               "model": "SASRec", "kind": "snapshot", "epoch": point["epoch"], "users": point["users"]}
        for name in names:
            low, high = point["ci95"].get(name) or (point.get(name), point.get(name))
            row |= {name: point.get(name), f"{name}_low": low, f"{name}_high": high}
        rows.append(row)
    return pd.DataFrame(rows)
