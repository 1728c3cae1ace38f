"""Many viewers on one server: N browser sessions edit the Playground at once while a run trains.
Prints one JSON line.

    python -m bench.soak                         # 1, 5 and 10 sessions, 60 s each
    python -m bench.soak --sessions 10 --seconds 60 --server-cpus 0,1

Starts the app on an empty workspace (tests/browser.py), starts a training run on the bundled
sample with Workspace.start_run, as the Train page does, and opens N tabs, each in its own
browser context (its own Streamlit session) on the Playground with the demo model. Each tab
then edits its history in a loop, as a person would: the example, select the newest item,
remove it, undo, clear, and again. An edit's latency runs from the click to the end of the
rerun that shows the new history with its predictions (the chips counted, the app idle
again). Every edit is checked: the tab shows its own history and no error box; any error is
counted. The server's CPU time (its process, user + system) over the measured window,
divided by the edits made in it, is the server CPU per edit; it includes whatever else the
server did meanwhile (the live refresh of the training run's views), so it is an upper bound.

With --server-cpus the server is pinned to those cores (taskset); the browsers and the
training run are not. On a 2-core machine they all share the same two cores, which slows
the browsers' side of each edit too.
"""

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from bench.machine import machine_info
from sasrec.config import RunConfig, configs
from sasrec.workspace import SAMPLE_NAME, Workspace
from tests.browser import CHROMIUM, running_app

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
CHIPS = "[data-testid='stMain'] [role='radio']"


async def wait_idle_with(tab, chips: int, timeout: float) -> None:
    """Until the tab shows `chips` history items and its script run has ended."""
    await tab.wait_for_function(
        f"() => document.querySelectorAll(\"{CHIPS}\").length === {chips} && "
        f"document.querySelector(\"{IDLE}\") !== null", timeout=timeout * 1000, polling=50)


async def edit(tab, action, chips_after: int, timeout: float) -> float:
    started = time.perf_counter()
    await action()
    await tab.wait_for_timeout(50)  # the click's rerun starts
    await wait_idle_with(tab, chips_after, timeout)
    return time.perf_counter() - started


async def session(browser, url: str, until: float, measure_from: float, timeout: float, results: dict) -> None:
    context = await browser.new_context(viewport={"width": 1440, "height": 1000})
    tab = await context.new_page()
    tab.set_default_timeout(timeout * 1000)
    opened = time.perf_counter()
    await tab.goto(f"{url}/playground?run=demo")
    await tab.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']")
    await tab.get_by_role("button", name="Example").wait_for()
    await tab.wait_for_selector(IDLE)
    results["open_seconds"].append(time.perf_counter() - opened)

    async def click(name):
        await tab.get_by_role("button", name=name, exact=True).click()

    async def select_newest():
        await tab.locator(CHIPS).last.click()

    cycle = [(lambda: click("Example"), 4), (select_newest, 4), (lambda: click("Remove"), 3),
             (lambda: click("Undo"), 4), (lambda: click("Clear"), 0)]
    while time.perf_counter() < until:
        for action, chips in cycle:
            if time.perf_counter() >= until:
                break
            try:
                seconds = await edit(tab, action, chips, timeout)
                problems = await tab.get_by_test_id("stAlertContentError").count()
                if chips and await tab.get_by_text("Predicted in").count() != 1:
                    problems += 1
                if problems:
                    results["errors"].append(f"error box or no predictions after an edit to {chips} items")
            except Exception as err:  # a timeout: counted, and the cycle starts again from the example
                results["errors"].append(f"{type(err).__name__}: {str(err).splitlines()[0][:160]}")
                break
            if time.perf_counter() - seconds >= measure_from:
                results["edits"].append(seconds)
    await context.close()


async def soak(url: str, sessions: int, seconds: float, warmup: float, timeout: float, server: psutil.Process) -> dict:
    from playwright.async_api import async_playwright

    results = {"edits": [], "errors": [], "open_seconds": []}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-renderer-backgrounding",
            "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows"])
        start = time.perf_counter()
        measure_from, until = start + warmup, start + warmup + seconds
        tasks = [asyncio.create_task(session(browser, url, until, measure_from, timeout, results))
                 for _ in range(sessions)]
        while time.perf_counter() < measure_from:
            await asyncio.sleep(0.1)
        cpu_before, wall_before = sum(server.cpu_times()[:2]), time.perf_counter()
        await asyncio.gather(*tasks)
        cpu = sum(server.cpu_times()[:2]) - cpu_before
        wall = time.perf_counter() - wall_before
        await browser.close()
    edits = sorted(results["edits"])
    quantile = lambda q: round(edits[min(int(q * len(edits)), len(edits) - 1)], 3) if edits else None
    return {"sessions": sessions, "edits": len(edits), "errors": len(results["errors"]),
            "error_examples": sorted(set(results["errors"]))[:3],
            "p50_s": round(statistics.median(edits), 3) if edits else None, "p90_s": quantile(0.9),
            "p99_s": quantile(0.99), "max_s": round(edits[-1], 3) if edits else None,
            "open_s_max": round(max(results["open_seconds"]), 2) if results["open_seconds"] else None,
            "server_cpu_s": round(cpu, 2), "window_s": round(wall, 1),
            "server_cpu_ms_per_edit": round(1000 * cpu / len(edits), 1) if edits else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--seconds", type=float, default=60, help="measured editing time per session count")
    parser.add_argument("--warmup", type=float, default=15, help="editing before the measurement starts")
    parser.add_argument("--timeout", type=float, default=60, help="seconds before an edit counts as an error")
    parser.add_argument("--server-cpus", help="taskset CPU list for the server, e.g. 0,1")
    parser.add_argument("--no-training", action="store_true", help="without a run training meanwhile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workspace, running_app(Path(workspace), cpus=args.server_cpus) as url:
        server = next(p for p in psutil.Process().children(recursive=True) if "streamlit" in " ".join(p.cmdline()))
        training = None
        if not args.no_training:
            ws = Workspace(workspace)
            run = ws.start_run(SAMPLE_NAME, "soak", RunConfig(*configs("demo", epochs=1000, patience=1000), data=None))
            training = run
            time.sleep(10)  # past data loading, into the epochs
        idle_before = sum(server.cpu_times()[:2])
        time.sleep(5)
        idle_rate = (sum(server.cpu_times()[:2]) - idle_before) / 5
        rows = [asyncio.run(soak(url, n, args.seconds, args.warmup, args.timeout, server)) for n in args.sessions]
        still_training = training.state() if training else None
        device = training.config().get("device_name") if training else None
    print(json.dumps({"machine": machine_info(), "server_cpus": args.server_cpus or "all", "training": device,
                      "training_state_at_end": still_training, "server_idle_cpu_per_s": round(idle_rate, 3),
                      "seconds": args.seconds, "results": rows}))


if __name__ == "__main__":
    main()
