"""Viewers and editors (issue 20): every change to the workspace is refused for a viewer, in the
engine and through the pages, and nothing changes; every change and refusal is one line of the
audit log; the roles come from the sign-in's claims; an expired sign-in counts as none."""

import calendar
import hashlib
import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from sasrec import access, audit, rundir, training_queue
from sasrec.config import RunConfig, configs
from sasrec.dataset import build_dataset
from sasrec.readers import Columns
from sasrec.synthetic import generate
from tests.browser import ROOT
from tests.waiting import wait_until

APP = str(ROOT / "app.py")
CAROL = access.User("carol@example.com", access.VIEWER)
ANA = access.User("ana@example.com", access.EDITOR)
AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "a-secret-for-tests-only-0123456789",
        "client_id": "sasrec", "client_secret": "s", "server_metadata_url": "http://localhost:1/.well-known/x"}
SECRETS = {"auth": AUTH, "sasrec": {"editors": ["Ana@Example.com"], "editor_roles": ["sasrec-editor"]}}
SMALL = dict(epochs=1000, patience=1000, hidden=8, num_blocks=1, num_heads=1, maxlen=10, batch_size=32, threads=1,
             device="cpu")


def snapshot(root) -> dict[str, str]:
    """Every file of the workspace, by content, but the audit log and the queue's settings (which the
    app's server writes from its configuration when it starts)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in (audit.AUDIT_FILE, training_queue.SETTINGS)}


def audit_lines(root) -> list[dict]:
    path = root / audit.AUDIT_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def tiny_dataset():
    interactions, items = generate(5, num_users=60, num_series=2, num_films=80, num_franchises=1)
    return build_dataset(interactions, Columns("user_id", "item_id", "timestamp"), items, source="tiny.csv")


def fake_run(ws, name: str, state: str, process=None, checkpoint=False) -> rundir.Run:
    """A run directory as a trainer leaves it, without training: `state`, owned by `process` if given."""
    path = ws.root / "runs" / name
    path.mkdir()
    rundir.write_json(path / "config.json", {"data": {"name": "tiny"}, "model": {}, "train": {"threads": 1},
                                             "device": "cpu"})
    identity = rundir.process_identity(process.pid) if process else {}
    rundir.write_json(path / "status.json", {"state": state, "message": "", "started": time.time(), **identity,
                                             "updated": time.time()})
    if checkpoint:
        (path / rundir.CHECKPOINT).write_bytes(b"weights")
    return rundir.Run(path)


@pytest.fixture
def populated(workspace, sleeper):
    """A workspace with a saved dataset, an upload, and a running, a stopped, a finished and a queued run."""
    workspace.save_dataset(tiny_dataset(), "tiny", {"source": "tiny"})
    workspace.store_upload("log.csv", b"user_id,item_id\nu1,i1\n")
    fake_run(workspace, "running", rundir.RUNNING, sleeper)
    fake_run(workspace, "stopped", rundir.STOPPED, checkpoint=True)
    fake_run(workspace, "finished", rundir.FINISHED, checkpoint=True)
    with training_queue.locked(workspace.root):  # as a start that found the slot taken leaves it
        waiting = fake_run(workspace, "waiting", rundir.STOPPED)
        (waiting.path / "status.json").unlink()
        rundir.write_json(waiting.path / rundir.QUEUE_FILE, {"seq": 1, "queued": time.time(), "device": "cpu",
                                                             "user": "ana@example.com", "launched": {}})
    (workspace.root / audit.AUDIT_FILE).unlink()
    return workspace


CHANGES = {
    "upload": (lambda ws: ws.store_upload("other.csv", b"user_id,item_id\nu2,i2\n"), {"file": "other.csv", "bytes": 22}),
    "save": (lambda ws: ws.save_dataset(tiny_dataset(), "copy", {"source": "copy"}), {"dataset": "copy"}),
    "rename": (lambda ws: ws.rename_dataset("tiny", "renamed"), {"dataset": "tiny", "to": "renamed"}),
    "delete": (lambda ws: ws.delete_dataset("tiny"), {"dataset": "tiny"}),
    "start": (lambda ws: ws.start_run("tiny", "new", RunConfig(*configs("auto", **SMALL), data=None)),
              {"run": "new", "dataset": "tiny"}),
    "resume": (lambda ws: ws.resume_run(ws.run("stopped"), epochs=3), {"run": "stopped", "epochs": 3}),
    "stop": (lambda ws: ws.stop_run(ws.run("running")), {"run": "running"}),
    "cancel": (lambda ws: ws.cancel_run(ws.run("waiting")), {"run": "waiting"}),
    "delete run": (lambda ws: ws.delete_run(ws.run("finished")), {"run": "finished"}),
    "estimate": (lambda ws: ws.estimate("tiny", RunConfig(*configs("auto", **SMALL), data=None)), {"dataset": "tiny"}),
    "audit": (lambda ws: ws.audit_log(), {}),
}


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("user", [CAROL, access.ANONYMOUS], ids=["viewer", "not signed in"])
def test_every_change_is_refused_for_a_viewer_and_nothing_changes(populated, sleeper, change, user):
    before = snapshot(populated.root)
    call, target = CHANGES[change]
    with pytest.raises(access.AccessDenied, match="only an editor can") as refused:
        call(populated.acting_as(user))
    assert "Nothing was changed" in str(refused.value)
    assert (user.name in str(refused.value)) == (user != access.ANONYMOUS)
    assert snapshot(populated.root) == before
    assert sleeper.poll() is None, "the viewer's stop reached the trainer"
    assert not populated.run("running").stop_requested()
    assert not (populated.root / training_queue.RUNNER_LOCK).exists(), "the viewer's start woke the queue"
    [line] = audit_lines(populated.root)
    when = line.pop("when")
    assert line == {"who": user.name, "what": "denied", "action": change.split()[0], **target}
    assert 0 <= time.time() - calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ")) < 60


def test_a_viewers_choice_of_run_is_not_what_the_next_visit_opens_on(populated):
    populated.remember(run="finished")
    populated.acting_as(CAROL).remember(run="stopped", dataset="tiny")
    assert populated.recent() == {"run": "finished"}
    assert [line["what"] for line in audit_lines(populated.root)] == [], "remembering is no change to log"


def test_the_user_is_asked_at_each_change(workspace):
    """The app passes a function: who the session is when a button is clicked, not when it was drawn."""
    workspace.save_dataset(tiny_dataset(), "tiny", {"source": "tiny"})
    now = [ANA]
    ws = workspace.acting_as(lambda: now[0])
    ws.rename_dataset("tiny", "first")
    now[0] = CAROL
    with pytest.raises(access.AccessDenied):
        ws.rename_dataset("first", "second")
    assert [d.name for d in workspace.datasets()] == ["sample", "first"]
    assert [(line["who"], line["what"], line.get("to")) for line in audit_lines(workspace.root)] == [
        ("local", "save", None), ("ana@example.com", "rename", "first"), ("carol@example.com", "denied", "second")]


def test_an_editors_changes_are_logged_line_by_line(populated, sleeper):
    """What, who, which dataset or run: one line per change, in order; a failed change leaves none."""
    ws = populated.acting_as(ANA)
    ws.store_upload("../views.csv", b"user_id,item_id\nu3,i3\n")
    saved = ws.save_dataset(tiny_dataset(), "views", {"source": "views"})
    ws.save_dataset(tiny_dataset(), "again", {"source": "views"})  # the same fingerprint: the same dataset
    ws.rename_dataset(saved.name, "views-2024")
    with pytest.raises(rundir.RunError, match="exists already"):
        ws.rename_dataset("views-2024", "tiny")
    queued = ws.start_run("tiny", "next", RunConfig(*configs("auto", **SMALL), data=None))  # "running" has the slot
    assert queued.state() == rundir.QUEUED
    ws.resume_run(ws.run("stopped"), epochs=3)
    ws.cancel_run(ws.run("stopped"))
    ws.cancel_run(queued)
    ws.stop_run(ws.run("waiting"))  # a run still waiting is taken out of the queue
    ws.stop_run(ws.run("running"))
    ws.stop_run(ws.run("running"))  # a second click, as the page redraws: asked already, so not logged again
    wait_until(lambda: sleeper.poll() is not None, timeout=10)
    ws.delete_run(ws.run("finished"))
    ws.delete_dataset("views-2024")

    lines = audit_lines(populated.root)
    for line in lines:
        assert line.pop("who") == "ana@example.com"
        time.strptime(line.pop("when"), "%Y-%m-%dT%H:%M:%SZ")
    upload = lines.pop(0)
    assert upload == {"what": "upload", "file": "views.csv", "bytes": 22,
                      "sha256": hashlib.sha256(b"user_id,item_id\nu3,i3\n").hexdigest()}
    assert lines == [
        {"what": "save", "dataset": "views", "source": "tiny.csv"},
        {"what": "save", "dataset": "views", "already_saved": True},
        {"what": "rename", "dataset": "views", "to": "views-2024"},
        {"what": "start", "run": "next", "dataset": "tiny", "queued": 2},  # behind "waiting"
        {"what": "resume", "run": "stopped", "epochs": 3, "queued": 3},
        {"what": "cancel", "run": "stopped"},
        {"what": "cancel", "run": "next"},
        {"what": "stop", "run": "waiting", "was_queued": True},
        {"what": "stop", "run": "running"},
        {"what": "delete", "run": "finished"},
        {"what": "delete", "dataset": "views-2024"},
    ]
    assert ws.run("stopped").state() == rundir.STOPPED, "a cancelled resume leaves the run as it was"
    assert {"next", "waiting"}.isdisjoint(r.name for r in ws.runs()), "a cancelled new run goes: it never trained"
    assert not training_queue.waiting(ws)


def test_stop_reaches_a_run_that_only_looks_gone_but_not_one_that_ended(workspace):
    """Stop leaves its STOP file unless the trainer has written its end or was asked already: a run
    taken for interrupted (its process not recognised) may still be training, and obeys the file."""
    looks_gone = fake_run(workspace, "looks-gone", rundir.RUNNING)  # no process identity: not recognised
    ended = fake_run(workspace, "ended", rundir.FINISHED)
    assert looks_gone.state() == rundir.INTERRUPTED
    workspace.stop_run(looks_gone)
    workspace.stop_run(looks_gone)
    workspace.stop_run(ended)
    assert looks_gone.stop_requested() and not ended.stop_requested()
    assert [line["what"] for line in audit_lines(workspace.root)] == ["stop"]


def test_the_audit_log_reads_its_tail_newest_first(tmp_path):
    for i in range(30):
        audit.record(tmp_path, "local", "start", run=f"r{i}")
    with open(tmp_path / audit.AUDIT_FILE, "a") as log:
        log.write("not json\n")
    assert [e["run"] for e in audit.last(tmp_path, 3)] == ["r29", "r28", "r27"]
    assert audit.last(tmp_path / "nowhere") == []


# Roles from the sign-in's claims

@pytest.mark.parametrize("claims, role", [
    ({"email": "ana@example.com"}, access.EDITOR),
    ({"email": " ANA@example.COM "}, access.EDITOR),  # e-mail addresses compare without case
    ({"email": "ana@example.com", "email_verified": False}, access.VIEWER),  # the provider says it is not theirs
    ({"email": "bo@example.com", "roles": ["staff", "sasrec-editor"]}, access.EDITOR),
    ({"email": "bo@example.com", "roles": "sasrec-editor"}, access.EDITOR),
    ({"email": "bo@example.com", "roles": ["staff"]}, access.VIEWER),
    ({"email": "ana@example.com.evil.org"}, access.VIEWER),
    ({"sub": "123"}, access.VIEWER),
    ({}, access.VIEWER),
])
def test_the_role_comes_from_the_e_mail_or_a_role_claim(claims, role):
    assert access.role_of(claims, SECRETS["sasrec"]) == role


def test_a_role_claim_can_be_nested():
    claims = {"email": "bo@example.com", "realm_access": {"roles": ["sasrec-editor"]}}
    settings = {"editor_roles": ["sasrec-editor"], "roles_claim": "realm_access.roles"}
    assert access.role_of(claims, settings) == access.EDITOR
    assert access.role_of(claims, {"editor_roles": ["sasrec-editor"]}) == access.VIEWER
    assert access.role_of({"email": "bo@example.com"}, {}) == access.VIEWER


@pytest.mark.parametrize("exp, expired", [(None, False), (2_000, False), (999, True), (1_000, True), ("soon", True)])
def test_an_identity_token_past_its_exp_is_expired(exp, expired):
    assert access.expired({} if exp is None else {"exp": exp}, now=1_000) == expired


# Through the pages (Streamlit's AppTest)

def app(page: str | None = None, user: dict | None = None, secrets: dict | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if secrets is not None:
        at.secrets = secrets
    if user is not None:
        at.user = user
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception[0].value
    return at


def signed_in(email: str, exp: float | None = None, **claims) -> dict:
    return {"is_logged_in": True, "email": email, "exp": exp or time.time() + 3600, **claims}


MUTATING_KEYS = {"start_training", "estimate_training", "stop_run", "delete_run", "confirm_delete", "resume_run",
                 "cancel_queued", "save_dataset", "rename_dataset", "delete_dataset", "confirm_delete_dataset",
                 "use_faster"}


def keys(at) -> set[str]:
    """The keys of the page's buttons, uploaders and text fields."""
    return {w.key for kind in ("button", "form_submit_button", "file_uploader", "text_input") for w in at.get(kind)}


