"""The app in a real browser: a Streamlit server on a free port with its own workspace, and
Debian's Chromium driven by Playwright (browsers cannot be downloaded here). Plain context
managers, so that bench/ and assets/ scripts use them too."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sasrec import training_queue
from sasrec.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = "/usr/bin/chromium"
TEST_OUTPUT = ROOT / "test-output"
PAGES = ["welcome", "data", "train", "playground", "attention", "evaluate"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(workspace: Path, stop_runs: bool = True, cpus: str | None = None, args: tuple = (),
                env: dict | None = None):
    """Start `streamlit run app.py` on `workspace`; yield its base URL once it is healthy. At the
    end, the runs it trains are stopped, unless stop_runs is False. cpus: a taskset CPU list
    ("0", "0,1") to keep the server on, for benches that give browsers other cores. args: more
    command-line arguments (Streamlit options, then "--" and the app's own, such as "--viewer");
    env: more environment variables for the server."""
    port = free_port()
    log = open(workspace / "server.log", "wb")
    server = subprocess.Popen(
        (["taskset", "-c", cpus] if cpus else []) +
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1", *args],
        cwd=ROOT, env=os.environ | {"SASREC_WORKSPACE": str(workspace)} | (env or {}), stdout=log,
        stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        if time.time() > deadline or server.poll() is not None:
            server.kill()
            raise RuntimeError(f"the app did not start: {(workspace / 'server.log').read_text()[-2000:]}")
        time.sleep(0.3)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
        # Training runs live in their own sessions; end the ones this server started, and the queue.
        ws = Workspace(workspace)
        for run, _ in training_queue.waiting(ws) if stop_runs else []:
            ws.cancel_run(run)
        for run in ws.runs():
            if stop_runs and run.is_alive():
                ws.stop_run(run)


@contextlib.contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            yield browser
        finally:
            browser.close()


def wait_for_app(tab, timeout=60_000):
    """Wait until the app is connected and its script has finished running."""
    tab.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout)
    tab.wait_for_timeout(300)  # a rerun triggered by the last interaction starts after a short debounce
    tab.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)


def save_and_open_train(page, name: str, settings: dict, timeout=60_000) -> None:
    """On the Data page with a log loaded: save it as dataset `name`, follow the link to the Train
    page and fill the form with `settings` (widget key -> value)."""
    from playwright.sync_api import expect

    field = page.locator(".st-key-dataset_name input")
    field.fill(name)
    field.press("Enter")
    wait_for_app(page)
    page.locator(".st-key-save_dataset button").click()
    wait_for_app(page, timeout=timeout)
    expect(page.get_by_test_id("stAlert").filter(has_text=f"{name} is the active dataset")).to_be_visible()
    page.get_by_role("link", name="Train a model on it").click()
    wait_for_app(page)
    expect(page.get_by_text(f"Dataset: {name}")).to_be_visible()
    for key, value in settings.items():
        page.locator(f".st-key-{key} input").fill(str(value))
