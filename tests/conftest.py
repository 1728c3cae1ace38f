import os
import subprocess
import sys

import pandas as pd
import pytest

from sasrec import cli, training_queue
from sasrec.config import DataConfig, RunConfig, configs
from sasrec.dataset import Preprocessing, build_dataset
from sasrec.readers import Columns
from sasrec.synthetic import generate
from sasrec.ui import state
from sasrec.workspace import Workspace
from tests.browser import CHROMIUM, PAGES, TEST_OUTPUT, chromium, running_app


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty workspace, the one the app's pages see too. Runs are separate processes: any a
    failed test left running are stopped (a resume inside the test process is not one of them)."""
    monkeypatch.setenv("SASREC_WORKSPACE", str(tmp_path / "workspace"))
    state.shared_workspace.clear()
    ws = Workspace()
    yield ws
    for run, _ in training_queue.waiting(ws):  # so that the queue's runner ends
        ws.cancel_run(run)
    for run in ws.runs():
        if run.is_alive() and run.status().get("pid") != os.getpid():
            ws.stop_run(run)
    state.shared_workspace.clear()


@pytest.fixture
def sleeper():
    """A process that stands for a training run's trainer (its pid and start time make a live run)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield process
    process.kill()
    process.wait()


@pytest.fixture(scope="session")
def trained_workspace(tmp_path_factory):
    """make(epochs, renamed_ids={}) -> a workspace folder with one finished run, "tiny", trained on a
    small synthetic log (4 series, 40 films) for that many epochs, its item ids renamed as given."""

    def make(epochs: int, renamed_ids: dict | None = None):
        root = tmp_path_factory.mktemp("workspace")
        data = tmp_path_factory.mktemp("data")
        interactions, items = generate(seed=4, num_users=150, num_series=4, num_films=40, num_franchises=2)
        for table in (interactions, items):
            table["item_id"] = table["item_id"].replace(renamed_ids or {})
        interactions.to_csv(data / "log.csv", index=False)
        items.to_csv(data / "items.csv", index=False)
        cli.main(["train", str(data / "log.csv"), "--items", str(data / "items.csv"), "--out", str(root / "runs" / "tiny"),
                  "--name", "tiny", "--epochs", str(epochs), "--maxlen", "20", "--hidden", "16", "--threads", "1"])
        return root

    return make


@pytest.fixture(scope="session")
def make_dataset():
    """Build a Dataset from {user: [item, ...]} in time order; items are strings."""

    def build(sequences: dict, **preprocessing):
        rows = [(str(u), str(i), t) for u, items in sequences.items() for t, i in enumerate(items)]
        events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
        return build_dataset(events, Columns("user_id", "item_id", "timestamp"),
                             preprocessing=Preprocessing(**preprocessing), source="test")

    return build


@pytest.fixture(scope="session")
def run_config():
    """A RunConfig from settings by name (maxlen=20, epochs=3, ...); the rest is chosen from the data."""

    def build(**settings):
        return RunConfig(*configs("auto", **settings), DataConfig(path="", name="test"))

    return build


@pytest.fixture(scope="session")
def planted_run(tmp_path_factory, run_config):
    """Train a small model on series episodes in order, films by genre and franchises (generate(seed)),
    8 epochs of full-softmax CE: returns (dataset, items table, run directory). Settings add to or
    replace the small model's."""

    def trained(seed: int, **settings):
        from sasrec.train import train

        interactions, items = generate(seed=seed, num_users=400, num_series=6, num_films=60, num_franchises=3)
        dataset = build_dataset(interactions, Columns("user_id", "item_id", "timestamp"), items, source="planted")
        config = run_config(**{"epochs": 8, "patience": 30, "batch_size": 64, "lr": 3e-3, "device": "cpu", "seed": 0,
                               "maxlen": 20, "hidden": 32, "dropout": 0.1, "loss": "ce", "threads": 1} | settings)
        run_dir = tmp_path_factory.mktemp("planted") / "run"
        assert train(dataset, config, run_dir)["state"] == "finished"
        return dataset, items, run_dir

    return trained


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """Base URL of a running app whose workspace is a fresh temporary folder. The browser tests share
    it and some leave a run training: with slots for several runs at once, none waits for another
    test's run (the queue has tests of its own, each with its own server)."""
    with running_app(tmp_path_factory.mktemp("workspace"), env={"SASREC_TRAINING_SLOTS": "8"}) as url:
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
