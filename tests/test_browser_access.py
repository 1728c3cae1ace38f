"""Sign-in, roles and the queue in a real browser (issue 20), against a real OpenID Connect
provider on a loopback port (oidc-provider-mock): two editors start runs at the same moment and one
waits in the queue; a viewer explores, finds no control that changes anything, and crafted links
change nothing; signing out; an expired sign-in; the viewer-only mode. The audit log is read line
by line after the flow."""

import json
import time
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import quote

import httpx
import oidc_provider_mock
from playwright.sync_api import expect

from sasrec import audit, rundir
from sasrec.dataset import build_dataset
from sasrec.readers import Columns
from sasrec.synthetic import generate
from sasrec.workspace import Workspace
from tests.browser import running_app, wait_for_app
from tests.waiting import wait_until

USERS = {"alice@example.com": {},  # an editor by her e-mail
         "bob@example.com": {"roles": ["staff", "sasrec-editor"]},  # an editor by a role claim
         "carol@example.com": {"roles": ["staff"]}}  # a viewer
SETTINGS = {"train_epochs": 1000, "train_patience": 1000, "train_hidden": 8, "train_num_blocks": 1,
            "train_num_heads": 1, "train_maxlen": 10, "train_batch_size": 32}
MUTATING_KEYS = ["start_training", "estimate_training", "stop_run", "delete_run", "resume_run", "cancel_queued",
                 "save_dataset", "rename_dataset", "delete_dataset", "upload_log", "upload_catalog"]


@contextmanager
def provider(token_seconds: float = 3600):
    """An OpenID Connect provider on a loopback port that knows USERS; yields its issuer URL."""
    with oidc_provider_mock.run_server_in_thread(access_token_max_age=timedelta(seconds=token_seconds)) as server:
        issuer = f"http://localhost:{server.server_port}"
        for email, claims in USERS.items():
            assert httpx.put(f"{issuer}/users/{quote(email)}", json={"email": email, "email_verified": True,
                                                                     **claims}).status_code == 204
        yield issuer


def secrets_file(folder, issuer: str):
    path = folder / "secrets.toml"
    path.write_text(f"""
[auth]
redirect_uri = "http://127.0.0.1:{{port}}/oauth2callback"
cookie_secret = "a-long-random-secret-for-the-tests-only"
client_id = "sasrec-explorer"
client_secret = "not-a-secret"
server_metadata_url = "{issuer}/.well-known/openid-configuration"

[sasrec]
editors = ["alice@example.com"]
editor_roles = ["sasrec-editor"]
""")
    return path


def workspace_with_a_dataset(root) -> Workspace:
    ws = Workspace(root)
    interactions, items = generate(5, num_users=80, num_series=2, num_films=100, num_franchises=1)
    ws.save_dataset(build_dataset(interactions, Columns("user_id", "item_id", "timestamp"), items, source="tiny.csv"),
                    "tiny", {"source": "tiny"})
    return ws


def tab(browser):
    page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    page.set_default_timeout(30_000)
    return page


