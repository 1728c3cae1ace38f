"""Why this prediction, in a real browser: edit a history, read the removal effects, add a second
model, move the epoch slider, open the same view from its link in a new tab, export the report,
stop the server and open the exported file in Chromium, offline.

A tiny model is trained into this test's own workspace (snapshots after epochs 1, 2 and 4), so
that the test does not depend on what the bundled demo model kept, and so that its server can
be stopped before the report is opened."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser import TEST_OUTPUT, running_app, wait_for_app
from tests.test_browser_explore import add_from_search, changed, history_chips, predictions

SHOTS = TEST_OUTPUT / "explain"


@pytest.fixture(scope="module")
def workspace(trained_workspace):
    """A finished run, "tiny", trained for 4 epochs (snapshots after epochs 1, 2 and 4)."""
    return trained_workspace(4)


def why_line(tab) -> str:
    line = tab.locator(".st-key-pg_why_section [data-testid='stMarkdownContainer']").filter(
        has_text=re.compile(r"^(Without|No single item)")).first
    expect(line).to_be_visible(timeout=30_000)
    return line.inner_text()


def title(row: list[str]) -> str:
    """The title cell of a predictions row (after an edit, a "Move" column comes before it)."""
    return row[2] if re.fullmatch(r"new|=|[▲▼] \d+", row[1]) else row[1]


def tables(tab) -> int:
    return tab.get_by_test_id("stDataFrame").count()


def test_why_two_models_epochs_a_link_and_the_report(browser, workspace, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1600}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    # stop_runs=False: the run was trained in this process, which running_app would otherwise take for a live trainer
    with running_app(workspace, stop_runs=False) as url:
        started = time.time()
        tab.goto(f"{url}/playground?run=tiny")
        wait_for_app(tab)
        tab.get_by_role("button", name="Example").click()
        chips = changed(tab, [], history_chips)
        first = changed(tab, [], predictions)

        # "Why?" is there for the top prediction as soon as there are predictions
        assert title(first[0]) in why_line(tab)
        assert time.time() - started < 60

        # an edit: one more episode; the predictions and the why follow
        add_from_search(tab, "S1E3")
        chips = changed(tab, chips, history_chips)
        edited = changed(tab, first, predictions)
        expect(tab.locator(".st-key-pg_why_section").get_by_text(title(edited[0])).first).to_be_visible()

        # another prediction's why: pick it in the selector
        tab.get_by_role("combobox", name="Why this prediction?").click()
        tab.get_by_role("option", name=f"3. {title(edited[2])}").click()
        wait_for_app(tab)
        expect(tab.locator(".st-key-pg_why_section").get_by_text(title(edited[2])).first).to_be_visible()
        assert title(edited[2]) in why_line(tab)

        # clicking the newest item's bar selects it in the history
        chart = tab.locator(".st-key-pg_why_chart").get_by_test_id("stVegaLiteChart")
        chart.scroll_into_view_if_needed()
        bar = chart.locator("path[role='graphics-symbol']").last  # one bar per item, oldest first
        bar.click(force=True)
        expect(tab.get_by_role("radio", name=chips[-1])).to_be_checked(timeout=30_000)
        tab.screenshot(path=SHOTS / "playground-why.png", full_page=True)

        # a second model: this run after epoch 1
        tab.get_by_role("combobox", name="Compare with").click()
        tab.get_by_role("option", name="tiny · epoch 1").click()
        wait_for_app(tab)
        expect(tab.get_by_text(re.compile(r"The two top-10 lists share \d+ of 10 items"))).to_be_visible()
        assert tables(tab) == 2

        # the epoch slider: back to the second snapshot (the second model is the first)
        slider = tab.get_by_role("slider", name=re.compile("Watch it learn"))
        before = predictions(tab)
        slider.focus()
        slider.press("Home")
        slider.press("ArrowRight")
        expect(slider).to_have_attribute("aria-valuetext", "epoch 2", timeout=30_000)
        changed(tab, before, predictions)
        assert "at=epoch-0002" in tab.url and "compare=" in tab.url
        tab.screenshot(path=SHOTS / "playground-compare-epoch.png", full_page=True)

        # the link opens the same view in a new tab (a new session)
        other = browser.new_context(viewport={"width": 1440, "height": 1600}).new_page()
        other.goto(tab.url)
        wait_for_app(other)
        expect(other.get_by_role("slider", name=re.compile("Watch it learn"))).to_have_attribute(
            "aria-valuetext", "epoch 2", timeout=30_000)
        expect(other.get_by_text(re.compile(r"The two top-10 lists share"))).to_be_visible()
        assert changed(other, [], history_chips) == history_chips(tab)  # the chips may come after the slider
        other.context.close()

        with tab.expect_download() as download:
            tab.get_by_role("button", name="Report (HTML)").click()
        report = tmp_path / "report.html"
        download.value.save_as(report)
    # The server has stopped: the report opens from the file alone, with the network off.
    offline = browser.new_context(viewport={"width": 1200, "height": 900}, offline=True)
    page = offline.new_page()
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(report.as_uri())
    expect(page.get_by_role("heading", name=re.compile("^Why tiny predicts"))).to_be_visible()
    for heading in ("The history", "What the model predicts next", "What the prediction looks at",
                    "Attention, layer by layer", "A second model: tiny · epoch 1", "How good the model is"):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    expect(page.locator(".chart svg")).to_have_count(2 + 2, timeout=30_000)  # why, looks at, two layers
    assert not errors and all(address.startswith("file:") for address in requests)
    page.screenshot(path=SHOTS / "report.png", full_page=True)
    offline.close()
    context.close()
