"""python -m sasrec {train,evaluate,recommend,stats,make-sample}.

This is also what the app's background jobs run. Errors a user can fix print one line
and exit with status 2; a traceback means a bug.
"""

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import pandas as pd
import torch

from . import rundir
from .data import Columns, DataError, Preprocessing
from .evaluate import KS, evaluate_run
from .inference import Recommender
from .model import SASRecConfig
from .train import LOSSES, MODEL_FLAGS, PRESETS, TrainConfig, configs_from_flags, train


def add_data_arguments(parser, optional=False):
    parser.add_argument("data", nargs="?" if optional else None, help="interaction log: CSV/TSV, Parquet, JSON Lines, SASRec .txt, RecBole .inter or folder, MovieLens .zip")
    parser.add_argument("--items", help="item catalog (id, title, category ...) to join on item id")
    parser.add_argument("--user-col", help="column holding the user id (default: detected)")
    parser.add_argument("--item-col", help="column holding the item id (default: detected)")
    parser.add_argument("--time-col", help="column holding the timestamp (default: detected)")
    parser.add_argument("--rating-col", help="column holding the rating (default: detected)")
    defaults = Preprocessing()
    parser.add_argument("--min-rating", type=float, help="keep only events rated at least this")
    parser.add_argument("--k-core", type=int, default=defaults.k_core, help="iterative k-core filter (0 = off)")
    parser.add_argument("--min-len", type=int, default=defaults.min_seq_len, help="drop users with fewer events")
    parser.add_argument("--collapse-repeats", action="store_true", help="collapse consecutive repeats of an item")
    parser.add_argument("--keep-duplicates", action="store_true", help="keep exact duplicate events")


def data_config(args) -> dict:
    roles = None
    if args.user_col or args.item_col or args.time_col or args.rating_col:
        if not (args.user_col and args.item_col):
            raise DataError("--user-col and --item-col must be given together")
        roles = Columns(args.user_col, args.item_col, args.time_col, args.rating_col).__dict__
    preprocessing = Preprocessing(min_rating=args.min_rating, drop_duplicates=not args.keep_duplicates,
                                  collapse_repeats=args.collapse_repeats, k_core=args.k_core, min_seq_len=args.min_len)
    return {"path": str(Path(args.data).resolve()), "items": args.items and str(Path(args.items).resolve()),
            "roles": roles, "preprocessing": preprocessing.to_dict()}


def cmd_stats(args):
    dataset = rundir.load_data(data_config(args))
    stats = dataset.stats()
    if args.json:
        print(json.dumps(stats))
        return
    for step in dataset.report:
        skipped = f"  ({step['skipped_rows']:,} malformed rows skipped)" if step.get("skipped_rows") else ""
        print(f"{step['step']:<28} {step['rows']:>10,} rows {step['users']:>8,} users {step['items']:>8,} items{skipped}")
    print()
    for key, value in stats.items():
        print(f"{key:<16} {value:,.4g}" if isinstance(value, float) else f"{key:<16} {value}")


