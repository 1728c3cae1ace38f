"""A real-sized log from upload to a model to demo, in a real browser, as the issue's user did it:
about 300,000 events over 24,000 items (no titles), uploaded and saved on the Data page; the
time estimated, then a run started on the Train page; a reload in the middle of it and a
second tab at the app's plain address, both on that run; the Playground during the first
epoch; stop, then resume; and the Evaluate page opening at once afterwards.

Small model settings keep the training itself to a minute or two."""

import time

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import expect

from tests.browser import save_and_open_train, wait_for_app
from tests.test_browser_train import PROGRESS, progress, wait_for_progress

# Batches of 8: an epoch of about 3,700 steps, long enough for the checks a page makes in its middle (at 16,
# a quiet machine could finish both epochs before the page got there).
SETTINGS = {"train_hidden": 16, "train_num_blocks": 1, "train_num_heads": 1, "train_maxlen": 20, "train_epochs": 2,
            "train_batch_size": 8}
RUN = "real-run"


def real_sized_log(path, num_users=30_000, num_items=24_000, seed=0) -> int:
    """An Amazon-like log: short histories (3 to about 40 events, 10 on average), ids without
    titles, a popular head and a long tail; a next item is often the one after the last (a
    series), else a jump. Returns the number of events."""
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.geometric(1 / 8, num_users) + 2, 60)
    user = np.repeat(np.arange(num_users), lengths)
    first = np.r_[0, np.cumsum(lengths)[:-1]]
    jumps = np.where(rng.random(len(user)) < 0.6, 1, (num_items * rng.random(len(user)) ** 2).astype(np.int64))
    jumps[first] = (num_items * rng.random(num_users) ** 2).astype(np.int64)  # where each user starts
    steps = np.cumsum(jumps)
    items = (steps - np.repeat(steps[first] - jumps[first], lengths)) % num_items
    position = np.arange(len(user)) - np.repeat(first, lengths)
    pd.DataFrame({"user_id": [f"A{u:06d}" for u in user], "item_id": [f"B{i:05d}" for i in items],
                  "timestamp": 1_600_000_000 + position * 86_400 + user}).to_csv(path, index=False)
    return len(user)


def open_from_sidebar(page, name: str) -> float:
    """Seconds from the click on a page's link to the end of its first run."""
    started = time.perf_counter()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible(timeout=60_000)
    wait_for_app(page, timeout=120_000)
    return time.perf_counter() - started - 0.3  # wait_for_app's pause for a rerun to start


@pytest.mark.slow
def test_a_real_sized_log_from_upload_to_demo(page, browser, app_server, tmp_path):
    log = tmp_path / "reviews.csv"
    events = real_sized_log(log)
    assert 250_000 < events < 350_000

    page.goto(app_server)
    wait_for_app(page)
    open_from_sidebar(page, "Data")
    page.get_by_role("radio", name="Upload a file").click()
    wait_for_app(page)
    page.locator(".st-key-upload_log input[type=file]").set_input_files(log)
    wait_for_app(page, timeout=180_000)
    expect(page.get_by_text("A few sequences")).to_be_visible(timeout=120_000)
    save_and_open_train(page, "reviews", SETTINGS, timeout=120_000)

    # Estimate, then start
    page.locator(".st-key-train_run_name input").fill(RUN)
    page.get_by_role("button", name="Estimate the time").click()
    estimate = page.get_by_text("per epoch", exact=False).first
    expect(estimate).to_be_visible(timeout=120_000)
    assert "About" in estimate.inner_text()
    page.locator(".st-key-start_training button").click()
    wait_for_app(page)
    expect(page.get_by_test_id("stMain").get_by_role("heading", name=RUN)).to_be_visible()

    # A second tab at the plain address opens on the run that trains, and its Playground says
    # in words when the first checkpoint comes.
    second = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    second.set_default_timeout(60_000)
    second.goto(app_server)
    wait_for_app(second)
    expect(second.get_by_test_id("stSidebar").get_by_text(RUN)).to_be_visible()
    expect(second.get_by_test_id("stSidebar").get_by_text("reviews")).to_be_visible()
    linked = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    linked.goto(f"{app_server}/?run=demo")  # an explicit link wins over what was used last
    wait_for_app(linked)
    expect(linked.get_by_test_id("stSidebar").get_by_text("demo", exact=True)).to_be_visible()
    expect(linked.get_by_test_id("stSidebar").get_by_text(RUN)).to_have_count(0)
    linked.context.close()
    open_from_sidebar(second, "Playground")
    waiting = second.get_by_text("the first checkpoint comes at the end of epoch 1")
    expect(waiting).to_be_visible(timeout=60_000)
    shown = second.get_by_test_id("stMain").inner_text()
    assert "pytest-of" not in shown and "/runs/" not in shown, "no server path on the page"

    # Reload in the middle of the first epoch: the same run goes on, the form keeps its settings.
    wait_for_progress(page, above=0, timeout=120_000)
    before = progress(page)
    assert before < 50, "the run's first epoch ended before the page could be reloaded in the middle of it"
    page.reload()
    wait_for_app(page)
    expect(page.locator(PROGRESS)).to_be_visible()
    wait_for_progress(page, above=before, timeout=120_000)
    expect(page.locator(".st-key-train_hidden input")).to_have_value("16")
    assert page.locator(".st-key-train_epochs input").input_value() == "2"

    # Stop, then resume for one epoch in all
    page.get_by_role("button", name="Stop", exact=True).click()
    main = page.get_by_test_id("stMain")
    expect(main.locator(".stMarkdownBadge", has_text="stopped")).to_be_visible(timeout=60_000)
    page.locator(".st-key-resume_epochs_real-run input").fill("1")
    page.get_by_role("button", name="Resume", exact=True).click()
    wait_for_app(page)
    expect(main.locator(".stMarkdownBadge", has_text="running")).to_be_visible(timeout=30_000)
    expect(main.locator(".stMarkdownBadge", has_text="finished")).to_be_visible(timeout=300_000)
    expect(main.get_by_text("Test NDCG@10", exact=True)).to_be_visible()

    # The second tab's Playground fills in by itself once there are weights.
    expect(second.get_by_text("Add an item to see what the model predicts next")).to_be_visible(timeout=60_000)
    second.context.close()

    # Evaluate reads what the run wrote: it opens at once. (Twice, the faster counted: on a shared CI
    # machine one page load can wait seconds for a core; bench/page_open.py has the medians.)
    opens = []
    for _ in range(2):
        open_from_sidebar(page, "Playground")
        opens.append(open_from_sidebar(page, "Evaluate"))
        expect(page.get_by_role("heading", name="Test metrics")).to_be_visible()
        expect(page.get_by_test_id("stPlotlyChart")).to_be_visible()
    assert min(opens) <= 2.0, f"Evaluate took {opens} s to open"
