"""Take the README's screenshots in a real browser: python -m assets.screenshots

Starts the app on an empty workspace, opens the demo from the Welcome page the way a
new user would, and saves one screenshot per page as assets/screenshot-<page>.png.
Needs Debian's Chromium (/usr/bin/chromium) and the dev requirements.

    python -m assets.screenshots --workspace WS --run NAME --out /tmp/shots [--full-page]

shoots every page of an existing workspace's run instead (a real-sized one, say), with a
dataset user's history on the Playground, into another folder; the workspace is used as it
is (a run it trains goes on training).
"""

import argparse
import tempfile
import time
from pathlib import Path

from tests.browser import chromium, running_app, wait_for_app

ASSETS = Path(__file__).resolve().parent


VIEWPORT = {"width": 1440, "height": 1000}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, help="an existing workspace (default: a new, empty one)")
    parser.add_argument("--run", help="the run to show (with --workspace)")
    parser.add_argument("--out", type=Path, default=ASSETS, help="where the PNGs go (default: assets/)")
    parser.add_argument("--full-page", action="store_true",
                        help="a window tall enough for the whole page, not the first screen (Streamlit scrolls "
                             "inside the page, so a browser's full-page screenshot would not)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.workspace:
        with running_app(args.workspace, stop_runs=False) as url, chromium() as browser:
            shoot_run(browser, url, args.run, args.out, args.full_page)
        return
    with tempfile.TemporaryDirectory() as workspace, running_app(Path(workspace)) as url, chromium() as browser:
        tab = browser.new_page(viewport=VIEWPORT)
        tab.set_default_timeout(60_000)
        tab.goto(url)
        wait_for_app(tab)
        shoot(tab, "welcome", args.out, args.full_page)
        tab.get_by_role("button", name="Open the Playground with an example").click()
        wait_for_app(tab)
        tab.get_by_text("Predicted in").wait_for()
        shoot(tab, "playground", args.out, args.full_page)
        take_apart(tab, args.out)
        for page in ("Attention", "Evaluate", "Data", "Train"):
            tab.get_by_test_id("stSidebarNav").get_by_role("link", name=page).click()
            wait_for_app(tab)
            shoot(tab, page.lower(), args.out, args.full_page)
            if page == "Attention":
                across_users(tab, args.out)


def take_apart(tab, out: Path) -> None:
    """The Playground with a head switched off, the gradients beside the removal effects, and the
    smallest change that puts another item first; then every head on again."""
    tab.set_viewport_size({"width": 1440, "height": 1900})
    tab.locator(".st-key-pg_heads_1 button").filter(has_text="H2").click()
    wait_for_app(tab)
    tab.locator(".st-key-pg_why_gradients label").click()
    wait_for_app(tab)
    tab.locator(".st-key-pg_cf_search button").click()
    wait_for_app(tab)
    tab.get_by_text("instead of").wait_for()
    tab.get_by_text("Example customers").evaluate("caption => caption.scrollIntoView()")
    tab.get_by_test_id("stMain").evaluate("main => main.scrollBy(0, -40)")
    shoot(tab, "playground-take-apart", out)
    tab.locator(".st-key-pg_heads_reset button").first.click()
    wait_for_app(tab)
    tab.locator(".st-key-pg_why_gradients label").click()
    wait_for_app(tab)
    tab.set_viewport_size(VIEWPORT)


def across_users(tab, out: Path) -> None:
    """The Attention page's head importance and its three-way agreement of attention, removal and gradient."""
    tab.set_viewport_size({"width": 1440, "height": 1150})
    tab.get_by_text("All three agree", exact=False).wait_for()
    tab.get_by_role("heading", name="Which heads matter?").evaluate("heading => heading.scrollIntoView()")
    shoot(tab, "attention-across-users", out)
    tab.set_viewport_size(VIEWPORT)


def shoot_run(browser, url: str, run: str, out: Path, full_page: bool) -> None:
    """Every page with `run` active, and a random dataset user's history in the Playground."""
    tab = browser.new_page(viewport=VIEWPORT | ({"height": 3400} if full_page else {}))
    tab.set_default_timeout(120_000)
    tab.goto(f"{url}/playground?run={run}")
    wait_for_app(tab)
    tab.get_by_role("button", name="Dataset user").click()
    tab.get_by_role("button", name="Random user").click()
    wait_for_app(tab)
    tab.get_by_text("Predicted in").wait_for()
    tab.keyboard.press("Escape")
    shoot(tab, "playground", out, full_page)
    for page in ("Attention", "Evaluate", "Train", "Data", "Welcome"):
        started = time.perf_counter()
        tab.get_by_test_id("stSidebarNav").get_by_role("link", name=page).click()
        wait_for_app(tab)
        print(f"{page}: {time.perf_counter() - started:.1f} s to open")
        shoot(tab, page.lower(), out, full_page)


def shoot(tab, name: str, out: Path = ASSETS, full_page: bool = False) -> None:
    tab.wait_for_timeout(1500)  # let the charts finish drawing
    path = out / f"screenshot-{name}.png"
    tab.screenshot(path=path)
    print(path)


if __name__ == "__main__":
    main()
