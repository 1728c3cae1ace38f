"""Two people on one server at once: one edits a Playground history while the other fills in
the training form and starts a run. Neither sees or overwrites the other's unsaved state."""

import time

from playwright.sync_api import expect

from tests.browser import wait_for_app

HISTORY_CHIPS = "[data-testid='stMain'] [role='radio']"


def history(tab) -> list[str]:
    return [chip.inner_text() for chip in tab.locator(HISTORY_CHIPS).all()]


def go(tab, url: str, heading: str) -> None:
    tab.goto(url)
    wait_for_app(tab)
    expect(tab.get_by_role("heading", name=heading, level=1)).to_be_visible(timeout=30_000)


def test_two_sessions_keep_their_own_history_form_and_selection(browser, app_server):
    alice_context = browser.new_context(viewport={"width": 1440, "height": 1000})
    bob_context = browser.new_context(viewport={"width": 1440, "height": 1000})
    alice, bob = alice_context.new_page(), bob_context.new_page()
    for tab in (alice, bob):
        tab.set_default_timeout(30_000)
    try:
        go(alice, f"{app_server}/playground?run=demo", "Playground")
        alice.get_by_role("button", name="Example").click()
        wait_for_app(alice)
        deadline = time.time() + 30
        while not history(alice) and time.time() < deadline:
            alice.wait_for_timeout(300)
        alice_history = history(alice)
        assert alice_history, "the example history did not appear"

        go(bob, f"{app_server}/train?run=demo", "Train")
        hidden = bob.locator(".st-key-train_hidden input")
        hidden.fill("8")
        bob.locator(".st-key-train_epochs input").fill("1")
        bob.locator(".st-key-train_maxlen input").fill("10")
        bob.locator(".st-key-train_run_name input").fill("bobs-run")
        bob.locator(".st-key-start_training button").click()
        wait_for_app(bob)
        expect(bob.get_by_role("heading", name="bobs-run")).to_be_visible(timeout=30_000)

        # Alice's history and model are hers: Bob's run did not replace them.
        alice.reload()
        wait_for_app(alice)
        # The chips come with the Playground's fragment, which may run after the page is idle
        # once; a run training meanwhile (Bob's) slows that down.
        expect(alice.locator(HISTORY_CHIPS)).to_have_count(len(alice_history), timeout=30_000)
        assert history(alice) == alice_history
        expect(alice.get_by_test_id("stSidebar").get_by_text("demo", exact=True)).to_be_visible()
        # Her training form holds the preset's values, not Bob's.
        alice.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
        wait_for_app(alice)
        expect(alice.locator(".st-key-train_hidden input")).to_have_value("64")
        expect(alice.get_by_role("heading", name="demo")).to_be_visible()

        # Bob's Playground starts from his own (empty) history, on his own run.
        bob.get_by_test_id("stSidebarNav").get_by_role("link", name="Playground").click()
        wait_for_app(bob)
        assert history(bob) == []
        expect(bob.get_by_test_id("stSidebar").get_by_text("bobs-run", exact=True)).to_be_visible()
    finally:
        alice_context.close()
        bob_context.close()
