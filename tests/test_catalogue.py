"""A catalogue of malformed and hostile inputs (issue "Trust"), each with what must happen to it:
loaded correctly, with a count of what was dropped, or refused with one clear message. Every
entry goes through the engine (Workspace.store_upload, then load_dataset) and through the Data
page under AppTest, where it must give the statistics or exactly one error box, never an
exception and never a server path."""

import gzip
import io
import struct
import zipfile
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from sasrec import readers
from sasrec.dataset import load_dataset
from sasrec.readers import DataError
from tests.browser import ROOT

APP = str(ROOT / "app.py")
LIMIT = 2 << 20  # MAX_DECOMPRESSED_BYTES in these tests: the bombs unpack to 4 times as much


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


def with_nested(item_as_list: bool) -> bytes:
    frame = pd.DataFrame({"user_id": [u for u, _, _ in ROWS], "item_id": [i for _, i, _ in ROWS],
                          "timestamp": [t for _, _, t in ROWS], "tags": [["x", "y"], [], ["z"]] * 3})
    if item_as_list:
        frame["item_id"] = [[i] for i in frame["item_id"]]
    return parquet(frame)


GOOD_CSV = csv(ROWS)
GOOD_PARQUET = parquet(pd.DataFrame(ROWS, columns=["user_id", "item_id", "timestamp"]))
BOMB = b"0" * (4 * LIMIT)

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
}


@pytest.fixture(autouse=True)
def small_decompression_limit(monkeypatch):
    monkeypatch.setattr(readers, "MAX_DECOMPRESSED_BYTES", LIMIT)


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
    if isinstance(expected, Refused):
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
    assert not errors
    assert next(m.value for m in at.metric if m.label == "Users") == f"{expected.users:,}"
    assert next(m.value for m in at.metric if m.label == "Interactions") == f"{expected.events:,}"
