"""A catalogue of malformed and hostile inputs (issue "Trust"), each with what must happen to it:
loaded correctly, with a count of what was dropped, refused with one clear message, or (where
neither the names nor the values of the columns say which is the user or the item) a question.
Every entry goes through the engine (Workspace.store_upload, then load_dataset) and through the
Data page under AppTest, where it must give the statistics, exactly one error box, or the
question, never an exception and never a server path. Text is read in pieces of PIECE bytes
here, so that what spans pieces (types, encodings, line numbers, a gzip or zip member that
streams) is tried on small files."""

import gzip
import io
import json
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from sasrec import cli, readers
from sasrec import dataset as dataset_module
from sasrec.dataset import load_dataset
from sasrec.readers import DataError
from tests.browser import ROOT

APP = str(ROOT / "app.py")
LIMIT = 2 << 20  # MAX_DECOMPRESSED_BYTES in these tests: the bombs unpack to 4 times as much
PIECE = 64 << 10  # CSV_PIECE_BYTES in these tests (in blocks of half as much)


@dataclass
class Loaded:
    """Read and cleaned: this many users, items and events are left; `dropped` maps a report step
    (or "malformed") to the rows it removed; `sequences` are some users' expected item orders."""
    users: int
    items: int
    events: int
    dropped: dict = field(default_factory=dict)
    sequences: dict = field(default_factory=dict)


@dataclass
class Refused:
    """DataError, whose message holds every fragment."""
    fragments: tuple


@dataclass
class Asked:
    """No column is found for a role: the engine refuses (DataError with every fragment), the Data page
    asks for the column (a warning naming the role) and shows no error."""
    fragments: tuple
    role: str


def csv(rows, header="user_id,item_id,timestamp", sep=",", end="\n") -> bytes:
    lines = ([header] if header is not None else []) + [sep.join(map(str, row)) for row in rows]
    return (end.join(lines) + end).encode()


# Three users with three events each, "a"'s out of time order in the file.
ROWS = [("a", "i3", 300), ("a", "i1", 100), ("a", "i2", 200), ("b", "i1", 50), ("b", "i2", 60), ("b", "i4", 70),
        ("c", "i4", 10), ("c", "i3", 20), ("c", "i1", 30)]
ORDERED = {"a": ["i1", "i2", "i3"], "b": ["i1", "i2", "i4"], "c": ["i4", "i3", "i1"]}
GOOD = Loaded(3, 4, 9, sequences=ORDERED)
EPOCH_ROWS = [(u, i, 1_600_000_000 + t) for u, i, t in ROWS]  # without a header, small numbers are not taken for times
LONG_ROWS = [(f"u{n % 20}", f"i{n % 13}", 1_600_000_000 + n) for n in range(300)]


def parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def xlsx(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False)
    return buffer.getvalue()


