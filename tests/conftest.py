import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sasrec import rundir  # noqa: E402
from sasrec.data import Columns, Preprocessing, build_dataset  # noqa: E402


@pytest.fixture(scope="session")
def make_dataset():
    """Build a Dataset from {user: [item, ...]} in time order; items are strings."""

    def build(sequences: dict, **preprocessing):
        rows = [(str(u), str(i), t) for u, items in sequences.items() for t, i in enumerate(items)]
        events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
        return build_dataset(events, Columns("user_id", "item_id", "timestamp"),
                             preprocessing=Preprocessing(**preprocessing), source="test")

    return build


# The app in a real browser: a Streamlit server on a free port with its own workspace,
# and Debian's Chromium driven by Playwright (browsers cannot be downloaded here).
# running_app and chromium are plain context managers so that assets/screenshots.py
# can use them too.

CHROMIUM = "/usr/bin/chromium"
TEST_OUTPUT = ROOT / "test-output"
PAGES = ["welcome", "data", "train", "playground", "attention", "evaluate"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(workspace: Path):
    """Start `streamlit run app.py` on `workspace`; yield its base URL once it is healthy."""
    port = free_port()
    log = open(workspace / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1"],
        cwd=ROOT, env=os.environ | {"SASREC_WORKSPACE": str(workspace)}, stdout=log, stderr=subprocess.STDOUT)
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
        # Training runs live in their own sessions; end the ones this server started.
        for run_dir in (workspace / "runs").glob("*"):
            run = rundir.Run(run_dir)
            if run.status().get("state") == "running" and run.is_alive():
                os.kill(int(run.status()["pid"]), signal.SIGTERM)


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


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """Base URL of a running app whose workspace is a fresh temporary folder."""
    with running_app(tmp_path_factory.mktemp("workspace")) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with chromium() as browser:
        yield browser


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser, app_server, request):
    """A browser tab on the app. If the test fails, a screenshot of the tab and of every
    app page is saved under test-output/<test name>/."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        folder = TEST_OUTPUT / request.node.name
        folder.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=folder / "at-failure.png", full_page=True)
        for name in PAGES:
            tab.goto(f"{app_server}/{'' if name == 'welcome' else name}")
            tab.wait_for_timeout(3000)
            tab.screenshot(path=folder / f"{name}.png", full_page=True)
    context.close()


def wait_for_app(tab, timeout=60_000):
    """Wait until the app is connected and its script has finished running."""
    tab.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout)
    tab.wait_for_timeout(300)  # a rerun triggered by the last interaction starts after a short debounce
    tab.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)
