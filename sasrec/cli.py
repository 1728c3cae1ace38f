"""python -m sasrec {train,evaluate,recommend,stats,make-sample,make-log}.

This is also what the app's background jobs run. Errors a user can fix print one line
and exit with status 2; a traceback means a bug.
"""

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import torch

from . import defaults, rundir, summary
from .config import (
    PRESET_HELP,
    PRESETS,
    DataConfig,
    RunConfig,
    add_setting_arguments,
    configs,
    given_settings,
    with_settings,
)
from .dataset import Preprocessing
from .distributed import Distributed
from .evaluate import metrics_table
from .inference import Recommender
from .readers import Columns, DataError
from .report import compare_runs, evaluate_run, is_current
from .schedule import duration
from .train import resolve_device, train

# What a resumed run may change. Its --time-budget is more time: what it has used, plus that.
RESUME_SETTINGS = ("epochs", "patience", "device", "threads", "time_budget")


def add_data_arguments(parser, optional=False):
    parser.add_argument("data", nargs="?" if optional else None,
                        help="interaction log: CSV/TSV, Parquet, JSON Lines, SASRec .txt, RecBole .inter or folder, "
                             "MovieLens .zip")
    parser.add_argument("--items", help="item catalog (id, title, category ...) to join on item id")
    parser.add_argument("--user-col", help="column holding the user id (default: detected)")
    parser.add_argument("--item-col", help="column holding the item id (default: detected)")
    parser.add_argument("--time-col", help="column holding the timestamp (default: detected)")
    parser.add_argument("--rating-col", help="column holding the rating (default: detected)")
    defaults_ = Preprocessing()
    parser.add_argument("--min-rating", type=float, help="keep only events rated at least this")
    parser.add_argument("--k-core", type=int, default=defaults_.k_core, help="iterative k-core filter (0 = off)")
    parser.add_argument("--min-len", type=int, default=defaults_.min_seq_len, help="drop users with fewer events")
    parser.add_argument("--collapse-repeats", action="store_true", help="collapse consecutive repeats of an item")
    parser.add_argument("--keep-duplicates", action="store_true", help="keep exact duplicate events")


def data_config(args) -> DataConfig:
    roles = None
    if args.user_col or args.item_col or args.time_col or args.rating_col:
        if not (args.user_col and args.item_col):
            raise DataError("--user-col and --item-col must be given together")
        roles = Columns(args.user_col, args.item_col, args.time_col, args.rating_col).__dict__
    preprocessing = Preprocessing(min_rating=args.min_rating, drop_duplicates=not args.keep_duplicates,
                                  collapse_repeats=args.collapse_repeats, k_core=args.k_core, min_seq_len=args.min_len)
    return DataConfig(path=str(Path(args.data).resolve()), items=args.items and str(Path(args.items).resolve()),
                      roles=roles, preprocessing=preprocessing.to_dict(),
                      name=getattr(args, "name", None) or Path(args.data).stem)


def print_roles(dataset) -> None:
    """Which column plays which role, and the rule that found it (by name, by content and why, ...)."""
    for role, found in dataset.report[0].get("roles", {}).items():
        print(f"{role} column {found['column']!r}" + (f" ({found['how']})" if found.get("how") else ""), flush=True)


def cmd_stats(args):
    dataset = data_config(args).load()
    stats = dataset.stats()
    if args.json:
        print(json.dumps(stats))
        return
    print_roles(dataset)
    print()
    for step in dataset.report:
        skipped = f"  ({step['skipped_rows']:,} malformed rows skipped)" if step.get("skipped_rows") else ""
        print(f"{step['step']:<28} {step['rows']:>10,} rows {step['users']:>8,} users {step['items']:>8,} items{skipped}")
    print()
    for key, value in stats.items():
        print(f"{key:<16} {value:,.4g}" if isinstance(value, float) else f"{key:<16} {value}")


def training_request(args) -> tuple[RunConfig, Path, bool]:
    """(config, run directory, resume?) from the command line. Data paths in the config are
    absolute; a config file's relative paths are relative to its folder."""
    given = given_settings(args)
    if args.resume:
        run = rundir.Run(args.resume).require()
        config = RunConfig.read(run.path / "config.json")
        changes = {k: v for k, v in given.items() if k in RESUME_SETTINGS}
        if "time_budget" in changes and (run.path / rundir.CHECKPOINT).is_file():
            used = rundir.checkpoint_state(run.path / rundir.CHECKPOINT).get("elapsed_seconds", 0.0)
            changes["time_budget"] += used / 60
        config = with_settings(config, **changes)
        return replace(config, data=config.data.resolved_from(run.path)), run.path, True
    if not args.out:
        raise DataError("train needs --out RUN_DIR (or --resume RUN_DIR)")
    if args.config:
        config = RunConfig.read(args.config)
        config = with_settings(config, **given)
        return replace(config, data=config.data.resolved_from(Path(args.config).parent)), Path(args.out), False
    if not args.data:
        raise DataError("train needs DATA and --out RUN_DIR (or --config FILE, or --resume RUN_DIR)")
    model, train_config = configs(args.preset, **given)
    return RunConfig(model, train_config, data_config(args)), Path(args.out), False


