"""The demo flow in a real browser: edit a history on the Playground and watch the top-k
follow every edit, then look at its attention maps. Uses the bundled demo model."""

import json
import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser import ROOT, wait_for_app

DEMO_RUN = ROOT / "sample_data" / "demo_run"

pytestmark = pytest.mark.skipif(not (DEMO_RUN / "config.json").exists(),
                                reason="the bundled demo model (sample_data/demo_run) is missing")


def open_page(tab, app_server, name: str) -> None:
    """Start at the app's root with a link to the demo model, as a visitor does (without it, a
    new visit opens on the run used last, which other tests may have trained), then follow the
    navigation link."""
    tab.goto(f"{app_server}/?run=demo")
    wait_for_app(tab)
    tab.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    wait_for_app(tab)
    expect(tab.get_by_role("heading", name=name, level=1)).to_be_visible(timeout=30_000)


def predictions(tab) -> list[list[str]]:
    """The rows of the predictions table, as the text of their cells."""
    grid = tab.get_by_test_id("stDataFrame").first
    expect(grid).to_be_visible(timeout=30_000)
    # the grid draws on a canvas; its accessible twin (a hidden table) holds the text
    return [[cell.text_content() for cell in row.locator("[role='gridcell']").all()]
            for row in grid.locator("tbody [role='row']").all()]


def history_chips(tab) -> list[str]:
    return [chip.inner_text() for chip in tab.get_by_role("radio").all()]


def changed(tab, before, read, timeout=30.0):
    """Wait until read(tab) differs from `before` (no button is pressed: the app reruns by itself)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        wait_for_app(tab)
        now = read(tab)
        if now and now != before:
            return now
        tab.wait_for_timeout(300)
    raise AssertionError(f"still {before}")


def add_from_search(tab, query: str) -> None:
    tab.get_by_placeholder("search the catalog by title or id").fill(query)
    result = tab.locator("[class*='st-key-pg_add_']").filter(has_text=query).first  # once the search has run
    expect(result).to_be_visible(timeout=30_000)
    result.get_by_role("button").click()


def test_edit_a_history_and_watch_the_top_k_change(page, app_server):
    started = time.time()
    open_page(page, app_server, "Playground")
    expect(page.get_by_role("button", name="Predict")).to_have_count(0)

    add_from_search(page, "S1E1")
    chips = changed(page, [], history_chips)
    assert len(chips) == 1
    first = changed(page, [], predictions)
    assert len(first) == 10 and all(row[0] for row in first)

    add_from_search(page, "Crypt")
    chips = changed(page, chips, history_chips)
    assert len(chips) == 2
    added = changed(page, first, predictions)

    page.get_by_role("radio", name=chips[0]).click()  # reorder: the oldest item moves one later
    wait_for_app(page)
    page.get_by_role("button", name="Later").click()
    reordered = changed(page, chips, history_chips)
    assert [c.split(". ", 1)[1] for c in reordered] == [c.split(". ", 1)[1] for c in reversed(chips)]
    moved = changed(page, added, predictions)

    page.get_by_role("radio", name=reordered[0]).click()
    wait_for_app(page)
    page.get_by_role("button", name="Remove").click()
    assert len(changed(page, reordered, history_chips)) == 1
    changed(page, moved, predictions)
    assert time.time() - started < 60, "the flow takes a visitor under a minute"


def test_attention_page_shows_a_heatmap_for_each_layer(page, app_server):
    started = time.time()
    open_page(page, app_server, "Playground")
    page.get_by_role("button", name="Example").click()
    changed(page, [], history_chips)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Attention").click()
    wait_for_app(page)
    layers = json.loads((DEMO_RUN / "config.json").read_text())["model"]["num_blocks"]
    for layer in range(1, layers + 1):
        expect(page.get_by_role("heading", name=f"Layer {layer}")).to_be_visible(timeout=30_000)
        heatmap = page.locator(f".st-key-att_heatmap_{layer}").get_by_test_id("stVegaLiteChart")
        heatmap.scroll_into_view_if_needed()
        expect(heatmap).to_be_visible(timeout=30_000)
        assert heatmap.bounding_box()["height"] > 100
    expect(page.get_by_text("Predicted next:")).to_be_visible()
    assert time.time() - started < 60

    # clicking a bar of the first layer highlights that history item in every view
    bars = page.locator(".st-key-att_bars").get_by_test_id("stVegaLiteChart")
    bars.scroll_into_view_if_needed()
    box = bars.bounding_box()
    # the newest item's bar in the layer-1 panel: the lowest row, just right of the axis
    page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.72)
    expect(page.get_by_role("combobox", name="Highlight an item")).to_have_value(re.compile(r"^\d+\. \S"),
                                                                               timeout=30_000)
