"""A time budget on the Train page, in a real browser: the form's budget, a run that its budget
ends, the progress that counts down to it, and more time for the same run."""

import re

from playwright.sync_api import expect

from tests.browser import wait_for_app

# Tiny and fast per epoch, with far more epochs than half a minute holds: the budget ends the run.
SETTINGS = {"train_epochs": 1000, "train_hidden": 16, "train_num_blocks": 1, "train_num_heads": 1,
            "train_maxlen": 20, "train_time_budget": 0.5}


def test_a_budget_ends_the_run_and_more_time_trains_it_on(page, app_server):
    page.goto(f"{app_server}/train")
    wait_for_app(page)
    # The app's runs have a time budget by default.
    expect(page.locator(".st-key-train_time_budget input")).to_have_value("10.00")
    for key, value in SETTINGS.items():
        page.locator(f".st-key-{key} input").fill(str(value))
    page.locator(".st-key-train_run_name input").fill("budgeted")
    page.locator(".st-key-start_training button").click()
    wait_for_app(page)
    main = page.get_by_test_id("stMain")
    # While it trains, the bar counts against the budget and the time left never exceeds it.
    expect(main.get_by_text("in the 30 s budget")).to_be_visible(timeout=90_000)
    expect(main.locator(".stMarkdownBadge", has_text="finished")).to_be_visible(timeout=120_000)
    expect(main.get_by_text("its time budget of 30 s ended it after")).to_be_visible()

    more = page.locator(".st-key-resume_minutes_budgeted input")
    more.fill("0.5")
    more.press("Enter")
    wait_for_app(page)
    page.get_by_role("button", name="Train longer").click()
    wait_for_app(page)
    expect(main.locator(".stMarkdownBadge", has_text="running")).to_be_visible(timeout=30_000)
    # What the first part used (about its 30 s), plus the 30 s given.
    expect(main.get_by_text(re.compile(r"its time budget of (5\d s|1 min \d\d s) ended it"))).to_be_visible(
        timeout=150_000)
    expect(main.locator(".stMarkdownBadge", has_text="finished")).to_be_visible()