def cmd_train(args):
    """Train, or resume; under torchrun every rank runs this, and rank 0 alone writes and prints."""
    config, out, resume = training_request(args)
    dist = Distributed.from_env()
    status = rundir.StatusWriter(out)

    def fail(message: str) -> None:  # into a run directory that exists: the app's, or a resumed one
        if dist.is_main and out.is_dir():
            status.write(rundir.FAILED, message)

    progress = ProgressPrinter() if dist.is_main else None
    try:
        device = dist.device(resolve_device(config.train.device))
        dist.start(device)
        dataset = config.data.load()
        if dist.is_main:
            print_roles(dataset)
            out.mkdir(parents=True, exist_ok=True)
        if not resume:
            config = defaults.resolve(config, dataset, device)
            for setting, why in config.chosen.items():
                if dist.is_main:
                    print(f"{setting} = {why}", flush=True)
        config = replace(config, data=config.data.relative_to(out))
        result = train(dataset, config, out, on_progress=progress, resume=resume, dist=dist,
                       started=rundir.process_identity()["process_started"])
    except torch.OutOfMemoryError as err:
        message = (f"out of memory on {config.train.device}: try a smaller --batch-size or --maxlen, or "
                   f"--loss sampled-ce ({str(err).splitlines()[0][:200]})")
        fail(message)
        raise rundir.RunError(message) from err
    except OSError as err:  # a full disk, a refused write: named without the server's path
        where = f" ({Path(err.filename).name})" if err.filename else ""
        message = f"{err.strerror or err}{where}"
        fail(message)
        raise rundir.RunError(message) from err
    except (DataError, rundir.RunError, ValueError) as err:
        fail(str(err))
        raise
    except Exception as err:
        fail(f"{type(err).__name__}: {err}")
        raise
    finally:
        if progress:
            progress.close()
        dist.close()
    if not dist.is_main:
        return
    best = result["best_valid_ndcg@10"]
    summary = (f"{result['state']}: {result['message']}; {result['epochs']} epochs in {result['elapsed_seconds']:.1f} s "
               f"on {result['device']}" + (f", best valid NDCG@10 {best:.4f} at epoch {result['best_epoch']}"
                                           if best is not None else ""))
    if "test" in result:
        summary += f", test NDCG@10 {result['test']['ndcg@10']:.4f} HR@10 {result['test']['hr@10']:.4f}"
    print(summary + f" -> {out}")
    if result["state"] == rundir.FAILED:
        sys.exit(1)


