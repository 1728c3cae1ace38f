"""The Data page under AppTest, for files from the real world (issue "app with real logs"): a file
without a header row loses no row, the header guess and the separator can be corrected, an
uploaded name never becomes a path, and saved datasets can be renamed and deleted."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sasrec import rundir
from sasrec.dataset import build_dataset
from sasrec.readers import Columns
from sasrec.synthetic import generate
from tests.browser import ROOT

APP = str(ROOT / "app.py")
# ml-100k's u.data layout: user, item, rating, time, tab-separated, no header.
HEADERLESS = b"".join(f"{u}\t{i}\t{r}\t{881250949 + n}\n".encode() for n, (u, i, r) in enumerate(
    [(196, 242, 3), (196, 302, 3), (196, 51, 2), (186, 302, 3), (186, 242, 3), (186, 51, 5), (22, 51, 1), (22, 242, 4),
     (22, 302, 4)]))


def open_page(**session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/data.py").run()
    assert not at.exception
    return at


def upload(at, name: str, content: bytes) -> AppTest:
    at.file_uploader(key="upload_log").set_value((name, content, "text/plain")).run()
    assert not at.exception, at.exception[0].value
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def captions(at) -> str:
    return " ".join(c.value for c in at.caption)


def test_a_file_without_a_header_loses_no_row_and_the_guess_can_be_corrected(workspace):
    at = upload(open_page(data_source="upload"), "u.tsv", HEADERLESS)
    assert not at.error
    assert "no header row" in captions(at) and "Detected from the column names" not in captions(at)
    assert "9 rows" in captions(at) and metric(at, "Interactions") == "9"
    assert [at.selectbox(key=f"role_{role}").value for role in ("user", "item", "timestamp", "rating")] == [
        "column 1", "column 2", "column 4", "column 3"]

    at.selectbox(key="read_header").set_value(True).run()  # the user says the first row names the columns
    assert "8 rows" in captions(at) and "the first row names the columns" in captions(at)
    at.selectbox(key="read_header").set_value(None).run()
    assert "9 rows" in captions(at) and metric(at, "Interactions") == "9"


def test_the_separator_can_be_chosen_when_it_cannot_be_detected(workspace):
    spaced = b"user item when\n" + b"".join(f"u{n % 3} i{n % 4} {1_600_000_000 + n}\n".encode() for n in range(12))
    at = upload(open_page(data_source="upload"), "log.txt", spaced)
    assert len(at.error) == 1 and "cannot tell how the columns are separated" in at.error[0].value
    at.selectbox(key="read_delimiter").set_value(" ").run()
    assert not at.error and not at.exception
    assert "space-separated text" in captions(at)
    assert metric(at, "Users") == "3" and metric(at, "Interactions") == "12"


def test_an_uploaded_name_never_becomes_a_path(workspace):
    at = upload(open_page(data_source="upload"), "../../../etc/passwd.csv", b"user_id,item_id\na,x\na,y\na,z\nb,x\nb,y\nb,z\n")
    stored = Path(at.session_state["upload_path"])
    assert stored.resolve().parent.parent == (workspace.root / "uploads").resolve()
    assert "passwd.csv: comma-separated text" in captions(at)
    assert ".." not in captions(at) and str(workspace.root) not in captions(at)
    assert metric(at, "Users") == "2"


@pytest.fixture
def saved(workspace):
    interactions, items = generate(5, num_users=60, num_series=2, num_films=40, num_franchises=1)
    dataset = build_dataset(interactions, Columns("user_id", "item_id", "timestamp"), items, source="views.csv")
    entry = workspace.save_dataset(dataset, "views", {"source": "views"})
    run = workspace.root / "runs" / "old-run"  # a run trained on it, as the Train page leaves one
    run.mkdir()
    rundir.write_json(run / "config.json", {"data": {"path": str(entry.path), "name": entry.name}})
    rundir.write_json(run / "status.json", {"state": rundir.FINISHED})
    return entry


def test_a_saved_dataset_can_be_renamed(workspace, saved):
    at = open_page(data_source="saved", dataset="views")
    at.text_input(key="rename_to").set_value("my views").run()
    at.button(key="rename_dataset").click().run()
    assert not at.exception and not at.error
    assert [d.name for d in workspace.datasets()] == ["sample", "my-views"]
    assert at.session_state["dataset"] == "my-views" and at.selectbox(key="saved_dataset").value == "my-views"
    assert workspace.runs_using(workspace.dataset("my-views")) == ["old-run"]  # runs find it by folder, not name


def test_deleting_a_dataset_says_which_runs_use_it_and_asks_first(workspace, saved):
    at = open_page(data_source="saved", dataset="views")
    assert "Used by run old-run" in captions(at)
    at.button(key="delete_dataset").click().run()
    assert any("Trained on it: old-run" in m.value for m in at.markdown)
    at.button(key="cancel_delete_dataset").click().run()
    assert saved.path.exists()
    at.button(key="delete_dataset").click().run()
    at.button(key="confirm_delete_dataset").click().run()
    assert not at.exception
    assert not saved.path.exists() and [d.name for d in workspace.datasets()] == ["sample"]
    assert at.session_state["dataset"] == "sample"