def test_someone_not_signed_in_sees_the_welcome_page_and_a_sign_in_button(workspace):
    at = app(user={"is_logged_in": False}, secrets=SECRETS)
    assert [b.key for b in at.button] == ["sign_in"]
    assert not at.sidebar.markdown, "no active dataset or model before signing in"
    with pytest.raises(ValueError, match=r"Known pages: \['[^']*pages/welcome.py'\]"):
        at.switch_page("pages/train.py")  # the welcome page is the only page there is


def test_an_expired_sign_in_must_be_renewed(workspace):
    at = app(user=signed_in("ana@example.com", exp=time.time() - 5), secrets=SECRETS)
    assert [b.key for b in at.button] == ["sign_in"]
    assert "expired" in at.warning[0].value


def test_a_viewer_gets_every_page_and_no_control_that_changes_anything(workspace, sleeper):
    workspace.save_dataset(tiny_dataset(), "tiny", {"source": "tiny"})
    fake_run(workspace, "running", rundir.RUNNING, sleeper)
    viewer = signed_in("carol@example.com")
    for page in ("pages/train.py", "pages/data.py", "pages/playground.py", "pages/attention.py", "pages/evaluate.py"):
        at = app(page, user=viewer, secrets=SECRETS, run="running")
        assert not keys(at) & MUTATING_KEYS, (page, keys(at) & MUTATING_KEYS)
        assert "carol@example.com" in " ".join(c.value for c in at.sidebar.caption)
    at = app("pages/train.py", user=viewer, secrets=SECRETS, run="running")
    assert any(d.value.shape[0] for d in at.dataframe), "the runs table is there"
    assert not [h for h in at.subheader if h.value == "Audit log"]
    at = app("pages/data.py", user=viewer, secrets=SECRETS, dataset="tiny")
    assert at.get("button_group")[0].options == ["Bundled sample", "Saved datasets"]
    editor = app("pages/train.py", user=signed_in("ana@example.com"), secrets=SECRETS, run="running")
    assert {"start_training", "stop_run", "delete_run"} <= keys(editor)
    assert [h for h in editor.subheader if h.value == "Audit log"]