def cmd_train(args):
    if args.resume:
        run = rundir.Run(args.resume).require()
        saved = run.config()
        model_config = SASRecConfig(**saved["model"])
        train_config = TrainConfig(**saved["train"] | {k: v for k, v in vars(args).items()
                                                       if k in ("epochs", "patience", "device", "threads") and v is not None})
        data, out = rundir.absolute_data_config(saved["data"], run.path), run.path
    else:
        if not args.data or not args.out:
            raise DataError("train needs DATA and --out RUN_DIR (or --resume RUN_DIR)")
        settings = MODEL_FLAGS.keys() | {f.name for f in fields(TrainConfig)}
        model_config, train_config = configs_from_flags(
            args.preset, **{name: value for name, value in vars(args).items() if name in settings})
        data, out = data_config(args), Path(args.out)

    dataset = rundir.load_data(data)
    out.mkdir(parents=True, exist_ok=True)
    recorded = rundir.relative_data_config(data | {"name": data.get("name") or args.name or Path(data["path"]).stem}, out)
    progress = ProgressPrinter()
    try:
        result = train(dataset, model_config, train_config, out, data_config=recorded,
                       on_progress=progress, resume=bool(args.resume))
    except Exception as err:
        message = f"out of memory: try a smaller --batch-size or --maxlen ({err})" if isinstance(err, torch.OutOfMemoryError) else f"{type(err).__name__}: {err}"
        if Path(out).is_dir():
            rundir.write_status(out, rundir.FAILED, message)
        raise
    finally:
        progress.close()
    summary = (f"{result['state']}: {result['message']}; {result['epochs']} epochs in {result['elapsed_seconds']:.1f} s "
               f"on {result['device']}, best valid NDCG@10 {result['best_valid_ndcg@10']:.4f} at epoch {result['best_epoch']}")
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
        if event["kind"] == "epoch":
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
                self.bar = tqdm(total=event["epochs"] * event["steps_per_epoch"], unit="step", dynamic_ncols=True)
            self.bar.set_description(f"epoch {event['epoch']}/{event['epochs']}")
            self.bar.update(event["global_step"] - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def cmd_evaluate(args):
    run = rundir.Run(args.run_dir).require()
    report = evaluate_run(run.path, exclude_history=not args.keep_history)
    rundir.write_json(run.path / "test_metrics.json", report.metrics)
    if not args.json:
        print(metrics_table(report.metrics).to_string(float_format="{:.4f}".format))
        print("\nFull ranking over every item (history excluded unless --keep-history);"
              " 'sampled' ranks the true item among 100 random unseen items, as in the paper, and overstates quality.")
    print(json.dumps(report.metrics))


def metrics_table(metrics: dict) -> pd.DataFrame:
    rows = {"SASRec": "", "Most popular": "pop_", "Markov": "markov_",
            "SASRec (sampled)": "sampled_", "Most popular (sampled)": "pop_sampled_", "Markov (sampled)": "markov_sampled_"}
    columns = [f"{m}@{k}" for m in ("hr", "ndcg") for k in KS] + ["mrr"]
    return pd.DataFrame({name: {c.upper(): metrics[prefix + c] for c in columns} for name, prefix in rows.items()}).T


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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m sasrec", description="Train, evaluate and query SASRec.")
    commands = top.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train a model, writing a run directory")
    add_data_arguments(p, optional=True)  # not needed with --resume
    p.set_defaults(func=cmd_train)
    p.add_argument("--out", help="run directory to write")
    p.add_argument("--name", help="dataset name to record (default: the file name)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run")
    p.add_argument("--preset", choices=sorted(PRESETS), default="sasrec+",
                   help="sasrec+: full cross-entropy (default); paper: d=50, 2 blocks, 1 head, BCE; "
                        "demo: maxlen 50, 10 epochs (the bundled demo model)")
    p.add_argument("--loss", choices=LOSSES)
    p.add_argument("--num-negatives", type=int, dest="num_negatives", help="negatives per batch for sampled-ce")
    p.add_argument("--epochs", type=int)
    p.add_argument("--patience", type=int, help="validations without improvement before stopping")
    p.add_argument("--eval-every", type=int, dest="eval_every", help="epochs between validations")
    p.add_argument("--maxlen", type=int)
    p.add_argument("--hidden", type=int)
    p.add_argument("--blocks", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--dropout", type=float)
    p.add_argument("--norm", choices=("paper", "pre"), help="layer-norm placement")
    p.add_argument("--lr", type=float)
    p.add_argument("--beta2", type=float)
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")

    p = commands.add_parser("evaluate", help="test-split metrics of a run, with baselines")
    p.add_argument("run_dir")
    p.add_argument("--keep-history", action="store_true", help="do not exclude already-seen items from the ranking")
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
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (DataError, rundir.RunError, FileNotFoundError, NotADirectoryError, PermissionError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except ValueError as err:  # invalid settings, e.g. hidden size not divisible by heads
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
