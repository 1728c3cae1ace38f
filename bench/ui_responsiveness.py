"""How quickly the app answers a click while a model trains on the same machine, and how fast
that training goes next to the command line's. Prints one JSON line.

    python -m bench.ui_responsiveness                       # the app's policy: every core, nice 19
    python -m bench.ui_responsiveness --policies 2:19 1:10  # threads:nice, compared in one run

Starts the app on an empty workspace in Debian's Chromium (/usr/bin/chromium, as the
browser tests do), opens the Playground and times clicks on "Example" from the click to
the end of the script rerun it causes. Then, for each policy, it starts a training run on
the bundled sample (demo preset) with Workspace.start_run, as the Train page does, with that
many threads at that nice level, and clicks all the while it trains, until it ends. The
run's epochs (metrics.jsonl) give its epoch time in the app, under those clicks. Last, the
same training runs from the command line (`python -m sasrec train`, every core, no nice,
nothing else running) for the command line's epoch time.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import machine_info
from sasrec import rundir
from sasrec import workspace as workspace_module
from sasrec.config import RunConfig, configs
from sasrec.workspace import SAMPLE_DATA, SAMPLE_NAME, Workspace
from tests.browser import chromium, running_app, wait_for_app

ROOT = Path(__file__).resolve().parents[1]
SETTLE = 0.3  # wait_for_app's pause for a rerun to start; not part of the app's answer


def click(tab) -> float:
    started = time.perf_counter()
    tab.get_by_role("button", name="Example").click()
    wait_for_app(tab)
    return time.perf_counter() - started - SETTLE


def summary(seconds: list[float]) -> dict:
    return {"median_s": round(statistics.median(seconds), 3), "p90_s": round(sorted(seconds)[int(0.9 * (len(seconds) - 1))], 3),
            "max_s": round(max(seconds), 3), "clicks": len(seconds)}


def epochs(run_dir: Path) -> dict:
    seconds = [m["epoch_seconds"] for m in rundir.read_jsonl(run_dir / "metrics.jsonl")]
    return {"epoch_median_s": round(statistics.median(seconds), 2) if seconds else None, "epochs": len(seconds)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=10, help="idle clicks")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of each training run")
    parser.add_argument("--policies", nargs="+", default=[f"{workspace_module.training_threads()}:"
                                                           f"{workspace_module.TRAINING_NICE}"],
                        help="threads:nice of the app's training runs (default: the app's own)")
    args = parser.parse_args()
    results = {"machine": machine_info(), "epochs": args.epochs}
    with tempfile.TemporaryDirectory() as workspace, running_app(Path(workspace)) as url, chromium() as browser:
        tab = browser.new_page(viewport={"width": 1440, "height": 1000})
        tab.set_default_timeout(60_000)
        tab.goto(f"{url}/playground?run=demo")
        wait_for_app(tab)
        for _ in range(2):  # warm the caches
            click(tab)
        results["idle"] = summary([click(tab) for _ in range(args.clicks)])
        ws = Workspace(workspace)
        for policy in args.policies:
            threads, nice = (int(x) for x in policy.split(":"))
            workspace_module.TRAINING_NICE = nice
            config = RunConfig(*configs("demo", epochs=args.epochs, patience=1000, threads=threads), data=None)
            run = ws.start_run(SAMPLE_NAME, f"bench-{threads}-{nice}", config)
            seconds = []
            while run.state() == rundir.RUNNING:
                seconds.append(click(tab))
            results[f"app {threads} thread(s), nice {nice}"] = {
                "while_training": summary(seconds), "state": run.state(), **epochs(run.path),
                "device": run.config().get("device_name")}
    # The app's runs wait passively (Workspace.TRAINING_ENV); the command line keeps OpenMP's default.
    for label, env in (("cli, every core, no clicks", os.environ),
                       ("cli, every core, no clicks, as the app's runs wait", os.environ | workspace_module.TRAINING_ENV)):
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([sys.executable, "-m", "sasrec", "train", str(SAMPLE_DATA), "--name", "sample", "--preset",
                            "demo", "--epochs", str(args.epochs), "--patience", "1000", "--out", out], cwd=ROOT,
                           check=True, capture_output=True, env=env)
            results[label] = epochs(Path(out)) | {
                "device": rundir.read_json(Path(out) / "config.json", {}).get("device_name")}
    results["load_average_at_end"] = os.getloadavg()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