def test_crafted_session_state_changes_nothing_for_a_viewer(workspace, sleeper):
    """What a request could set (session keys a page reads, a link's parameters) does not change the workspace."""
    workspace.save_dataset(tiny_dataset(), "tiny", {"source": "tiny"})
    fake_run(workspace, "finished", rundir.FINISHED, checkpoint=True)
    before = snapshot(workspace.root)
    viewer = signed_in("carol@example.com")
    at = app("pages/train.py", user=viewer, secrets=SECRETS, deleting="finished", run="finished")
    assert not at.get("dialog") and not keys(at) & MUTATING_KEYS
    at = app("pages/data.py", user=viewer, secrets=SECRETS, deleting_dataset="tiny", data_source="upload",
             upload_path=str(workspace.root / "uploads"), saved_dataset="tiny", dataset="tiny")
    assert not keys(at) & MUTATING_KEYS
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets, at.user = SECRETS, viewer
    at.query_params.update(run="finished", dataset="tiny")
    at.run()
    assert snapshot(workspace.root) == before
    assert not audit_lines(workspace.root)[1:], "nothing reached the workspace to refuse"


def test_a_button_on_a_page_drawn_before_the_sign_in_expired_is_refused(workspace, sleeper):
    """A stale page: its Stop button's callback runs for whoever clicks it now."""
    workspace.save_dataset(tiny_dataset(), "tiny", {"source": "tiny"})
    fake_run(workspace, "running", rundir.RUNNING, sleeper)
    at = app("pages/train.py", user=signed_in("ana@example.com", exp=time.time() + 3600), secrets=SECRETS,
             run="running")
    stop = at.button(key="stop_run")
    at.user = signed_in("ana@example.com", exp=time.time() - 1)  # the token expired meanwhile
    stop.click().run()
    assert not at.exception
    assert any("not signed in" in e.value and "Nothing was changed" in e.value for e in at.error), at.error
    assert sleeper.poll() is None and not workspace.run("running").stop_requested()
    assert [(line["who"], line["what"], line.get("action"), line.get("run")) for line in audit_lines(workspace.root)][-1] \
        == ("anonymous", "denied", "stop", "running")
    assert [b.key for b in at.button] == ["sign_in"], "the page is the welcome page, asking to sign in again"


