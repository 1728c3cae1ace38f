"""The training queue across a server restart, in a real browser (issue 20): a run queued from the
Train page is still waiting after the server restarts, even after the queue's runner was killed
(as by a reboot), and starts by itself when the run ahead of it is stopped."""

import calendar
import json
import os
import signal
import time

from playwright.sync_api import expect

from sasrec import audit, rundir, training_queue
from sasrec.config import RunConfig, configs
from sasrec.dataset import build_dataset
from sasrec.readers import Columns
from sasrec.synthetic import generate
from sasrec.workspace import Workspace
from tests.browser import TEST_OUTPUT, running_app, wait_for_app
from tests.waiting import wait_until

LONG = dict(epochs=1000, patience=1000, hidden=8, num_blocks=1, num_heads=1, maxlen=10, batch_size=32, threads=1,
            device="cpu")
FORM = {"train_epochs": 1000, "train_patience": 1000, "train_hidden": 8, "train_num_blocks": 1, "train_num_heads": 1,
        "train_maxlen": 10, "train_batch_size": 32}


def runner_alive(root) -> bool:
    return training_queue.runner_pid(root) is not None


def open_run(page, url: str, name: str) -> None:
    page.goto(f"{url}/train?run={name}&dataset=tiny")
    wait_for_app(page)
    expect(page.get_by_role("heading", name=name)).to_be_visible()


def badge(page, state: str):
    return page.get_by_test_id("stMain").locator(".stMarkdownBadge", has_text=state)


def test_a_queued_run_survives_a_restart_and_starts_when_the_slot_frees(browser, tmp_path):
    ws = Workspace(tmp_path / "workspace")
    interactions, items = generate(5, num_users=80, num_series=2, num_films=100, num_franchises=1)
    ws.save_dataset(build_dataset(interactions, Columns("user_id", "item_id", "timestamp"), items, source="tiny.csv"),
                    "tiny", {"source": "tiny"})
    first = ws.start_run("tiny", "first", RunConfig(*configs("auto", **LONG), data=None))
    page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    page.set_default_timeout(30_000)
    try:
        with running_app(ws.root, stop_runs=False) as url:
            open_run(page, url, "first")
            for key, value in FORM.items():
                page.locator(f".st-key-{key} input").fill(str(value))
            page.locator(".st-key-train_run_name input").fill("second")
            page.locator(".st-key-start_training button").click()
            wait_for_app(page)
            expect(page.get_by_text("Number 1 in the queue")).to_be_visible()
        # The server is gone; so is the queue's runner, as after a reboot (the first run goes on, as a
        # run from the command line would).
        assert runner_alive(ws.root)
        os.kill(training_queue.runner_pid(ws.root), signal.SIGKILL)
        wait_until(lambda: not runner_alive(ws.root), timeout=10)
        assert ws.run("second").state() == rundir.QUEUED and first.state() == rundir.RUNNING

        with running_app(ws.root) as url:
            open_run(page, url, "second")
            expect(badge(page, "queued")).to_be_visible()
            expect(page.get_by_text("Number 1 in the queue")).to_be_visible()
            assert runner_alive(ws.root), "the restarted server started the queue's runner again"
            page.goto(f"{url}/playground?run=second")  # no weights yet: it says why, not "no checkpoint"
            wait_for_app(page)
            expect(page.get_by_text("is waiting for a free training slot")).to_be_visible()
            page.screenshot(path=str(TEST_OUTPUT / "queued_playground.png"))
            open_run(page, url, "first")
            page.locator(".st-key-stop_run button").first.click()
            wait_until(lambda: first.state() != rundir.RUNNING, timeout=60)
            open_run(page, url, "second")
            expect(badge(page, "running")).to_be_visible(timeout=60_000)  # started by itself
            assert first.state() != rundir.RUNNING
            page.locator(".st-key-stop_run button").first.click()
            wait_until(lambda: ws.run("second").state() != rundir.RUNNING, timeout=60)
    finally:
        page.context.close()
        for run in ws.runs():
            if run.is_alive():
                ws.stop_run(run)

    lines = [json.loads(line) for line in (ws.root / audit.AUDIT_FILE).read_text().splitlines()]
    for line in lines:
        assert line.pop("who") == "local"
        assert 0 <= time.time() - calendar.timegm(time.strptime(line.pop("when"), "%Y-%m-%dT%H:%M:%SZ")) < 600
    assert lines[:5] == [
        {"what": "save", "dataset": "tiny", "source": "tiny.csv"},
        {"what": "start", "run": "first", "dataset": "tiny"},
        {"what": "start", "run": "second", "dataset": "tiny", "queued": 1},
        {"what": "stop", "run": "first"},
        {"what": "stop", "run": "second"},
    ]