def sign_in(page, url: str, email: str) -> None:
    page.goto(url)
    wait_for_app(page)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_placeholder("sub").fill(email)  # the provider's own form
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{url}/**")
    wait_for_app(page)
    expect(page.get_by_test_id("stSidebar").get_by_text(email)).to_be_visible()


def open_train(page, url: str, query: str = "") -> None:
    page.goto(f"{url}/train{query}")
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Train", level=1)).to_be_visible()


def badge(page, state: str):
    return page.get_by_test_id("stMain").locator(".stMarkdownBadge", has_text=state)


def no_control_that_changes_anything(page) -> None:
    for key in MUTATING_KEYS:
        expect(page.locator(f".st-key-{key}")).to_have_count(0)


def visible_state(ws) -> dict:
    """What a viewer could change: the datasets, the runs and their states, uploads, what a new visit opens on."""
    return {"datasets": [d.name for d in ws.datasets()], "runs": {r.name: r.state() for r in ws.runs()},
            "uploads": sorted(p.name for p in (ws.root / "uploads").rglob("*")), "recent": ws.recent()}


def audit_lines(ws) -> list[dict]:
    lines = [json.loads(line) for line in (ws.root / audit.AUDIT_FILE).read_text().splitlines()]
    for line in lines:
        time.strptime(line.pop("when"), "%Y-%m-%dT%H:%M:%SZ")
    return lines


def test_editors_queue_a_viewer_explores_and_signs_out(browser, tmp_path):
    ws = workspace_with_a_dataset(tmp_path / "workspace")
    with provider() as issuer, running_app(ws.root, args=("--secrets.files", str(secrets_file(tmp_path, issuer)))) \
            as url:
        # Not signed in: the welcome page alone, with a sign-in button.
        stranger = tab(browser)
        stranger.goto(f"{url}/train")
        wait_for_app(stranger)
        expect(stranger.get_by_role("button", name="Sign in")).to_be_visible()
        expect(stranger.get_by_role("heading", name="Train", level=1)).to_have_count(0)
        expect(stranger.get_by_test_id("stSidebarNav")).to_have_count(0)

        # Two editors fill in the training form and click Start at the same moment.
        alice, bob = tab(browser), tab(browser)
        for page, email in ((alice, "alice@example.com"), (bob, "bob@example.com")):
            sign_in(page, url, email)
            expect(page.get_by_test_id("stSidebar").get_by_text("editor")).to_be_visible()
            open_train(page, url, "?dataset=tiny")
            for key, value in SETTINGS.items():
                page.locator(f".st-key-{key} input").fill(str(value))
            page.locator(".st-key-train_run_name input").fill(email.split("@")[0] + "-run")
        alice.locator(".st-key-start_training button").click()
        bob.locator(".st-key-start_training button").click()
        mine = {"alice-run": alice, "bob-run": bob}
        # The demo and theirs, each past its start: a run's folder is made before its queue entry or launch is
        # written, and in between it reads "unknown" (CI once read bob's run there).
        wait_until(lambda: len(ws.runs()) == 3 and "unknown" not in {ws.run(name).state() for name in mine},
                   timeout=60)
        states = {name: ws.run(name).state() for name in mine}
        assert sorted(states.values()) == [rundir.QUEUED, rundir.RUNNING], states
        running = next(name for name, state in states.items() if state == rundir.RUNNING)
        waiting = next(name for name, state in states.items() if state == rundir.QUEUED)

        # The one whose run waits sees its place and when it should start, and can cancel it.
        wait_for_app(mine[waiting])
        expect(badge(mine[waiting], "queued")).to_be_visible()
        expect(mine[waiting].get_by_text("Number 1 in the queue")).to_be_visible()
        expect(mine[waiting].get_by_text("starts", exact=False).first).to_be_visible()
        expect(mine[waiting].locator(".st-key-cancel_queued")).to_be_visible()
        expect(mine[waiting].get_by_role("heading", name="Queue")).to_be_visible()
        expect(mine[running].locator(".st-key-stop_run")).to_be_visible(timeout=60_000)
        expect(mine[running].get_by_role("heading", name="Audit log")).to_be_visible()
        for _ in range(20):
            assert [ws.run(name).state() for name in mine].count(rundir.RUNNING) == 1
            time.sleep(0.1)

        # A viewer explores: every page, no control that changes anything, and crafted links change nothing.
        carol = tab(browser)
        sign_in(carol, url, "carol@example.com")
        expect(carol.get_by_test_id("stSidebar").get_by_text("viewer")).to_be_visible()
        before = visible_state(ws)
        open_train(carol, url, f"?run={running}&deleting={running}&dataset=tiny")
        expect(carol.get_by_role("heading", name=running)).to_be_visible()
        expect(carol.get_by_text("You are a viewer here")).to_be_visible()
        expect(carol.get_by_role("heading", name="Queue")).to_be_visible()
        expect(carol.get_by_role("heading", name="Audit log")).to_have_count(0)
        no_control_that_changes_anything(carol)
        open_train(carol, url, f"?run={waiting}")
        expect(badge(carol, "queued")).to_be_visible()
        no_control_that_changes_anything(carol)
        carol.goto(f"{url}/data?data_source=upload&dataset=tiny")
        wait_for_app(carol)
        expect(carol.get_by_role("radio", name="Upload a file")).to_have_count(0)
        carol.get_by_role("radio", name="Saved datasets").click()
        wait_for_app(carol)
        expect(carol.get_by_text("Sequence lengths")).to_be_visible()
        no_control_that_changes_anything(carol)
        carol.goto(f"{url}/playground?run=demo")
        wait_for_app(carol)
        carol.get_by_role("button", name="Example").click()
        wait_for_app(carol)
        expect(carol.get_by_test_id("stMain").get_by_role("radio").first).to_be_visible()
        assert visible_state(ws) == before

        # Signing out: the welcome page again, asking to sign in.
        carol.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
        carol.get_by_role("button", name="End session").click()  # the provider's own page
        carol.wait_for_url(f"{url}/**")
        wait_for_app(carol)
        expect(carol.get_by_role("button", name="Sign in")).to_be_visible()
        expect(carol.get_by_test_id("stSidebarNav")).to_have_count(0)

        # The editors end their runs: one cancels the waiting one, the other stops the running one.
        mine[waiting].locator(".st-key-cancel_queued button").first.click()  # the live view redraws each second
        wait_until(lambda: waiting not in [r.name for r in ws.runs()])
        mine[running].locator(".st-key-stop_run button").first.click()
        # Its process gone before the app's teardown, which would stop a live run again as the local user.
        wait_until(lambda: not ws.run(running).is_alive())

    who = {"alice-run": "alice@example.com", "bob-run": "bob@example.com"}
    assert audit_lines(ws) == [
        {"who": "local", "what": "save", "dataset": "tiny", "source": "tiny.csv"},
        *sorted([{"who": who[running], "what": "start", "run": running, "dataset": "tiny"},
                 {"who": who[waiting], "what": "start", "run": waiting, "dataset": "tiny", "queued": 1}],
                key=lambda line: line.get("queued", 0)),
        {"who": who[waiting], "what": "cancel", "run": waiting},
        {"who": who[running], "what": "stop", "run": running},
    ]


def test_an_expired_sign_in_is_asked_to_sign_in_again(browser, tmp_path):
    """The identity token lives 20 s here. A page drawn before it expired changes nothing when clicked after."""
    ws = workspace_with_a_dataset(tmp_path / "workspace")
    old = ws.root / "runs" / "old"
    old.mkdir()
    rundir.write_json(old / "config.json", {"data": {"name": "tiny"}})
    rundir.write_json(old / "status.json", {"state": rundir.STOPPED, "message": "stopped by request after 0 epochs",
                                            "started": time.time()})
    token_seconds = 20
    with provider(token_seconds) as issuer, \
            running_app(ws.root, args=("--secrets.files", str(secrets_file(tmp_path, issuer)))) as url:
        page = tab(browser)
        sign_in(page, url, "alice@example.com")
        signed_in = time.time()  # the token was issued before this
        open_train(page, url, "?run=old")
        delete = page.locator(".st-key-delete_run button")
        expect(delete).to_be_visible()
        time.sleep(max(signed_in + token_seconds + 1 - time.time(), 0))

        delete.click()  # on a page drawn while the sign-in held
        wait_for_app(page)
        expect(page.get_by_text("Your sign-in has expired")).to_be_visible()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        expect(page.get_by_text("Delete this run?")).to_have_count(0)
        assert old.exists()

        page.get_by_role("button", name="Sign in").click()
        page.get_by_placeholder("sub").fill("alice@example.com")
        page.get_by_role("button", name="Authorize").click()
        page.wait_for_url(f"{url}/**")
        open_train(page, url, "?run=old")
        expect(page.locator(".st-key-delete_run button")).to_be_visible()
    assert [line["what"] for line in audit_lines(ws)] == ["save"]


def test_viewer_only_mode(browser, tmp_path):
    ws = workspace_with_a_dataset(tmp_path / "workspace")
    with running_app(ws.root, args=("--", "--viewer")) as url:
        page = tab(browser)
        page.goto(url)
        wait_for_app(page)
        expect(page.get_by_test_id("stSidebar").get_by_text("View only")).to_be_visible()
        page.get_by_role("button", name="Open the Playground with an example").click()
        wait_for_app(page)
        expect(page.get_by_test_id("stMain").get_by_role("radio").first).to_be_visible()  # the example's history
        open_train(page, url, "?run=demo&dataset=tiny")
        expect(page.get_by_text("You are a viewer here")).to_be_visible()
        no_control_that_changes_anything(page)
        page.goto(f"{url}/data?dataset=tiny")
        wait_for_app(page)
        expect(page.get_by_role("radio", name="Upload a file")).to_have_count(0)
        no_control_that_changes_anything(page)
    assert ws.recent() == {}, "a viewer's choices are not what the next visit opens on"
    assert [line["what"] for line in audit_lines(ws)] == ["save"]
