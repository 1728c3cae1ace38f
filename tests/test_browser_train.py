"""The Data and Train pages in a real browser: upload a log, map its columns, save it, train on
it, and see the live progress go on through a reload."""

from playwright.sync_api import expect

from sasrec.synthetic import generate
from tests.browser import save_and_open_train, wait_for_app

# Small enough to train in seconds, with steps small enough that an epoch lasts long enough to
# reload the page in the middle of it.
SETTINGS = {"train_epochs": 2, "train_hidden": 16, "train_num_blocks": 1, "train_num_heads": 1, "train_maxlen": 50,
            "train_batch_size": 2}
PROGRESS = "[data-testid=stProgress] [role=progressbar]"



def progress(page) -> int:
    return int(page.locator(PROGRESS).get_attribute("aria-valuenow"))


def wait_for_progress(page, above: int, timeout: int) -> None:
    page.wait_for_function(f"() => Number(document.querySelector('{PROGRESS}')?.getAttribute('aria-valuenow')) > "
                           f"{above}", timeout=timeout)


def test_upload_map_save_train_and_reload(page, app_server, tmp_path):
    log = tmp_path / "views.csv"
    interactions, _ = generate(3, num_users=1500, num_series=20, num_films=200, num_franchises=8)
    interactions.rename(columns={"item_id": "show"}).to_csv(log, index=False)

    page.goto(app_server)
    wait_for_app(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Data").click()
    wait_for_app(page)
    page.get_by_role("radio", name="Upload a file").click()
    wait_for_app(page)
    page.locator(".st-key-upload_log input[type=file]").set_input_files(log)
    wait_for_app(page)
    # "show" says nothing by its name: the item is found by its values, and the page says how
    expect(page.get_by_text("Item show: found by content")).to_be_visible()
    expect(page.get_by_text("Choose the item column")).to_have_count(0)
    expect(page.get_by_text("A few sequences")).to_be_visible()
    save_and_open_train(page, "views", SETTINGS)
    page.locator(".st-key-start_training button").click()
    wait_for_app(page)
    wait_for_progress(page, above=0, timeout=60_000)
    before = progress(page)
    assert before < 100, "the run ended before the page could be reloaded in the middle of it"

    page.reload()
    wait_for_app(page)
    expect(page.locator(PROGRESS)).to_be_visible()
    wait_for_progress(page, above=before, timeout=60_000)  # the same run, still going
    wait_for_progress(page, above=99, timeout=120_000)
    main = page.get_by_test_id("stMain")
    expect(main.locator(".stMarkdownBadge", has_text="finished")).to_be_visible(timeout=30_000)
    expect(main.get_by_text("Test NDCG@10", exact=True)).to_be_visible()
