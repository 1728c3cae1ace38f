"""How quickly the app answers a click while a model trains on the same machine. Prints one JSON line.

    python -m bench.ui_responsiveness            # 10 clicks idle, 10 while training

Starts the app on an empty workspace in Debian's Chromium (/usr/bin/chromium, as the
browser tests do), opens the Playground and times clicks on "Example" from the click to
the end of the script rerun it causes. Then it starts a training run on the bundled
sample with Workspace.start_run, as the Train page does, and times the same clicks again.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from sasrec.config import RunConfig, configs
from sasrec.workspace import SAMPLE_NAME, Workspace
from tests.browser import chromium, running_app, wait_for_app

ROOT = Path(__file__).resolve().parents[1]


SETTLE = 0.3  # wait_for_app's pause for a rerun to start; not part of the app's answer


def timed_clicks(tab, clicks: int) -> list[float]:
    seconds = []
    for _ in range(clicks):
        started = time.perf_counter()
        tab.get_by_role("button", name="Example").click()
        wait_for_app(tab)
        seconds.append(time.perf_counter() - started - SETTLE)
    return seconds


def summary(seconds: list[float]) -> dict:
    return {"median_s": round(statistics.median(seconds), 3), "max_s": round(max(seconds), 3), "clicks": len(seconds)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workspace, running_app(Path(workspace)) as url, chromium() as browser:
        tab = browser.new_page(viewport={"width": 1440, "height": 1000})
        tab.set_default_timeout(60_000)
        tab.goto(f"{url}/playground")
        wait_for_app(tab)
        timed_clicks(tab, 2)  # warm the caches
        idle = timed_clicks(tab, args.clicks)
        ws = Workspace(workspace)
        run = ws.start_run(SAMPLE_NAME, "bench", RunConfig(*configs("demo", epochs=100), data=None))  # running_app ends it
        time.sleep(10)  # past data loading, into the epochs
        busy = timed_clicks(tab, args.clicks)
        training_device = run.config().get("device_name")
    print(json.dumps({"cpus": os.cpu_count(), "training_device": training_device,
                      "idle": summary(idle), "while_training": summary(busy)}))


if __name__ == "__main__":
    main()