def zipped(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def lying_zip(content: bytes, claimed: int) -> bytes:
    """A zip whose headers say its member unpacks to `claimed` bytes, fewer than it does."""
    data = bytearray(zipped({"log.csv": content}))
    struct.pack_into("<I", data, data.find(b"PK\x03\x04") + 22, claimed)  # the local header's uncompressed size
    struct.pack_into("<I", data, data.find(b"PK\x01\x02") + 24, claimed)  # the central directory's
    return bytes(data)


def cut_in_last_line(data: bytes, keep: int) -> bytes:
    return data[:data.rindex(b"\n", 0, len(data) - 1) + 1 + keep]


def one_event_per_user(users: int) -> bytes:
    return ("user_id,item_id\n" + "".join(f"u{n},i{n % 1000}\n" for n in range(users))).encode()


def dated(rows, header="customer,sku,purchased_at") -> bytes:
    """ROWS as an export writes them: names SASRec does not know, times as dates."""
    return csv([(u, i, f"{pd.Timestamp(1_600_000_000 + t, unit='s'):%Y-%m-%d %H:%M:%S}") for u, i, t in rows], header)


def padded(rows, header="user_id,item_id,timestamp", width=300) -> bytes:
    """Rows whose last value (the time) is padded with spaces, as a fixed-width export writes them: many
    pieces of text for a small table."""
    return csv([(*row[:-1], f"{row[-1]}{' ' * width}") for row in rows], header)


def gzip_members(*parts: bytes) -> bytes:
    return b"".join(gzip.compress(part) for part in parts)


def with_nested(item_as_list: bool) -> bytes:
    frame = pd.DataFrame({"user_id": [u for u, _, _ in ROWS], "item_id": [i for _, i, _ in ROWS],
                          "timestamp": [t for _, _, t in ROWS], "tags": [["x", "y"], [], ["z"]] * 3})
    if item_as_list:
        frame["item_id"] = [[i] for i in frame["item_id"]]
    return parquet(frame)


GOOD_CSV = csv(ROWS)
GOOD_PARQUET = parquet(pd.DataFrame(ROWS, columns=["user_id", "item_id", "timestamp"]))
BOMB = b"0" * (4 * LIMIT)
# 1,200 events of 40 users, 30 each, over 101 items; far more text than a piece once padded.
MANY_ROWS = [(f"u{n // 30}", f"i{n * 7 % 101}", 1_600_000_000 + n) for n in range(1200)]
MANY = Loaded(40, 101, 1200)

# name in the catalogue -> (file name as uploaded, content, expected, catalog (name, content) or None)
CATALOGUE = {
    # cut short
    "gzip cut short": ("log.csv.gz", gzip.compress(csv(LONG_ROWS))[:-200], Refused(("log.csv.gz", "cut short")), None),
    "parquet cut short": ("log.parquet", GOOD_PARQUET[:len(GOOD_PARQUET) // 2],
                          Refused(("log.parquet", "not a readable Parquet file")), None),
    "csv cut mid-line": ("log.csv", cut_in_last_line(csv(LONG_ROWS), 5), Loaded(20, 13, 299, {"malformed": 1}), None),
    "xlsx cut short": ("log.xlsx", xlsx(pd.DataFrame(ROWS, columns=["user_id", "item_id", "timestamp"]))[:2000],
                       Refused(("log.xlsx", "zip")), None),
    # delimiters and line ends
    "comma-separated .tsv": ("log.tsv", GOOD_CSV, GOOD, None),
    "semicolons and decimal commas": ("log.csv", csv([(u, i, t, "4,5") for u, i, t in ROWS], "user;item;ts;rating", ";"),
                                      GOOD, None),
    "mixed delimiters": ("log.csv", csv([row if n % 2 else (";".join(map(str, row)),) for n, row in enumerate(LONG_ROWS)]),
                         Refused(("log.csv", "150 of 300 rows", "comma-separated fields", "line 2")), None),
    "CRLF line ends": ("log.csv", csv(ROWS, end="\r\n"), GOOD, None),
    "CRLF one line per user": ("seq.txt", b"1 5 6 7\r\n2 6 7 8 9\r\n3 5 9 8\r\n",
                               Loaded(3, 5, 10, sequences={"2": ["6", "7", "8", "9"]}), None),
    "unterminated quote": ("log.csv", b'user_id,item_id,timestamp\na,i1,1\na,"i2,2\na,i3,3\nb,i1,1\n',
                           Refused(("log.csv", "line 3", "never closed")), None),
    "unterminated quote in a long file": ("log.csv", csv(LONG_ROWS[:150] + [("u1", '"i1', 1)] + LONG_ROWS[150:]),
                                          Refused(("log.csv", "line 152", "never closed")), None),
    "many malformed rows": ("log.csv", GOOD_CSV + b"a,i9\nb,i8,1,2\n", Refused(("log.csv", "2 of 11", "line 11")), None),
    # ids and timestamps
    "ids of mixed types": ("log.csv", csv([(1, "x", 1), ("1", "y", 2), (1, 2.0, 3), ("007", "x", 4), ("007", "2.0", 5),
                                           ("007", 2, 6), ("abc", 2, 7), ("abc", "x", 8), ("abc", "007", 9)]),
                           Loaded(3, 5, 9, sequences={"1": ["x", "y", "2.0"], "007": ["x", "2.0", "2"]}), None),
    "mixed id types in JSON": ("log.jsonl", b'{"user_id": 1, "item_id": 7}\n{"user_id": "1", "item_id": "x"}\n'
                                            b'{"user_id": 1, "item_id": 8}\n{"user_id": 2, "item_id": 7}\n'
                                            b'{"user_id": "2", "item_id": 8}\n{"user_id": "2", "item_id": "x"}\n'
                                            b'{"user_id": 3, "item_id": "x"}\n',
                               Loaded(2, 3, 6, {"min sequence length 3": 1}, {"1": ["7", "x", "8"], "2": ["7", "8", "x"]}),
                               None),
    "equal timestamps": ("log.csv", csv([(u, i, 5) for u, i, _ in ROWS]),
                         Loaded(3, 4, 9, sequences={"a": ["i3", "i1", "i2"], "c": ["i4", "i3", "i1"]}), None),
    "future and negative timestamps": ("log.csv", csv([("a", "i1", 32_503_680_000), ("a", "i2", -86_400), ("a", "i3", 0),
                                                       ("b", "i1", 4_102_444_800), ("b", "i2", -1), ("b", "i3", 1)]),
                                       Loaded(2, 3, 6, sequences={"a": ["i2", "i3", "i1"], "b": ["i2", "i3", "i1"]}), None),
    "dates far apart": ("log.csv", csv([("a", "i1", "2999-12-31"), ("a", "i2", "1900-01-01"), ("a", "i3", "1970-01-01"),
                                        ("b", "i1", "2024-02-29T23:59:59"), ("b", "i2", "2024-02-29"), ("b", "i3", "2024-03-01")]),
                        Loaded(2, 3, 6, sequences={"a": ["i2", "i3", "i1"], "b": ["i2", "i1", "i3"]}), None),
    "unparseable timestamps": ("log.csv", csv(ROWS[:4] + [("b", "i2", "soon")] + ROWS[5:]),
                               Refused(("log.csv", "'timestamp'", "line 6", "'soon'")), None),
    "some ids missing": ("log.csv", csv(ROWS + [("", "i1", 1), ("c", "", 2), ("  ", "i2", 3)]),
                         Loaded(3, 4, 9, {"drop missing ids": 3}, ORDERED), None),
    "exact duplicates": ("log.csv", csv(ROWS + ROWS[:4]), Loaded(3, 4, 9, {"drop duplicates": 4}, ORDERED), None),
    "no timestamps, repeats kept": ("log.csv", csv([(u, i) for u, i, _ in ROWS + ROWS[:2]], "user_id,item_id"),
                                    Loaded(3, 4, 11, sequences={"a": ["i3", "i1", "i2", "i3", "i1"]}), None),
    # sizes
    "a million users with one event each": ("many.csv", one_event_per_user(1_000_000),
                                            Refused(("many.csv", "'min sequence length 3'", "1,000,000", "at least 2")), None),
    "a single user": ("one.csv", csv([("u", f"i{n}", n) for n in range(50)]), Refused(("one.csv", "log itself")), None),
    "header only": ("head.csv", b"user_id,item_id,timestamp\n", Refused(("head.csv", "no rows, only a header")), None),
    "empty file": ("empty.csv", b"", Refused(("empty.csv", "empty")), None),
    "blank lines only": ("blank.csv", b"\n\n  \r\n", Refused(("blank.csv", "empty")), None),
    # encodings and bytes
    "NUL bytes": ("log.csv", GOOD_CSV.replace(b"a,i1,100", b"a,i\x001,100"), Refused(("log.csv", "line 3", "NUL")), None),
    "UTF-16": ("log.csv", GOOD_CSV.decode().encode("utf-16"), Refused(("log.csv", "UTF-16", "UTF-8")), None),
    "UTF-16 without a byte-order mark": ("log.csv", GOOD_CSV.decode().encode("utf-16-le"), Refused(("log.csv", "UTF-16")),
                                         None),
    "Latin-1": ("log.csv", GOOD_CSV.decode().replace("i4", "caf\u00e9").encode("latin-1"),
                Loaded(3, 4, 9, sequences={"c": ["caf\u00e9", "i3", "i1"]}), None),
    "UTF-8 byte-order mark": ("log.csv", b"\xef\xbb\xbf" + GOOD_CSV, GOOD, None),
    "ids with commas, quotes and unicode": ("log.csv", 'user_id,item_id,ts\n"a, b","x ""y""",1\n"a, b",\u00e9\u6f22,2\n'
                                                       '"a, b",z,3\nc,z,1\nc,\u00e9\u6f22,2\nc,"x ""y""",3\n'.encode(),
                                            Loaded(2, 3, 6, sequences={"a, b": ['x "y"', "\u00e9\u6f22", "z"]}), None),
    "a PNG called .csv": ("log.csv", b"\x89PNG\r\n\x1a\n" + bytes(300), Refused(("log.csv", "PNG image")), None),
    "random bytes": ("log.csv", np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
                     Refused(("log.csv", "not a text table")), None),
    "duplicate column names": ("log.csv", csv(ROWS, "user_id,item_id,item_id"), Refused(("log.csv", "unique")), None),
    "a JSON list of numbers": ("log.json", b"[1, 2, 3]", Refused(("log.json", "JSON", "records")), None),
    # structure
    "Parquet with a nested extra column": ("log.parquet", with_nested(False), GOOD, None),
    "Parquet with a nested item column": ("log.parquet", with_nested(True),
                                          Refused(("log.parquet", "'item_id'", "one id per row")), None),
    "TSV without a header": ("log.tsv", csv([(n // 3 + 1, 10 + int(i[1]), 5, t + 881_250_000) for n, (_, i, t)
                                             in enumerate(ROWS)], None, "\t"),
                             Loaded(3, 4, 9, sequences={"1": ["11", "12", "13"]}), None),
    "CSV of names without a header": ("log.csv", csv(EPOCH_ROWS, None), GOOD, None),
    "one line per user": ("seq.txt", b"1 1 2 3 4 5\n2 6 7 8 9 10 4 11\n3 4 12 13\n",
                          Loaded(3, 13, 15, sequences={"2": ["6", "7", "8", "9", "10", "4", "11"]}), None),
    "SASRec pairs": ("pairs.txt", b"1 30\n1 10\n1 20\n2 10\n2 30\n2 20\n",
                     Loaded(2, 3, 6, sequences={"1": ["30", "10", "20"]}), None),
    "a bad line among user lines": ("seq.txt", b"1 1 2 3\n2 4 5 6 7\n3 4 x5 6\n", Refused(("seq.txt", "line 3", "'3 4 x5 6'")),
                                    None),
    "Excel bomb": ("bomb.xlsx", zipped({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>",
                                        "xl/worksheets/sheet1.xml": BOMB}), Refused(("bomb.xlsx", "bomb")), None),
    "Excel workbook": ("log.xlsx", xlsx(pd.DataFrame(ROWS, columns=["user_id", "item_id", "timestamp"])), GOOD, None),
    "a zip holding one CSV": ("log.zip", zipped({"export/log.csv": GOOD_CSV}), GOOD, None),
    # hostile
    "zip bomb": ("bomb.zip", zipped({"log.csv": BOMB}), Refused(("bomb.zip", "log.csv", "bomb")), None),
    "a zip bomb that lies about its size": ("bomb.zip", lying_zip(BOMB, 100), Refused(("bomb.zip", "not a readable zip")),
                                            None),
    "gzip bomb": ("bomb.csv.gz", gzip.compress(BOMB), Refused(("bomb.csv.gz", "bomb")), None),
    "a name with path separators": ("../../etc/passwd.csv", GOOD_CSV, GOOD, None),
    "a Windows name with ..": ("..\\..\\windows\\log.csv", GOOD_CSV, GOOD, None),
    "a name that is only ..": ("..", GOOD_CSV, GOOD, None),
    "a catalog whose ids match nothing": ("log.csv", GOOD_CSV, Refused(("items.csv", "none of the catalog's item ids")),
                                          ("items.csv", b"item_id,title\n101,X\n102,Y\n")),
    # roles found by content, where the names say nothing
    "an export: customer, sku, purchased_at": ("export.csv", dated(ROWS), GOOD, None),
    "unnamed columns: visitor, product, epoch milliseconds": ("log.csv", csv([(u, i, t * 1000 + 1_600_000_000_000)
                                                                             for u, i, t in ROWS], "visitor,product,when"),
                                                              GOOD, None),
    "a grade from 1 to 5 is no time": ("log.csv", csv([(u, i, 1 + t % 5) for u, i, t in ROWS], "customer,sku,grade"),
                                       Loaded(3, 4, 9, sequences={"a": ["i3", "i1", "i2"]}), None),
    "users not in runs": ("export.csv", dated([ROWS[n] for n in (0, 3, 6, 1, 4, 7, 2, 5, 8)]),
                          Asked(("export.csv", "no user column", "repeat in runs"), "user"), None),
    "event ids and a count, but no item": ("log.csv", csv([(u, n, 1 + n % 2) for n, (u, _, _) in enumerate(ROWS)],
                                                          "customer,event,quantity"),
                                           Asked(("log.csv", "no item column"), "item"), None),
    # streamed in pieces
    "a padded gzip of many pieces": ("log.csv.gz", gzip.compress(padded(MANY_ROWS)), MANY, None),
    "a padded gzip inside a zip": ("log.zip", zipped({"export/log.csv.gz": gzip.compress(padded(MANY_ROWS))}), MANY,
                                   None),
    "a zip member of many pieces": ("log.zip", zipped({"log.csv": padded(MANY_ROWS)}), MANY, None),
    "gzip members one after another": ("log.csv.gz", gzip_members(csv(MANY_ROWS[:600]), padded(MANY_ROWS[600:], None)),
                                       MANY, None),
    "gzip with trailing bytes that are not gzip": ("log.csv.gz", gzip.compress(padded(MANY_ROWS)) + b"not gzip data",
                                                   Refused(("log.csv.gz", "cannot be decompressed")), None),
    "a padded gzip past the unpacking cap": ("big.csv.gz", gzip.compress(padded(MANY_ROWS * 4, width=500)),
                                             Refused(("big.csv.gz", "bomb")), None),
    "a rating that turns to text pieces later": ("log.csv", padded([(u, i, 3, t) for u, i, t in MANY_ROWS[:1100]]
                                                                   + [(u, i, "n/a", t) for u, i, t in MANY_ROWS[1100:]],
                                                                   "user_id,item_id,rating,timestamp"), MANY, None),
    "Latin-1 pieces later": ("log.csv", padded(MANY_ROWS[:1199] + [("u39", "caf\u00e9", 1_600_001_199)]).decode()
                             .encode("latin-1"),
                             Loaded(40, 102, 1200, sequences={"u39": [f"i{n * 7 % 101}" for n in range(1170, 1199)]
                                                              + ["caf\u00e9"]}), None),
    "a NUL byte pieces later": ("log.csv", padded(MANY_ROWS).replace(b"u39,i", b"u39,\x00i", 1),
                                Refused(("log.csv", "line 1172", "NUL")), None),
    "malformed rows pieces later": ("log.csv", padded(MANY_ROWS[:1000]) + b"u33,i1\n" * 20 + padded(MANY_ROWS[1000:], None),
                                    Refused(("log.csv", "20 of 1220", "line 1002")), None),
}


@pytest.fixture(autouse=True)
def small_limit_and_pieces(monkeypatch):
    monkeypatch.setattr(readers, "MAX_DECOMPRESSED_BYTES", LIMIT)
    monkeypatch.setattr(readers, "CSV_PIECE_BYTES", PIECE)
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", PIECE // 2)


def sequences(dataset) -> dict:
    return {user: list(dataset.item_ids[dataset.sequence(u)]) for u, user in enumerate(dataset.user_ids)}


def dropped(report: list[dict]) -> dict:
    """Rows each step removed (only the steps that removed some), and malformed rows skipped."""
    counts = {step["step"]: previous["rows"] - step["rows"] for previous, step in zip(report, report[1:])
              if previous["rows"] > step["rows"]}
    return counts | ({"malformed": report[0]["skipped_rows"]} if report[0].get("skipped_rows") else {})


def test_the_catalogue_is_big_enough():
    assert len(CATALOGUE) >= 30
    assert sum(isinstance(expected, Refused) for _, _, expected, _ in CATALOGUE.values()) >= 15


@pytest.mark.parametrize("entry", list(CATALOGUE))
def test_the_engine(entry, workspace):
    name, content, expected, catalog = CATALOGUE[entry]
    path = workspace.store_upload(name, content)
    assert path.resolve().parent.parent == (workspace.root / "uploads").resolve()
    assert ".." not in path.name and "/" not in path.name and "\\" not in path.name
    items = catalog and workspace.store_upload(*catalog)
    if isinstance(expected, (Refused, Asked)):
        with pytest.raises(DataError) as info:
            load_dataset(path, items=items)
        message = str(info.value)
        for fragment in expected.fragments:
            assert fragment in message.replace(path.name, name), f"{fragment!r} not in {message!r}"
        assert str(workspace.root) not in message
        return
    dataset = load_dataset(path, items=items)
    assert (dataset.num_users, dataset.num_items, dataset.num_events) == (expected.users, expected.items, expected.events)
    assert dropped(dataset.report) == expected.dropped
    found = sequences(dataset)
    for user, items_in_order in expected.sequences.items():
        assert found[user] == items_in_order


def open_data_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["data_source"] = "upload"
    at.run()
    at.switch_page("pages/data.py").run()
    return at


def shown_text(at) -> str:
    return " ".join(str(element.value) for kind in ("error", "caption", "warning", "info", "markdown", "success")
                    for element in getattr(at, kind))


@pytest.mark.parametrize("entry", list(CATALOGUE))
def test_the_data_page(entry, workspace):
    name, content, expected, catalog = CATALOGUE[entry]
    at = open_data_page()
    at.file_uploader(key="upload_log").set_value((name, content, "application/octet-stream")).run()
    if catalog:
        at.file_uploader(key="upload_catalog").set_value((*catalog, "text/csv")).run()
    assert not at.exception, at.exception[0].value
    assert str(workspace.root) not in shown_text(at)
    errors = [e.value for e in at.error]
    if isinstance(expected, Refused):
        assert len(errors) == 1, errors
        assert expected.fragments[-1] in errors[0], errors[0]
        return
    if isinstance(expected, Asked):
        assert not errors and not at.metric
        assert [w.value for w in at.warning if f"Choose the {expected.role} column" in w.value], at.warning
        assert at.selectbox(key=f"role_{expected.role}").value is None
        return
    assert not errors
    assert next(m.value for m in at.metric if m.label == "Users") == f"{expected.users:,}"
    assert next(m.value for m in at.metric if m.label == "Interactions") == f"{expected.events:,}"


def test_the_data_page_says_which_rule_found_each_role(workspace):
    at = open_data_page()
    at.file_uploader(key="upload_log").set_value(("export.csv", dated(ROWS), "text/csv")).run()
    assert [at.selectbox(key=f"role_{role}").value for role in ("user", "item", "timestamp")] == [
        "customer", "sku", "purchased_at"]
    captions = [c.value for c in at.caption]
    assert "Detected from the column names and values; correct them if they are wrong." in captions
    assert ("User **customer**: found by content: its values repeat in runs: 75% of rows repeat the row above, "
            "3.0 rows per value.") in captions
    assert "Timestamp **purchased_at**: found by content: date-times from 2020-09-13 to 2020-09-13." in captions
    assert not [c for c in captions if "**sku**" in c], "the item was found by its name, as the first caption says"


# Running out of memory: one message, in the engine, the command line and the app

@pytest.fixture
def no_memory_to_parse(monkeypatch):
    """pyarrow runs out of memory while parsing text (as ArrowMemoryError, which is a MemoryError)."""
    def parse(*args, **kwargs):
        raise readers.pa.ArrowMemoryError("malloc of size 16777216 failed")
    monkeypatch.setattr(readers.pacsv, "read_csv", parse)


def test_running_out_of_memory_is_one_data_error(no_memory_to_parse, workspace, capsys):
    path = workspace.store_upload("log.csv.gz", gzip.compress(GOOD_CSV))
    with pytest.raises(DataError, match=r"^log\.csv\.gz: ran out of memory while reading it") as info:
        load_dataset(path)
    assert info.value.__context__ is None and info.value.__cause__ is None  # what was read is not kept alive
    with pytest.raises(SystemExit) as exited:
        cli.main(["stats", str(path)])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {str(info.value)}"]


def test_the_data_page_shows_running_out_of_memory_as_one_error(no_memory_to_parse, workspace):
    at = open_data_page()
    at.file_uploader(key="upload_log").set_value(("log.csv", GOOD_CSV, "text/csv")).run()
    assert not at.exception
    assert [e.value for e in at.error if "ran out of memory while reading it" in e.value] and len(at.error) == 1


def test_building_the_dataset_out_of_memory_is_a_data_error(monkeypatch, workspace):
    monkeypatch.setattr(dataset_module, "_time_order", lambda *args: np.empty(10**15))  # numpy: MemoryError
    with pytest.raises(DataError, match=r"^log\.csv: ran out of memory"):
        load_dataset(workspace.store_upload("log.csv", GOOD_CSV))


# A big gzip under a small address space: reading takes the memory of the table, not of the text

CHILD = """
import json, resource, sys
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
{read}
print(json.dumps({{"users": dataset.num_users, "items": dataset.num_items, "events": dataset.num_events}}))
"""
READ_STREAMING = "from sasrec.dataset import load_dataset\ndataset = load_dataset(sys.argv[1])"
# The same log unpacked whole first, as the readers did before they streamed: the control.
READ_WHOLE = ("import gzip, pyarrow as pa, pyarrow.csv as pacsv\nfrom sasrec.dataset import build_dataset\n"
              "from sasrec.readers import Columns\n"
              "events = pacsv.read_csv(pa.BufferReader(gzip.open(sys.argv[1]).read())).to_pandas()\n"
              "dataset = build_dataset(events, Columns('user_id', 'item_id', 'timestamp'))")
UNPACKED_MB, ADDRESS_SPACE_MB = 400, 1200  # the imports and pyarrow's threads take about 600 MB of it


def run_child(read: str, path, limit_mb: int):
    return subprocess.run([sys.executable, "-c", CHILD.format(read=read), str(path), str(limit_mb << 20)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_a_big_gzip_streams_into_a_small_address_space(tmp_path):
    """400 MB of padded rows in a 3 MB gzip: their table is 20 MB. Unpacked whole, the text alone would
    take 400 MB of the 1.2 GB address space, twice over while the pieces are joined: that fails, as the
    control shows; streamed, it reads."""
    rows, unpacked, path = 0, 0, tmp_path / "padded.csv.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b"user_id,item_id,timestamp\n")
        while unpacked < UNPACKED_MB << 20:
            unpacked += out.write("".join(f"u{n // 20},i{n * 7 % 1009},{1_600_000_000 + n}{' ' * 300}\n"
                                          for n in range(rows, rows + 10_000)).encode())
            rows += 10_000
    streamed = run_child(READ_STREAMING, path, ADDRESS_SPACE_MB)
    assert streamed.returncode == 0, streamed.stderr[-2000:]
    assert json.loads(streamed.stdout) == {"users": rows // 20, "items": 1009, "events": rows}
    whole = run_child(READ_WHOLE, path, ADDRESS_SPACE_MB)  # MemoryError, or pyarrow aborts
    assert whole.returncode != 0, whole.stdout
