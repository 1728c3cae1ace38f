"""Take the README's screenshots in a real browser: python -m assets.screenshots

Starts the app on an empty workspace, opens the demo from the Welcome page the way a
new user would, and saves one screenshot per page as assets/screenshot-<page>.png.
Needs Debian's Chromium (/usr/bin/chromium) and the dev requirements.
"""

import tempfile
from pathlib import Path

from tests.browser import chromium, running_app, wait_for_app

ASSETS = Path(__file__).resolve().parent


VIEWPORT = {"width": 1440, "height": 1000}


def main():
    with tempfile.TemporaryDirectory() as workspace, running_app(Path(workspace)) as url, chromium() as browser:
        tab = browser.new_page(viewport=VIEWPORT)
        tab.set_default_timeout(60_000)
        tab.goto(url)
        wait_for_app(tab)
        shoot(tab, "welcome")
        tab.get_by_role("button", name="Open the Playground with an example").click()
        wait_for_app(tab)
        tab.get_by_text("Predicted in").wait_for()
        shoot(tab, "playground")
        for page in ("Attention", "Evaluate", "Data", "Train"):
            tab.get_by_test_id("stSidebarNav").get_by_role("link", name=page).click()
            wait_for_app(tab)
            shoot(tab, page.lower())


def shoot(tab, name: str) -> None:
    tab.wait_for_timeout(1500)  # let the charts finish drawing
    path = ASSETS / f"screenshot-{name}.png"
    tab.screenshot(path=path)
    print(path)


if __name__ == "__main__":
    main()