class ProgressPrinter:
    """A tqdm bar on a terminal; one line per epoch in a log file."""

    def __init__(self):
        self.bar = None
        self.interactive = sys.stderr.isatty()

    def __call__(self, event):
        if event["kind"] == "plan":
            print(plan_line(event), flush=True)
        elif event["kind"] == "epoch":
            line = f"epoch {event['epoch']}: loss {event['loss']:.4f}, {event['examples_per_second']:,.0f} positions/s"
            if "valid_ndcg@10" in event:
                line += f", valid NDCG@10 {event['valid_ndcg@10']:.4f} HR@10 {event['valid_hr@10']:.4f}"
            if self.bar is not None:
                self.bar.set_postfix_str(line.split(": ", 1)[1])
            else:
                print(line, flush=True)
        elif self.interactive:
            if self.bar is None:
                from tqdm import tqdm
                self.bar = tqdm(total=event["end_step"], unit="step", dynamic_ncols=True)
            self.bar.total = event["end_step"]  # the plan may change with the measured pace
            self.bar.set_description(f"epoch {event['epoch']}/{math.ceil(event['planned_epochs'])}")
            self.bar.update(event["global_step"] - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def plan_line(plan: dict) -> str:
    """What the first timed steps say about the run's length."""
    epoch = f"{plan['epoch_seconds']:.1f} s" if plan["epoch_seconds"] < 10 else duration(plan["epoch_seconds"])
    if plan["ends_by_budget"]:
        return (f"plan: about {plan['epochs']:.0f} epochs of {epoch} fit in the time budget of "
                f"{duration(plan['budget_seconds'])}, with the final evaluation; the learning rate decays to zero "
                "at the end")
    budget = f", within the time budget of {duration(plan['budget_seconds'])}" if plan.get("budget_seconds") else ""
    advice = "" if budget else " (set a limit with --time-budget, e.g. 10m)"
    return (f"plan: {plan['epoch_limit']} epochs of about {epoch} and the final evaluation take up to "
            f"{duration(plan['seconds_left'])}{budget}; early stopping usually ends a run sooner{advice}")


def cmd_evaluate(args):
    run = rundir.Run(args.run_dir).require()
    metrics = run.test_metrics()
    if metrics is None or args.recompute:
        metrics = evaluate_run(run.path, on_progress=lambda message: print(message, file=sys.stderr, flush=True))
    compared = [compare_runs(run, rundir.Run(other).require()) for other in args.compare]
    if not args.json:
        print_evaluation(metrics, compared)
    print(json.dumps(metrics | ({"compared": compared} if compared else {})))


def print_evaluation(metrics: dict, compared: list[dict]) -> None:
    if not is_current(metrics):
        print("This run was evaluated before intervals, paired tests, EASE and beyond-accuracy metrics existed; "
              "`evaluate RUN_DIR --recompute` computes them.\n")
        print(metrics_table(metrics).to_string(float_format="{:.4f}".format))
        return
    print("Full ranking, with 95 % bootstrap intervals over users:")
    print(summary.metrics_table(metrics).to_string())
    print("\nSampled (the true item among 100 random unseen items, as in the paper; it overstates quality):")
    print(summary.metrics_table(metrics, sampled=True).to_string())
    print()
    for baseline in list(summary.evaluated_models(metrics))[1:]:
        print(summary.verdict(metrics, baseline))
    print(summary.ease_note(metrics)[1])
    print("\nBeyond accuracy, top 10:")
    print(summary.beyond_table(metrics).to_string())
    for comparison in compared:
        print("\n" + summary.comparison_sentence(comparison))
    print(f"\nTest split: {metrics.get('users', 0):,} users ({metrics.get('skipped_users', 0):,} with fewer than 3 "
          "events skipped). Full ranking over every item, history excluded.")


def cmd_recommend(args):
    recommender = Recommender.from_run(args.run_dir)
    result = recommender.recommend(args.history, k=args.k, exclude_history=not args.keep_history)
    if args.json:
        print(json.dumps({"history": result.history["item_id"].tolist(),
                          "items": result.items.to_dict(orient="records"),
                          "milliseconds": result.seconds * 1000}))
    else:
        print(result.items.to_string(index=False, float_format="{:.4f}".format))


def cmd_make_sample(args):
    from .synthetic import write_sample  # the generator is only needed here

    for path in write_sample(args.folder, seed=args.seed):
        print(path)


def cmd_make_log(args):
    from .synthetic import write_log

    for path in write_log(args.folder, args.events, args.items, seed=args.seed):
        print(path)


def count(text: str) -> int:
    """A count as a user types it: 10000, 10_000, 24k, 10M."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (say 50000, 24k or 10M)") from None
    if value * scale < 1 or value * scale > 1e10:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range")
    return int(value * scale)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m sasrec", description="Train, evaluate and query SASRec.")
    commands = top.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train a model, writing a run directory")
    add_data_arguments(p, optional=True)  # not needed with --config or --resume
    p.set_defaults(func=cmd_train)
    p.add_argument("--out", help="run directory to write")
    p.add_argument("--config", help="a run configuration (JSON, as in a run's config.json) to train")
    p.add_argument("--name", help="dataset name to record (default: the file name)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run, or one its time budget ended (may "
                                                      f"change {', '.join(RESUME_SETTINGS)}; --time-budget is "
                                                      "then more time)")
    p.add_argument("--preset", choices=list(PRESETS), default="auto", help=PRESET_HELP)
    add_setting_arguments(p)

    p = commands.add_parser("evaluate", help="test-split metrics of a run, with baselines")
    p.add_argument("run_dir")
    p.add_argument("--recompute", action="store_true", help="evaluate again instead of reading the stored results")
    p.add_argument("--compare", nargs="+", default=[], metavar="RUN_DIR",
                   help="other runs on the same data: paired tests against each and the overlap of the top-10 lists")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser("recommend", help="top-k next items for a history")
    p.add_argument("run_dir")
    p.add_argument("--history", nargs="+", required=True, metavar="ID", help="original item ids, oldest first")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--keep-history", action="store_true", help="allow already-seen items")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recommend)

    p = commands.add_parser("stats", help="dataset statistics after preprocessing")
    add_data_arguments(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = commands.add_parser("make-sample", help="write the synthetic sample data set")
    p.add_argument("folder")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_make_sample)

    p = commands.add_parser("make-log", help="write a synthetic log of any size (Zipf catalog, planted chains)")
    p.add_argument("folder")
    p.add_argument("--events", type=count, default=1_000_000, help="events, e.g. 10M (default: 1M)")
    p.add_argument("--items", type=count, default=100_000, help="catalog size, e.g. 1M (default: 100k)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_make_log)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        args.func(args)
    # Bad data, a bad run directory, invalid settings (8 heads for a hidden size of 50), a full disk.
    except (DataError, rundir.RunError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