def test_viewer_only_mode(workspace, monkeypatch, sleeper):
    monkeypatch.setenv("SASREC_VIEWER", "1")
    fake_run(workspace, "running", rundir.RUNNING, sleeper)
    at = app("pages/train.py", run="running")
    assert not keys(at) & MUTATING_KEYS
    assert any("View only" in c.value for c in at.sidebar.caption)
    from sasrec.ui import state

    with pytest.raises(access.AccessDenied):
        state.workspace().stop_run(workspace.run("running"))


def test_the_upload_limit_is_the_servers():
    from streamlit import config

    from sasrec.workspace import MAX_UPLOAD_BYTES

    config.get_config_options(force_reparse=True)
    assert config.get_option("server.maxUploadSize") << 20 == MAX_UPLOAD_BYTES
    assert config.get_option("server.enableXsrfProtection") is True
    assert config.get_option("client.toolbarMode") == "viewer"
    assert config.get_option("client.showErrorDetails") == "none"


def test_the_app_never_changes_the_workspace_as_the_default_user():
    """Workspace() acts for the local user (the command line, tests). In the app, every Workspace is made
    with an explicit user; pages change it only through state.workspace(), which acts for the session."""
    import ast

    made = []
    for path in [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "sasrec" / "ui").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Workspace":
                made.append((path.name, {k.arg for k in node.keywords}))
    assert made == [("state.py", {"user"})]
