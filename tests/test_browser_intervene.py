"""Taking a Beauty-sized model apart in a real browser: an example customer in one click, a head
switched off with the predictions following, the smallest change that flips the top prediction and
its loading, the gradients beside the removal effects, a chart saved as PNG, and head importance and
the three-way agreement on the Attention page.

The run is trained in this process on an Amazon-like log of about 300,000 events over 24,000 items
(tests/test_browser_real_size.py's), one epoch of a small 2-layer, 2-head model: what the browser
sees is the size, not the quality."""

import re
import time

import pytest
from playwright.sync_api import expect

from sasrec import cli, insights
from tests.browser import TEST_OUTPUT, running_app, wait_for_app
from tests.test_browser_explore import changed, history_chips, predictions
from tests.test_browser_real_size import real_sized_log

SHOTS = TEST_OUTPUT / "intervene"
RUN = "reviews"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("workspace")
    data = tmp_path_factory.mktemp("data")
    real_sized_log(data / "reviews.csv")
    # the sampled softmax and a small validation sample keep the training to seconds on a shared machine
    cli.main(["train", str(data / "reviews.csv"), "--out", str(root / "runs" / RUN), "--name", RUN, "--epochs", "1",
              "--maxlen", "20", "--hidden", "16", "--blocks", "2", "--heads", "2", "--batch-size", "256",
              "--loss", "sampled-ce", "--num-negatives", "256", "--valid-users", "1000", "--threads", "2"])
    assert insights.read_insights(root / "runs" / RUN) is not None, "the run stored its insights when it finished"
    return root


def top_title(tab) -> str:
    row = predictions(tab)[0]
    return row[2] if re.fullmatch(r"new|=|[▲▼] \d+", row[1]) else row[1]


@pytest.mark.slow
def test_take_a_beauty_sized_model_apart(browser, workspace):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1800}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    examples = {e["kind"]: e for e in insights.read_insights(workspace / "runs" / RUN)["examples"]}
    assert set(examples) == {"typical", "explorer", "short", "beats_markov"}, "no categories: no loyal fan"
    with running_app(workspace, stop_runs=False) as url:
        tab.goto(f"{url}/playground?run={RUN}")
        wait_for_app(tab)

        # an example customer, in one click
        started = time.perf_counter()
        wait_for_app(tab)
        tab.locator(".st-key-pg_examples_typical button").first.click()
        chips = changed(tab, [], history_chips)
        first = changed(tab, [], predictions)
        assert time.perf_counter() - started < 30
        assert len(chips) == len(examples["typical"]["history"])
        expect(tab.get_by_text(f"Typical: {examples['typical']['why'][:40]}")).to_be_visible()  # under the history

        # a head switched off: the predictions follow, with rank moves, and the link says which
        tab.locator(".st-key-pg_heads_1 button").filter(has_text="H2").click()
        masked = changed(tab, first, predictions)
        expect(tab.get_by_text("1 head switched off", exact=False)).to_be_visible()
        assert "off=" in tab.url and any(re.fullmatch(r"new|=|[▲▼] \d+", row[1]) for row in masked)

        # gradients beside the removal effects and attention
        tab.locator(".st-key-pg_why_gradients label").click()
        wait_for_app(tab)
        why = tab.locator(".st-key-pg_why_chart").get_by_test_id("stVegaLiteChart")
        expect(why.get_by_text("Gradient (IG)")).to_be_visible()
        expect(tab.get_by_text("They add up to", exact=False)).to_be_visible()

        # the same chart saved as a PNG, for a slide
        with tab.expect_download() as download:
            tab.locator(".st-key-pg_why_chart_png button").click()
        png = download.value.path().read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000

        # the smallest change that puts another item first, and loading it
        before = top_title(tab)
        tab.locator(".st-key-pg_cf_search button").click()
        sentence = tab.get_by_text(re.compile("instead of"))
        expect(sentence).to_be_visible()
        assert before in sentence.inner_text()
        expect(tab.locator(".st-key-pg_cf_histories").get_by_test_id("stDataFrame")).to_have_count(2)
        tab.screenshot(path=SHOTS / "playground.png", full_page=True)
        tab.locator(".st-key-pg_cf_load button").first.click()  # a button with help is drawn twice
        changed(tab, chips, history_chips)
        after = changed(tab, masked, predictions)
        assert top_title(tab) != before and after

        # the Attention page: which heads matter, and do attention, removal and gradient agree
        tab.get_by_test_id("stSidebarNav").get_by_role("link", name="Attention").click()
        wait_for_app(tab)
        heads = tab.locator(".st-key-att_head_importance").get_by_test_id("stVegaLiteChart")
        expect(heads.get_by_text("Whole layer")).to_be_visible()
        heads.scroll_into_view_if_needed()
        expect(heads).to_be_visible()
        assert heads.evaluate("chart => chart.getBoundingClientRect().height") > 80, "the rows are drawn, not squeezed"
        three_way = tab.locator(".st-key-att_three_way").get_by_test_id("stDataFrame")
        three_way.scroll_into_view_if_needed()
        expect(three_way).to_be_visible()
        expect(tab.get_by_text("All three agree", exact=False)).to_be_visible()
        tab.screenshot(path=SHOTS / "attention.png", full_page=True)
    context.close()
