"""How long each page of the app takes to open for a real-sized run, in a real browser. Prints one JSON line.

    python -m bench.page_open --workspace WS --run NAME          # a run you trained (Sports_and_Outdoors, say)
    python -m bench.page_open --data ../shared/data/amazon/Sports_and_Outdoors.txt [--keep /tmp/sports-ws]
    python -m bench.page_open --synthetic 10000000 --items 1000000 [--keep /tmp/big-ws]

Starts the app on the workspace (tests/browser.py) in Debian's Chromium, opens the Playground
on the run, starts a history from a random dataset user, then opens every page from the
sidebar, as a person clicks through: each time from the click to the end of the page's first
run (heading shown, the app idle again). The first round finds the server's caches cold (the
model, the dataset, the evaluation files are read then); the later rounds are medians. On the
Playground it also times typing a search into the catalog and adding the first match.

--synthetic N builds a workspace with an N-event log (sasrec.synthetic.generate_log) saved as
a dataset, and a run on it whose weights are untrained and whose evaluation files have the
real shapes (a rank per test user, the breakdown, the embedding map of every item) but
random ranks: the pages only read those files, and a full test evaluation of such a log is
the engine's business, not this bench's. --data builds the same kind of run on a real log, with
its real evaluation (report.write_evaluation: every model ranked, EASE fitted, seven snapshots,
which are all the untrained weights; it prints how long that took). --keep keeps that workspace
for the next time.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.machine import machine_info
from tests.browser import chromium, running_app, wait_for_app

PAGES = ["Attention", "Evaluate", "Train", "Data", "Welcome", "Playground"]
SETTLE = 0.3  # wait_for_app's pause for a rerun to start; not part of the page's time


def open_page(tab, name: str) -> float:
    started = time.perf_counter()
    tab.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    tab.get_by_role("heading", name="SASRec Explorer" if name == "Welcome" else name, level=1).wait_for()
    wait_for_app(tab, timeout=300_000)
    return time.perf_counter() - started - SETTLE


def search_and_add(tab, query: str) -> tuple[float, float]:
    """(seconds from typing to the matches shown, seconds from a click on the first to the new predictions)."""
    box = tab.get_by_placeholder("search the catalog by title or id")
    started = time.perf_counter()
    box.fill(query)
    first = tab.locator("[class*='st-key-pg_add_']").first
    first.wait_for()
    wait_for_app(tab)
    typed = time.perf_counter() - started - SETTLE
    chips = tab.locator("[data-testid='stMain'] [role='radio']").count()
    started = time.perf_counter()
    first.get_by_role("button").click()
    tab.wait_for_function(f"() => document.querySelectorAll(\"[data-testid='stMain'] [role='radio']\").length > {chips}")
    wait_for_app(tab)
    return typed, time.perf_counter() - started - SETTLE


def measure(url: str, run: str, rounds: int, query: str) -> dict:
    with chromium() as browser:
        tab = browser.new_page(viewport={"width": 1440, "height": 1000})
        tab.set_default_timeout(300_000)
        started = time.perf_counter()
        tab.goto(f"{url}/playground?run={run}")
        tab.get_by_role("heading", name="Playground", level=1).wait_for()
        wait_for_app(tab, timeout=300_000)
        first_open = time.perf_counter() - started - SETTLE
        started = time.perf_counter()
        tab.get_by_role("button", name="Dataset user").click()
        tab.get_by_role("button", name="Random user").click()
        tab.get_by_text("Predicted in").wait_for()
        wait_for_app(tab, timeout=300_000)
        user_pick = time.perf_counter() - started - SETTLE
        tab.keyboard.press("Escape")
        times = {name: [] for name in PAGES}
        searches, adds = [], []
        for _ in range(rounds):
            for name in PAGES:
                times[name].append(open_page(tab, name))
            typed, added = search_and_add(tab, query)
            searches.append(typed)
            adds.append(added)
    return {"playground_first_open_s": round(first_open, 2), "dataset_user_first_pick_s": round(user_pick, 2),
            "first_round_s": {name: round(seconds[0], 2) for name, seconds in times.items()},
            "later_rounds_median_s": {name: round(statistics.median(seconds[1:]), 2) for name, seconds in times.items()}
            if rounds > 1 else None,
            "search_typed_to_matches_s": [round(s, 2) for s in searches],
            "add_to_predictions_s": [round(s, 2) for s in adds]}


def stand_in_workspace(root: Path, name: str, dataset, real_evaluation: bool) -> str:
    """A workspace holding `dataset` saved as `name` and a finished run on it (see the module's doc)."""
    import torch

    from sasrec import ease, rundir
    from sasrec.config import RunConfig, configs
    from sasrec.evaluate import Report
    from sasrec.model import SASRec
    from sasrec.report import write_evaluation, write_report
    from sasrec.sequences import holdout
    from sasrec.workspace import Workspace

    ws = Workspace(root)
    if name in {r.name for r in ws.runs()}:
        return name
    started = time.perf_counter()
    ws.save_dataset(dataset, name, {"source": name})
    print(f"saved {dataset} in {time.perf_counter() - started:.0f} s", flush=True)
    config = RunConfig(*configs("auto"), data=ws.data_config(name))
    out = root / "runs" / name
    out.mkdir(parents=True)
    model_config = config.model.__class__(**(config.model.to_dict() | {"num_items": dataset.num_items, "maxlen": 50}))
    model = SASRec(model_config)
    config = RunConfig(model_config, config.train, config.data.relative_to(out))
    rundir.write_json(out / "config.json", config.to_dict() | {"dataset": dataset.stats(), "device": "cpu",
                                                                "device_name": "untrained (bench)"})
    catalog = dataset.catalog.rename_axis("index").reset_index()
    catalog.to_parquet(out / "items.parquet", index=False)
    rundir.save_weights(model, out / "best.safetensors")
    rundir.save_weights(model, out / "last.safetensors")
    if real_evaluation:
        for epoch in (1, 2, 4, 8, 16, 32, 64):  # the snapshots of a run of 64-127 epochs
            rundir.save_snapshot(out, model, epoch)
        moment = time.perf_counter()
        with torch.no_grad():
            metrics = write_evaluation(out, model, dataset)
        print(f"evaluated in {time.perf_counter() - moment:.0f} s: {json.dumps(metrics['seconds'])}", flush=True)
    else:
        # Evaluation files of the real shapes, with random ranks and lists (the catalog is too big for EASE).
        rng = np.random.default_rng(0)
        test = holdout(dataset, "test")
        report = Report({"users": len(test), "skipped_users": test.skipped, "items": dataset.num_items},
                        pd.DataFrame({"user_id": dataset.user_ids[test.users], "history_length": test.ends - test.starts}))
        for prefix in ("", "pop_", "markov_"):
            ranks, sampled = rng.integers(1, dataset.num_items, len(test)), rng.integers(1, 101, len(test))
            report.add(prefix, {"rank": ranks, "sampled_rank": sampled,
                                "top": rng.integers(1, dataset.num_items + 1, (len(test), 10), dtype=np.int32)})
        report.ease = ease.Fit(reason=ease.too_big(dataset.num_items)).summary()
        with torch.no_grad():
            write_report(out, report, dataset, model, snapshots=[])
    rundir.write_jsonl(out / "metrics.jsonl", [{"epoch": 1, "loss": 1.0, "valid_ndcg@10": 0.0, "valid_hr@10": 0.0,
                                                "epoch_seconds": 1.0, "elapsed_seconds": 1.0}])
    rundir.write_json(out / "status.json", {"state": rundir.FINISHED, "message": "a bench's stand-in run",
                                            "started": time.time(), "updated": time.time(), "epochs": 1,
                                            "best_epoch": 1, "elapsed_seconds": 1.0})
    print(f"run written in {time.perf_counter() - started:.0f} s in all", flush=True)
    return name


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, help="an existing workspace")
    parser.add_argument("--run", help="the run to open (with --workspace)")
    parser.add_argument("--synthetic", type=int, help="build a workspace with a log of this many events instead")
    parser.add_argument("--data", help="build a workspace with this log instead (its evaluation computed for real)")
    parser.add_argument("--items", type=int, default=1_000_000, help="items of the synthetic log")
    parser.add_argument("--keep", type=Path, help="where to build (or find) the --synthetic or --data workspace, kept after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--query", default="1", help="what to type into the Playground's catalog search")
    args = parser.parse_args()
    if args.synthetic or args.data:
        with tempfile.TemporaryDirectory() as scratch:
            root = args.keep or Path(scratch)
            if args.data:
                from sasrec.dataset import load_dataset

                run = stand_in_workspace(root, Path(args.data).stem.lower(), load_dataset(args.data), True)
            else:
                from sasrec.dataset import build_dataset
                from sasrec.readers import Columns
                from sasrec.synthetic import generate_log

                interactions, items = generate_log(args.synthetic, args.items)
                run = stand_in_workspace(root, f"synthetic-{args.synthetic}", build_dataset(
                    interactions, Columns("user_id", "item_id", "timestamp"), items, source="synthetic.parquet"), False)
            with running_app(root, stop_runs=False) as url:
                result = measure(url, run, args.rounds, args.query)
        source = ({"data": args.data} if args.data else
                  {"synthetic_events": args.synthetic, "synthetic_items": args.items})
    else:
        with running_app(args.workspace, stop_runs=False) as url:
            result = measure(url, args.run, args.rounds, args.query)
        source = {"workspace": str(args.workspace), "run": args.run}
    print(json.dumps({"machine": machine_info(), **source, **result}))


if __name__ == "__main__":
    main()
