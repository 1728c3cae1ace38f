"""Behaviour of sasrec.data on tiny files written to tmp_path (no real MovieLens data is used or shipped)."""

import gzip
import json
import subprocess
import sys
import zipfile
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sasrec import readers
from sasrec.dataset import Dataset, Preprocessing, build_dataset, load_dataset
from sasrec.readers import Columns, DataError, detect_roles, find_roles, guess_roles, read_catalog, read_log
from sasrec.sequences import holdout, training_ends
from tests.browser import ROOT

# Three users; "a" has its events out of time order in the file.
LOG_ROWS = [("a", "i3", 4, 300), ("a", "i1", 5, 100), ("a", "i2", 2, 200), ("b", "i1", 3, 50),
            ("b", "i2", 4, 60), ("b", "i4", 5, 70), ("c", "i4", 1, 10), ("c", "i3", 5, 20), ("c", "i1", 4, 30)]
EXPECTED = {"a": ["i1", "i2", "i3"], "b": ["i1", "i2", "i4"], "c": ["i4", "i3", "i1"]}


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def log_text(sep=",", header=("user_id", "item_id", "rating", "timestamp"), rows=LOG_ROWS):
    return "\n".join([sep.join(header)] + [sep.join(map(str, row)) for row in rows]) + "\n"


def sequences(dataset):
    """{original user id: [original item ids in order]}"""
    return {user: list(dataset.item_ids[dataset.sequence(u)]) for u, user in enumerate(dataset.user_ids)}


def data_error(call, *fragments):
    """Assert call() raises DataError whose message holds every fragment; return the message."""
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def check_consistent(dataset):
    """The invariants every Dataset keeps."""
    n = dataset.num_items
    assert dataset.item_ids[0] == "" and list(dataset.item_ids[1:]) == sorted(dataset.item_ids[1:])
    assert len(set(dataset.item_ids[1:])) == n
    assert list(dataset.user_ids) == sorted(dataset.user_ids) and len(set(dataset.user_ids)) == dataset.num_users
    assert dataset.offsets[0] == 0 and dataset.offsets[-1] == dataset.num_events and np.all(np.diff(dataset.offsets) > 0)
    assert dataset.items.dtype == np.int32 and dataset.items.min() >= 1 and dataset.items.max() <= n
    assert set(dataset.items) == set(range(1, n + 1))
    assert list(dataset.catalog.index) == list(range(1, n + 1))
    assert list(dataset.catalog["item_id"]) == list(dataset.item_ids[1:])
    assert list(dataset.catalog.columns[:4]) == ["item_id", "title", "category", "genres"]
    if dataset.timestamps is not None:
        assert dataset.timestamps.dtype == np.int64 and len(dataset.timestamps) == dataset.num_events


# -----------------------------------------------------------------------------
# formats

@pytest.mark.parametrize("name, sep", [("log.csv", ","), ("semi.csv", ";"), ("tabs.csv", "\t"), ("log.tsv", "\t"),
                                       ("pipes.txt", "|"), ("log.dat", ",")])
def test_delimited_text_is_sniffed(tmp_path, name, sep):
    path = write(tmp_path / name, log_text(sep))
    raw = read_log(path)
    assert raw.format == ("tsv" if sep == "\t" else "csv") and raw.source == name
    assert list(raw.events.columns) == ["user_id", "item_id", "rating", "timestamp"]
    dataset = load_dataset(path)
    assert sequences(dataset) == EXPECTED
    check_consistent(dataset)


def test_gzip_csv_and_bom_and_quoted_fields(tmp_path):
    rows = [("a", "x,1", 1), ("a", "y", 2), ("a", "z", 3), ("b", "x,1", 1), ("b", "y", 2)]
    text = "\ufeffuser_id,item_id,ts\n" + "".join(f'{u},"{i}",{t}\n' for u, i, t in rows)
    path = tmp_path / "log.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    dataset = load_dataset(path, preprocessing=Preprocessing(min_seq_len=1))
    assert sequences(dataset) == {"a": ["x,1", "y", "z"], "b": ["x,1", "y"]}


def test_parquet(tmp_path):
    frame = pd.DataFrame(LOG_ROWS, columns=["user_id", "item_id", "rating", "timestamp"])
    frame.to_parquet(tmp_path / "log.parquet")
    raw = read_log(tmp_path / "log.parquet")
    assert raw.format == "parquet"
    assert sequences(load_dataset(tmp_path / "log.parquet")) == EXPECTED


def test_json_lines_and_json_list(tmp_path):
    records = [dict(zip(("user", "item", "rating", "timestamp"), row)) for row in LOG_ROWS]
    jsonl = write(tmp_path / "log.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    listed = write(tmp_path / "log.json", json.dumps(records))
    for path in (jsonl, listed):
        raw = read_log(path)
        assert raw.format == "jsonl"
        assert sequences(load_dataset(path)) == EXPECTED


def test_json_lines_with_mixed_id_types(tmp_path):
    lines = ['{"user_id": 1, "item_id": 7}', '{"user_id": "1", "item_id": "x"}', '{"user_id": 1, "item_id": 8}',
             '{"user_id": 2, "item_id": 7}', '{"user_id": 2, "item_id": "x"}', '{"user_id": 2, "item_id": 8}']
    dataset = load_dataset(write(tmp_path / "mixed.ndjson", "\n".join(lines)))
    assert sequences(dataset) == {"1": ["7", "x", "8"], "2": ["7", "x", "8"]}


def test_sasrec_text_keeps_file_order(tmp_path):
    path = write(tmp_path / "ml.txt", "1 30\n1 10\n1 20\n2 10\n2  30\r\n2\t20\n")
    raw = read_log(path)
    assert raw.format == "sasrec-txt" and raw.roles == Columns("user_id", "item_id")
    dataset = load_dataset(path)
    assert dataset.timestamps is None
    assert sequences(dataset) == {"1": ["30", "10", "20"], "2": ["10", "30", "20"]}


def test_sasrec_text_with_a_bad_line(tmp_path):
    path = write(tmp_path / "ml.txt", "1 30\n1 10\n1 20 x5\n2 10\n")
    data_error(lambda: read_log(path), "ml.txt", "line 3", "'1 20 x5'", "integers")


def test_one_line_per_user_reads_as_the_same_events_as_pairs(tmp_path):
    lines = write(tmp_path / "lines.txt", "7 3 1 2\n5 1 2\n7 9\n")  # user 7 again: its items go on, in file order
    pairs = write(tmp_path / "pairs.txt", "7 3\n7 1\n7 2\n5 1\n5 2\n7 9\n")
    assert read_log(lines).format == "user-sequences" and read_log(pairs).format == "sasrec-txt"
    for path in (lines, pairs):
        dataset = load_dataset(path, preprocessing=Preprocessing(min_seq_len=2))
        assert sequences(dataset) == {"5": ["1", "2"], "7": ["3", "1", "2", "9"]} and dataset.timestamps is None


def test_a_tab_separated_table_of_integers_is_not_taken_for_user_lines(tmp_path):
    path = write(tmp_path / "u.tsv", "".join(f"{u}\t{i}\t{r}\t{881250949 + n}\n" for n, (u, i, r) in
                                            enumerate([(1, 5, 3), (1, 6, 4), (2, 5, 1), (2, 7, 2), (1, 7, 5), (2, 6, 3)])))
    raw = read_log(path)
    assert (raw.format, raw.header, raw.delimiter) == ("tsv", False, "\t")
    assert raw.roles == Columns("column 1", "column 2", "column 4", "column 3")
    assert sequences(load_dataset(path)) == {"1": ["5", "6", "7"], "2": ["5", "7", "6"]}


@pytest.mark.parametrize("text, header", [
    ("user_id,item_id\n1,2\n3,4\n", True),            # names SASRec knows
    ("1,2\n3,4\n", False),                            # numbers only
    ("who,what,when\na,x,5\nb,y,6\n", True),          # a name above a column of numbers
    ("customer,product\nalice,shoe\nbob,hat\n", True),  # text whose first row never recurs
    ("alice,shoe\nalice,hat\nbob,shoe\n", False),      # a user's events recur
])
def test_the_header_row_is_guessed_and_can_be_overridden(tmp_path, text, header):
    path = write(tmp_path / "log.csv", text)
    rows = len(text.splitlines())
    assert read_log(path).header is header and len(read_log(path).events) == rows - header
    flipped = read_log(path, header=not header)
    assert flipped.header is (not header) and len(flipped.events) == rows - (not header)


def test_the_separator_can_be_given(tmp_path):
    path = write(tmp_path / "log.txt", "user item ts\na x 1\na y 2\nb x 3\n")
    data_error(lambda: read_log(path), "log.txt", "cannot tell how the columns are separated")
    raw = read_log(path, delimiter=" ")
    assert raw.delimiter == " " and list(raw.events.columns) == ["user", "item", "ts"] and len(raw.events) == 3
    data_error(lambda: read_log(path, delimiter="x"), "log.txt", "'x'", "comma, tab")


def test_excel_workbooks_and_zipped_tables_are_logs_and_catalogs(tmp_path):
    frame = pd.DataFrame(LOG_ROWS, columns=["user_id", "item_id", "rating", "timestamp"])
    frame.to_excel(tmp_path / "log.xlsx", index=False)
    raw = read_log(tmp_path / "log.xlsx")
    assert raw.format == "excel" and raw.header is True
    assert sequences(load_dataset(tmp_path / "log.xlsx")) == EXPECTED
    epoch = frame.drop(columns=["rating"]).assign(timestamp=frame["timestamp"] + 1_600_000_000)
    epoch.to_excel(tmp_path / "bare.xlsx", index=False, header=False)
    assert read_log(tmp_path / "bare.xlsx").header is False
    assert sequences(load_dataset(tmp_path / "bare.xlsx")) == EXPECTED  # the timestamp column found by its values

    pd.DataFrame({"item_id": ["i1", "i2"], "title": ["One", "Two"]}).to_excel(tmp_path / "items.xlsx", index=False)
    assert list(read_catalog(tmp_path / "items.xlsx")["title"]) == ["One", "Two"]
    with zipfile.ZipFile(tmp_path / "log.zip", "w") as archive:
        archive.writestr("export/log.csv", log_text())
    assert read_log(tmp_path / "log.zip").source == "log.zip/log.csv"
    assert sequences(load_dataset(tmp_path / "log.zip")) == EXPECTED


RECBOLE_INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                 "196\t242\t3\t881250949\n196\t302\t3\t881250950\n196\t51\t2\t881250948\n"
                 "186\t302\t3\t891717742\n186\t242\t3\t891717741\n186\t51\t5\t891717743\n")
RECBOLE_ITEM = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
                "51\tLegends of the Fall\t1994\tDrama Romance War Western\n")


def test_recbole_folder_and_inter_file(tmp_path):
    folder = tmp_path / "ml-tiny"
    folder.mkdir()
    write(folder / "ml-tiny.inter", RECBOLE_INTER)
    write(folder / "ml-tiny.item", RECBOLE_ITEM)
    write(folder / "ml-tiny.user", "user_id:token\tage:token\n196\t49\n")
    for path in (folder, folder / "ml-tiny.inter"):
        raw = read_log(path)
        assert raw.format == "recbole" and list(raw.events.columns) == ["user_id", "item_id", "rating", "timestamp"]
        dataset = load_dataset(path)
        assert sequences(dataset) == {"186": ["242", "302", "51"], "196": ["51", "242", "302"]}
        row = dataset.catalog.iloc[dataset.to_internal("302")[0] - 1]
        assert row["title"] == "L.A. Confidential" and row["category"] == "Crime"
        assert row["genres"] == "Crime, Film-Noir, Mystery, Thriller" and row["release_year"] == "1997"


def movielens_100k_zip(path, top="ml-100k"):
    ratings = "1\t10\t5\t881250949\n1\t20\t3\t881250950\n1\t30\t4\t881250948\n2\t10\t2\t881250951\n2\t30\t1\t881250952\n2\t20\t4\t881250953\n"
    flags = lambda on: "|".join("1" if i in on else "0" for i in range(19))
    items = (f"10|Café Society (1995)|01-Jan-1995||http://x|{flags({5, 8})}\n"
             f"20|Heat (1995)|01-Jan-1995||http://y|{flags({1, 6, 16})}\n"
             f"30|Unknown (1995)|01-Jan-1995||http://z|{flags({0})}\n")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{top}/", "")
        archive.writestr(f"{top}/u.data", ratings)
        archive.writestr(f"{top}/u.item", items.encode("latin-1"))
        archive.writestr(f"{top}/u1.base", ratings)
        archive.writestr(f"{top}/README", "fake")
    return path


def test_movielens_100k_zip(tmp_path):
    path = movielens_100k_zip(tmp_path / "whatever.zip", top="renamed")
    raw = read_log(path)
    assert raw.format == "movielens-100k" and raw.roles.rating == "rating"
    assert sequences(load_dataset(path, preprocessing=Preprocessing(min_rating=3, min_seq_len=1))) == {
        "1": ["30", "10", "20"], "2": ["20"]}
    dataset = load_dataset(path)
    assert sequences(dataset) == {"1": ["30", "10", "20"], "2": ["10", "30", "20"]}
    catalog = dataset.catalog.set_index("item_id")
    assert catalog.loc["10", "title"] == "Café Society (1995)"  # u.item is latin-1
    assert catalog.loc["10", "genres"] == "Comedy, Drama" and catalog.loc["10", "category"] == "Comedy"
    assert catalog.loc["20", "genres"] == "Action, Crime, Thriller" and catalog.loc["30", "genres"] == "unknown"
    assert read_catalog(path).shape[0] == 3


def test_extracted_movielens_folder_and_files(tmp_path):
    with zipfile.ZipFile(movielens_100k_zip(tmp_path / "ml-100k.zip")) as archive:
        archive.extractall(tmp_path)
    folder = tmp_path / "ml-100k"
    for path in (folder, folder / "u.data"):
        raw = read_log(path)
        assert raw.format == "movielens-100k" and raw.catalog is not None
        assert sequences(load_dataset(path)) == {"1": ["30", "10", "20"], "2": ["10", "30", "20"]}
    assert list(read_catalog(folder / "u.item")["title"]) == ["Café Society (1995)", "Heat (1995)", "Unknown (1995)"]


def test_movielens_1m_zip(tmp_path):
    path = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ml-1m/ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n1::914::3::978301968\n"
                                              "2::1193::4::978298413\n2::661::5::978299000\n2::914::1::978299100\n")
        archive.writestr("ml-1m/movies.dat", "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                                             "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
                                             "914::My Fair Lady (1964)::Musical|Romance\n".encode("latin-1"))
        archive.writestr("ml-1m/users.dat", "1::F::1::10::48067\n")
    raw = read_log(path)
    assert raw.format == "movielens-1m"
    dataset = load_dataset(path)
    assert sequences(dataset) == {"1": ["1193", "914", "661"], "2": ["1193", "661", "914"]}
    peach = dataset.catalog.set_index("item_id").loc["661"]
    assert peach["category"] == "Animation" and peach["genres"] == "Animation, Children's, Musical"


def test_movielens_latest_small_zip(tmp_path):
    path = tmp_path / "ml-latest-small.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ml-latest-small/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"
                         "1,3,4.0,964981247\n1,6,4.0,964982224\n2,1,3.5,1445714835\n2,3,2.0,1445714900\n2,6,5.0,1445714800\n")
        archive.writestr("ml-latest-small/movies.csv", 'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
                         '3,"American President, The (1995)",Comedy|Drama|Romance\n6,Heat (1995),(no genres listed)\n')
        archive.writestr("ml-latest-small/links.csv", "movieId,imdbId,tmdbId\n1,0114709,862\n")
    raw = read_log(path)
    assert raw.format == "movielens-csv" and raw.roles == Columns("userId", "movieId", "timestamp", "rating")
    dataset = load_dataset(path, preprocessing=Preprocessing(min_rating=3.5, min_seq_len=1))
    assert sequences(dataset) == {"1": ["3", "6", "1"], "2": ["6", "1"]}
    catalog = dataset.catalog.set_index("item_id")
    assert catalog.loc["3", "title"] == "American President, The (1995)" and catalog.loc["3", "category"] == "Comedy"
    assert pd.isna(catalog.loc["6", "category"]) and pd.isna(catalog.loc["6", "genres"])


def test_unknown_zip_layout(tmp_path):
    path = tmp_path / "stuff.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("stuff/notes.txt", "hello")
        archive.writestr("stuff/more notes.txt", "hello again")
        archive.writestr("stuff/data.bin", b"\x00\x01")
    data_error(lambda: read_log(path), "stuff.zip", "u.data", "one table", "notes.txt", "data.bin")


def test_dataset_folder_round_trip(tmp_path):
    write(tmp_path / "log.csv", log_text())
    write(tmp_path / "items.csv", "item_id,title,genre,year\ni1,One,Drama|War,1990\ni2,Two,Comedy,1991\ni9,Nine,,1999\n")
    original = load_dataset(tmp_path / "log.csv", items=tmp_path / "items.csv", preprocessing=Preprocessing(min_rating=2))
    original.save(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["interactions.parquet", "items.parquet", "meta.json"]
    meta = json.loads((tmp_path / "saved" / "meta.json").read_text())
    assert meta["stats"]["interactions"] == original.num_events and meta["preprocessing"]["min_rating"] == 2
    raw = read_log(tmp_path / "saved")
    assert raw.format == "dataset-folder" and list(raw.events.columns) == ["user_id", "item_id", "timestamp"]
    again = load_dataset(tmp_path / "saved")
    for name in ("user_ids", "item_ids", "offsets", "items", "timestamps"):
        assert np.array_equal(getattr(again, name), getattr(original, name)), name
    pd.testing.assert_frame_equal(again.catalog, original.catalog, check_dtype=False)
    check_consistent(again)


def test_sample_style_folder_with_csv_gz_and_items_csv(tmp_path):
    (tmp_path / "interactions.csv.gz").write_bytes(gzip.compress(log_text().encode()))
    write(tmp_path / "items.csv", "item_id,title,category\ni1,First,Books\ni2,Second,Music\n")
    dataset = load_dataset(tmp_path)
    assert sequences(dataset) == EXPECTED
    assert list(dataset.catalog["title"]) == ["First", "Second", "i3", "i4"]  # items missing from it: titled by id
    assert list(dataset.catalog["category"].fillna("-")) == ["Books", "Music", "-", "-"]


def test_folder_without_a_log(tmp_path):
    write(tmp_path / "notes.md", "hi")
    data_error(lambda: read_log(tmp_path), tmp_path.name, "interactions", "notes.md")


# -----------------------------------------------------------------------------
# roles

def test_detect_roles_common_names_any_case():
    frame = pd.DataFrame(columns=["UserID", "movieid", "Event_Time", "Stars", "other"])
    assert detect_roles(frame) == Columns("UserID", "movieid", "Event_Time", "Stars")
    assert detect_roles(pd.DataFrame(columns=["visitor_id", "sku"])) == Columns("visitor_id", "sku")


def test_recbole_style_headers_are_stripped(tmp_path):
    path = write(tmp_path / "log.tsv", log_text("\t", header=("user_id:token", "item_id:token", "rating:float", "timestamp:float")))
    assert list(read_log(path).events.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert detect_roles(pd.DataFrame(columns=["user_id:token", "item_id:token"])) == Columns("user_id:token", "item_id:token")


def test_ambiguous_and_missing_roles(tmp_path):
    path = write(tmp_path / "two_users.csv", log_text(header=("user_id", "userId", "rating", "timestamp")))
    data_error(lambda: load_dataset(path), "two_users.csv", "'user_id'", "'userId'", "user column")
    # Neither the names nor the values tell: no column's values come in runs, as a user's do.
    interleaved = [LOG_ROWS[n] for n in (0, 3, 6, 1, 4, 7, 2, 5, 8)]
    path = write(tmp_path / "odd.csv", log_text(header=("who", "what", "score", "when"), rows=interleaved))
    data_error(lambda: load_dataset(path), "odd.csv", "no user column", "who", "what", "user_id", "repeat in runs")
    dataset = load_dataset(path, roles=Columns("who", "what", "when"))  # the caller's roles always win
    assert sequences(dataset) == EXPECTED
    assert dataset.report[0]["roles"]["user"] == {"column": "who", "how": "given"}


def test_explicit_roles_override_detection(tmp_path):
    path = write(tmp_path / "log.csv", log_text())
    # swap the roles: items become users
    dataset = load_dataset(path, roles=Columns(user="item_id", item="user_id", timestamp="timestamp"),
                           preprocessing=Preprocessing(min_seq_len=1))
    assert set(dataset.user_ids) == {"i1", "i2", "i3", "i4"}
    data_error(lambda: load_dataset(path, roles=Columns("user_id", "nope")), "log.csv", "'nope'", "item column")


def found(frame: pd.DataFrame):
    roles = find_roles(frame, "log.csv")
    return roles.columns, roles.how


def test_names_first_then_content_for_what_they_leave_open():
    frame = pd.DataFrame({"customer": ["a", "a", "a", "b", "b", "b", "c", "c", "c"],  # in runs
                          "sku": ["x", "y", "z", "x", "y", "w", "w", "z", "x"],
                          "purchased_at": [f"2021-03-0{d} 10:00" for d in range(1, 10)], "amount": [9.5] * 9})
    columns, how = found(frame)
    assert columns == {"user": "customer", "item": "sku", "timestamp": "purchased_at", "rating": None}
    assert how == {"user": "by content: its values repeat in runs: 75% of rows repeat the row above, 3.0 rows per value",
                   "item": "by name", "timestamp": "by content: dates from 2021-03-01 to 2021-03-09"}
    # a name always wins: a column named user_id is the user, even when another column is in runs
    named = frame.assign(user_id=list("abcabcabc"))
    assert found(named)[0]["user"] == "user_id" and found(named)[1]["user"] == "by name"
    # the item by content: the other id column with the most distinct values (not the time, not the amount)
    columns, how = found(frame.rename(columns={"sku": "product"}).assign(store=list("pqpqpqpqp")))
    assert columns["item"] == "product" and how["item"].startswith("by content: the other id column")


@pytest.mark.parametrize("values, unit", [
    ([788_918_400, 800_000_000], "epoch seconds"),                   # 1995-01-01 is the first
    ([1_600_000_000_000, 1_600_000_500_000], "epoch milliseconds"),
    ([4_102_444_700, 4_102_444_799.5], "epoch seconds"),             # up to 2099-12-31
    (["31/01/2024", "01/02/2024"], "dates"),
    (["Jan 5, 2024", "Feb 6, 2024"], "dates"),
    (pd.to_datetime(["2024-01-31", "2024-02-01"]), "date-times"),
])
def test_times_by_content(values, unit):
    frame = pd.DataFrame({"who": ["a", "a"] * 2, "what": ["x", "y"] * 2, "when": list(values) * 2})
    columns, how = found(frame)
    assert columns["timestamp"] == "when" and how["timestamp"].startswith(f"by content: {unit} from ")


@pytest.mark.parametrize("values", [
    [1, 2, 3, 4, 5],                                  # ratings
    [4.5, 3.0, 5.0, 1.5, 2.0],
    ["4.5", "3.0", "5", "1.5", "2"],                  # dateutil would read "4.5" as April 5th
    [788_918_399, 800_000_000, 800_000_001, 800_000_002, 800_000_003],  # from 1994
    [4_102_444_800, 800_000_000, 800_000_001, 800_000_002, 800_000_003],  # to 2100
    [1_600_000_000] * 5,                              # a constant: the export's time, not the events'
    [10**17 + n for n in range(5)],                   # ids of 18 digits (epoch nanoseconds are not guessed)
    ["1950-03-01", "1961-01-02", "1970-05-05", "1984-12-12", "1990-01-01"],  # birth dates
    ["SKU-2024-0001", "SKU-2024-0002", "SKU-2024-0003", "SKU-2024-0004", "SKU-2024-0005"],
    [True, False, True, True, False],
])
def test_what_is_no_time(values):
    frame = pd.DataFrame({"user_id": list("aaabb"), "item_id": list("xyzxy"), "other": values})
    columns, how = found(frame)
    assert columns["timestamp"] is None and "timestamp" not in how


def test_two_columns_of_times_leave_the_choice_to_the_user(tmp_path):
    frame = pd.DataFrame({"user_id": list("aaabbb"), "item_id": list("xyzxyz"),
                          "ordered": [f"2021-03-0{d}" for d in range(1, 7)], "shipped": [f"2021-04-0{d}" for d in range(1, 7)]})
    columns, how = found(frame)
    assert columns["timestamp"] is None and how["timestamp"].startswith("columns 'ordered' and 'shipped' could both")
    path = write(tmp_path / "log.csv", frame.to_csv(index=False))
    data_error(lambda: load_dataset(path), "log.csv", "could both be the timestamp column", "choose")
    assert sequences(load_dataset(path, roles=Columns("user_id", "item_id", "shipped"))) == {"a": list("xyz"),
                                                                                            "b": list("xyz")}


def test_a_user_comes_in_runs_with_many_rows_each_and_a_type_is_no_user():
    runs = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    channel = ["web"] * 6 + ["app"] * 6  # in longer runs (91% repeat), but half of all pairs of rows agree
    items = [f"i{n}" for n in (1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6)]
    columns, how = found(pd.DataFrame({"channel": channel, "customer": runs, "product": items}))
    assert columns["user"] == "customer" and "82% of rows repeat the row above, 4.0 rows per value" in how["user"]
    assert found(pd.DataFrame({"channel": channel, "product": items}))[0]["user"] is None
    one_each = pd.DataFrame({"customer": [f"c{n}" for n in range(12)], "product": items})  # no runs: no user
    columns, how = found(one_each)
    assert columns["user"] is None and how["user"].startswith("no user column found among the columns")
    assert columns["item"] is None  # the item is looked for by content only once the user is known


def test_an_item_is_an_id_whose_values_recur():
    base = {"customer": list("aaaabbbbcccc")}
    events = [f"e{n}" for n in range(12)]  # one per row: an event id
    products = [f"p{n % 5}" for n in range(12)]
    titles = [f"Product number {n % 5}" for n in range(12)]  # sentences, not ids
    columns, _ = found(pd.DataFrame(base | {"event": events, "product": products, "label": titles}))
    assert columns["item"] == "product"
    columns, how = found(pd.DataFrame(base | {"event": events, "quantity": [1, 2, 1] * 4}))
    assert columns["item"] is None and how["item"].startswith("no item column found")
    columns, _ = found(pd.DataFrame(base | {"product": products, "title": [f"p{n}" for n in range(12)]}))
    assert columns["item"] == "product"  # a column named like a title is never an id


def test_a_file_without_a_header_reports_positions_and_content(tmp_path):
    path = write(tmp_path / "u.tsv", "".join(f"{u}\t{i}\t{r}\t{881250949 + n}\n" for n, (u, i, r) in
                                            enumerate([(1, 5, 3), (1, 6, 4), (2, 5, 1), (2, 7, 2), (1, 7, 5), (2, 6, 3)])))
    roles = guess_roles(read_log(path))
    assert roles.how == {"user": "by position: the first column of a file without a header row",
                         "item": "by position: the second column of a file without a header row",
                         "timestamp": "by content: epoch seconds from 1997-12-04 to 1997-12-04",
                         "rating": "by content: numbers from 0 to 10"}


def test_the_report_and_the_command_line_say_how_each_role_was_found(tmp_path):
    rows = [("c1", "s1", "2021-01-03"), ("c1", "s2", "2021-01-04"), ("c1", "s3", "2021-01-05"),
            ("c2", "s2", "2021-02-01"), ("c2", "s3", "2021-02-02"), ("c2", "s1", "2021-02-03"),
            ("c3", "s3", "2021-01-01"), ("c3", "s1", "2021-01-02"), ("c3", "s2", "2021-01-03")]
    path = write(tmp_path / "export.csv", log_text(header=("customer", "sku", "purchased_at"), rows=rows))
    roles = load_dataset(path).report[0]["roles"]
    assert roles == {"user": {"column": "customer", "how": "by content: its values repeat in runs: 75% of rows repeat "
                                                           "the row above, 3.0 rows per value"},
                     "item": {"column": "sku", "how": "by name"},
                     "timestamp": {"column": "purchased_at", "how": "by content: dates from 2021-01-01 to 2021-02-03"}}
    printed = subprocess.run([sys.executable, "-m", "sasrec", "stats", str(path), "--min-len", "1"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert printed[:3] == [f"{role} column {found['column']!r} ({found['how']})" for role, found in roles.items()]


# -----------------------------------------------------------------------------
# streaming

@pytest.fixture
def small_pieces(monkeypatch):
    """Text is read in pieces of 4 KB (blocks of 1 KB), so that a small file spans many."""
    monkeypatch.setattr(readers, "CSV_PIECE_BYTES", 4096)
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 1024)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from(["u1", "u2", "007", "x y", 'q"t']), st.integers(0, 10**6),
                               st.one_of(st.integers(1_600_000_000, 1_700_000_000), st.just(""), st.just("n/a"))),
                     min_size=1, max_size=400),
       gzipped=st.booleans())
def test_pieces_read_as_the_whole_text_does(tmp_path, monkeypatch, rows, gzipped):
    """However a file is cut into pieces, the table is the one read in one piece: the same rows, values,
    column types and skipped rows."""
    lines = ["user_id,item,when"] + [f'"{u.replace(chr(34), 2 * chr(34))}",{i},{t}' for u, i, t in rows]
    text = ("\n".join(lines) + "\n").encode()
    path = write(tmp_path / ("log.csv.gz" if gzipped else "log.csv"), gzip.compress(text) if gzipped else text)
    whole = read_log(path).events
    monkeypatch.setattr(readers, "CSV_PIECE_BYTES", 256)
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 128)
    pieces = read_log(path).events
    pd.testing.assert_frame_equal(pieces, whole)
    assert pieces.attrs == whole.attrs


def test_line_numbers_count_from_the_start_of_the_file_in_every_piece(tmp_path, small_pieces):
    rows = [f"u{n % 7},i{n % 13},{1_600_000_000 + n}" for n in range(2000)]
    rows[1500] = "u1,i1"  # line 1502, in a later piece
    rows[1800:1830] = ["u2"] * 30
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    data_error(lambda: read_log(path), "log.csv", "31 of 2000 rows", "line 1502: 'u1,i1'", "line 1802: 'u2'")
    rows[1000] = 'u3,"i3,1600000000'  # a quote never closed, in a later piece
    data_error(lambda: read_log(write(path, "user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")), "line 1002",
               "never closed")


def test_a_column_whose_pieces_disagree_is_text_and_keeps_its_digits(tmp_path, small_pieces):
    rows = [f"u{n % 7},i{n % 13},{n:05d},{n % 5 + 0.5 * (n > 1500)}" for n in range(2000)]
    rows[1900] = "u1,i1,A17,3"
    path = write(tmp_path / "log.csv", "user_id,item_id,code,score\n" + "\n".join(rows) + "\n")
    events = read_log(path).events
    assert events["code"].iloc[7] == "00007" and events["code"].iloc[1900] == "A17"  # read again as text
    assert pd.api.types.is_float_dtype(events["score"]) and events["score"].iloc[1601] == 1.5  # integers, then fractions


def test_latin1_far_down_a_file_and_in_a_zip_member(tmp_path, small_pieces):
    text = "user_id,item_id,timestamp\n" + "".join(f"u{n % 7},i{n % 13},{n}\n" for n in range(3000)) + "u1,café,4000\n"
    plain = write(tmp_path / "log.csv", text.encode("latin-1"))
    zipped = tmp_path / "log.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("log.csv.gz", gzip.compress(text.encode("latin-1")))
    for path in (plain, zipped):
        assert read_log(path).events["item_id"].iloc[-1] == "café"


def test_a_gzip_is_never_unpacked_whole(tmp_path, monkeypatch):
    """No read asks for more than a piece: the decompressed text is never in memory at once."""
    text = "user_id,item_id,timestamp\n" + "".join(f"u{n % 7},i{n % 13},{n}\n" for n in range(200_000))
    path = write(tmp_path / "log.csv.gz", gzip.compress(text.encode()))
    asked = []
    read = readers._Stream.read
    monkeypatch.setattr(readers._Stream, "read", lambda self, size=-1: asked.append(size) or read(self, size))
    assert len(read_log(path).events) == 200_000
    assert asked and max(asked) <= readers.CSV_PIECE_BYTES and -1 not in asked and None not in asked


# -----------------------------------------------------------------------------
# ids and time

def test_ids_are_normalised(tmp_path):
    frame = pd.DataFrame({"user_id": [" u1", "u1 ", "u1", "u2", "u2", "u2", "", None],
                          "item_id": [242.0, 7.0, np.nan, 242.0, 7.5, 7.0, 1.0, 1.0]})
    dataset = build_dataset(frame, detect_roles(frame), preprocessing=Preprocessing(min_seq_len=1))
    assert sequences(dataset) == {"u1": ["242", "7"], "u2": ["242", "7.5", "7"]}
    assert dataset.report[1] == {"step": "drop missing ids", "rows": 5, "users": 2, "items": 3}
    assert list(dataset.to_internal([242, 7])) == [1, 2] and list(dataset.to_internal(np.array([7.0, 242.0]))) == [2, 1]
    assert list(dataset.to_internal(["7.5", " 7"])) == [3, 2] and dataset.user_index(" u2") == 1


def test_epoch_seconds_milliseconds_and_dates_give_the_same_order(tmp_path):
    seconds = [1_600_000_300, 1_600_000_100, 1_600_000_200, 1_600_000_050, 1_600_000_060, 1_600_000_070,
               1_600_000_010, 1_600_000_020, 1_600_000_030]
    rows = [row[:3] for row in LOG_ROWS]
    variants = {"s": seconds, "ms": [s * 1000 + 999 for s in seconds],
                "iso": [pd.Timestamp(s, unit="s").isoformat() for s in seconds],
                "tz": [pd.Timestamp(s, unit="s", tz="Europe/Berlin").isoformat() for s in seconds]}
    results = []
    for name, times in variants.items():
        path = write(tmp_path / f"{name}.csv", log_text(rows=[(*r, t) for r, t in zip(rows, times)]))
        dataset = load_dataset(path)
        assert sequences(dataset) == EXPECTED, name
        results.append(dataset.timestamps)
    for timestamps in results[1:]:
        assert np.array_equal(timestamps, results[0])
    assert sorted(results[0]) == sorted(seconds)


def test_mixed_date_formats_are_parsed(tmp_path):
    rows = [("a", "x", "2024-01-03"), ("a", "y", "2024-01-01 10:00"), ("a", "z", "2024/01/02"), ("b", "x", "2024-01-01"),
            ("b", "y", "2024-01-02")]
    dataset = load_dataset(write(tmp_path / "dates.csv", log_text(header=("user", "item", "date"), rows=rows)),
                           preprocessing=Preprocessing(min_seq_len=1))
    assert sequences(dataset)["a"] == ["y", "z", "x"]


def test_rows_without_a_timestamp_are_dropped_and_reported(tmp_path):
    rows = [*LOG_ROWS[:3], ("a", "i4", 3, ""), *LOG_ROWS[3:]]
    dataset = load_dataset(write(tmp_path / "gaps.csv", log_text(rows=rows)))
    assert steps(dataset)["drop missing timestamps"] == (9, 3, 4) and steps(dataset)["read"] == (10, 3, 4)
    assert sequences(dataset) == EXPECTED
    data_error(lambda: load_dataset(write(tmp_path / "none.csv", "user,item,ts\na,b,\nc,d,\n")), "none.csv", "'ts'")


def test_ties_keep_file_order(tmp_path):
    rows = [("u", "b", 5), ("u", "a", 5), ("u", "c", 1), ("v", "a", 2), ("v", "c", 2), ("v", "b", 2)]
    dataset = load_dataset(write(tmp_path / "ties.csv", log_text(header=("user", "item", "ts"), rows=rows)))
    assert sequences(dataset) == {"u": ["c", "b", "a"], "v": ["a", "c", "b"]}


@pytest.mark.parametrize("times", [(-9 * 10**18, 9 * 10**18, 0), (2**62, 2**62 - 5, 2**62 - 1), (1.5, -0.25, 1e9)])
def test_extreme_and_fractional_times_are_ordered(times):
    events = pd.DataFrame({"user": ["u", "u", "u", "v", "v", "v"], "item": ["a", "b", "c", "c", "b", "a"],
                           "time": list(times) + list(times)})
    dataset = build_dataset(events, Columns("user", "item", "time"), preprocessing=Preprocessing(min_seq_len=1))
    by_time = [item for _, item in sorted(zip(times, "abc"))]
    assert sequences(dataset) == {"u": by_time, "v": [item for _, item in sorted(zip(times, "cba"))]}


def test_without_timestamps_file_order_is_kept(tmp_path):
    rows = [("u", "b"), ("v", "a"), ("u", "a"), ("u", "c"), ("v", "c"), ("v", "b"), ("u", "b")]
    dataset = load_dataset(write(tmp_path / "plain.csv", log_text(header=("user", "item"), rows=rows)))
    assert dataset.timestamps is None and dataset.stats()["has_timestamps"] is False
    assert sequences(dataset) == {"u": ["b", "a", "c", "b"], "v": ["a", "c", "b"]}
    assert "note" in dataset.report[2]  # nothing counts as an exact duplicate without times


# -----------------------------------------------------------------------------
# preprocessing

def steps(dataset):
    return {step["step"]: (step["rows"], step["users"], step["items"]) for step in dataset.report}


def test_min_rating(tmp_path):
    dataset = load_dataset(write(tmp_path / "log.csv", log_text()), preprocessing=Preprocessing(min_rating=3, min_seq_len=2))
    assert steps(dataset)["min rating >= 3"] == (7, 3, 4)
    assert sequences(dataset) == {"a": ["i1", "i3"], "b": ["i1", "i2", "i4"], "c": ["i3", "i1"]}


def test_drop_duplicates_and_keep_them(tmp_path):
    rows = LOG_ROWS + [("a", "i1", 5, 100), ("a", "i1", 5, 101)]
    path = write(tmp_path / "dups.csv", log_text(rows=rows))
    dataset = load_dataset(path)
    assert steps(dataset)["drop missing ids"][0] == 11 and steps(dataset)["drop duplicates"][0] == 10
    assert sequences(dataset)["a"] == ["i1", "i1", "i2", "i3"]
    kept = load_dataset(path, preprocessing=Preprocessing(drop_duplicates=False))
    assert "drop duplicates" not in steps(kept) and sequences(kept)["a"] == ["i1", "i1", "i1", "i2", "i3"]


def test_collapse_repeats(tmp_path):
    rows = [("u", "a", 1), ("u", "a", 2), ("u", "b", 3), ("u", "a", 4), ("u", "a", 5), ("v", "b", 1), ("v", "b", 2),
            ("v", "c", 3)]
    path = write(tmp_path / "rep.csv", log_text(header=("user", "item", "ts"), rows=rows))
    dataset = load_dataset(path, preprocessing=Preprocessing(collapse_repeats=True, min_seq_len=1))
    assert sequences(dataset) == {"u": ["a", "b", "a"], "v": ["b", "c"]}
    assert steps(dataset)["collapse repeats"] == (5, 2, 3)


def test_k_core_needs_several_passes(tmp_path):
    # Pass 1 drops item "c" (1 event); that leaves user "w" with 1 event, so pass 2 drops "w".
    rows = [("u", "a"), ("u", "b"), ("v", "a"), ("v", "b"), ("w", "a"), ("w", "c")]
    path = write(tmp_path / "core.csv", log_text(header=("user", "item"), rows=rows))
    dataset = load_dataset(path, preprocessing=Preprocessing(k_core=2, min_seq_len=1))
    assert sequences(dataset) == {"u": ["a", "b"], "v": ["a", "b"]}
    core = next(step for step in dataset.report if step["step"] == "k-core 2")
    assert core == {"step": "k-core 2", "rows": 4, "users": 2, "items": 2, "passes": 2}
    data_error(lambda: load_dataset(path, preprocessing=Preprocessing(k_core=3, min_seq_len=1)), "core.csv", "'k-core 3'")


def test_min_seq_len(tmp_path):
    rows = LOG_ROWS + [("d", "i1", 5, 1), ("d", "i2", 5, 2)]
    path = write(tmp_path / "log.csv", log_text(rows=rows))
    assert set(load_dataset(path).user_ids) == {"a", "b", "c"}
    assert steps(load_dataset(path))["min sequence length 3"] == (9, 3, 4)
    assert set(load_dataset(path, preprocessing=Preprocessing(min_seq_len=2)).user_ids) == {"a", "b", "c", "d"}


def test_report_starts_with_read_and_is_json_serialisable(tmp_path):
    dataset = load_dataset(write(tmp_path / "log.csv", log_text()),
                           preprocessing=Preprocessing(min_rating=1, collapse_repeats=True, k_core=2))
    names = [step["step"] for step in dataset.report]
    assert names == ["read", "drop missing ids", "drop missing timestamps", "min rating >= 1", "drop duplicates",
                     "collapse repeats", "k-core 2", "min sequence length 3"]
    by_name = {role: {"column": role.replace("user", "user_id").replace("item", "item_id"), "how": "by name"}
               for role in ("user", "item", "rating", "timestamp")}
    assert dataset.report[0] == {"step": "read", "rows": 9, "users": 3, "items": 4, "skipped_rows": 0, "roles": by_name,
                                 "timestamps": "epoch s"}
    json.dumps(dataset.report)
    stats = json.loads(json.dumps(dataset.stats()))
    assert stats["users"] == 3 and stats["items"] == 4 and stats["interactions"] == 9
    assert stats["density"] == pytest.approx(9 / 12) and stats["seq_len_median"] == 3
    assert stats["time_min"].startswith("1970-01-01T00:00:10")


def test_preprocessing_round_trips_through_dict():
    settings_ = Preprocessing(min_rating=4.0, drop_duplicates=False, collapse_repeats=True, k_core=5, min_seq_len=2)
    assert Preprocessing.from_dict(json.loads(json.dumps(settings_.to_dict()))) == settings_
    data_error(lambda: Preprocessing.from_dict({"kcore": 5}), "kcore")


@st.composite
def small_logs(draw):
    events = draw(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 9)), max_size=80))
    return events, draw(st.integers(2, 4))


def reference_k_core(events, k):
    """The obvious, slow k-core: remove under-k users and items one round at a time until nothing changes."""
    while True:
        users, items = Counter(u for u, _ in events), Counter(i for _, i in events)
        kept = [(u, i) for u, i in events if users[u] >= k and items[i] >= k]
        if len(kept) == len(events):
            return kept
        events = kept


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_logs())
def test_k_core_reaches_a_fixed_point_and_ids_are_a_bijection(log):
    events, k = log
    frame = pd.DataFrame(events, columns=["user", "item"]).astype(str) if events else pd.DataFrame(
        {"user": ["0"], "item": ["0"]})
    expected = reference_k_core(list(map(tuple, frame.to_numpy())), k)
    settings_ = Preprocessing(k_core=k, min_seq_len=0, drop_duplicates=False)
    if len({u for u, _ in expected}) < 2 or len({i for _, i in expected}) < 2:
        data_error(lambda: build_dataset(frame, Columns("user", "item"), preprocessing=settings_, source="random.csv"),
                   "random.csv", "k-core")
        return
    dataset = build_dataset(frame, Columns("user", "item"), preprocessing=settings_)
    assert dataset.num_events == len(expected)
    assert min(np.diff(dataset.offsets)) >= k and min(np.bincount(dataset.items)[1:]) >= k
    assert np.array_equal(dataset.to_internal(dataset.item_ids[1:]), np.arange(1, dataset.num_items + 1))
    assert [dataset.user_index(u) for u in dataset.user_ids] == list(range(dataset.num_users))
    assert sorted(zip(np.repeat(dataset.user_ids, np.diff(dataset.offsets)), dataset.item_ids[dataset.items])) == sorted(expected)
    check_consistent(dataset)


# -----------------------------------------------------------------------------
# dataset and split

def test_leave_one_out_skips_users_too_short_for_it():
    frame = pd.DataFrame({"user": ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"],
                          "item": ["1", "2", "3", "4", "5", "3", "2", "1", "5", "4", "2"]})
    dataset = build_dataset(frame, Columns("user", "item"), preprocessing=Preprocessing(min_seq_len=1))
    internal = lambda *ids: list(dataset.to_internal(list(ids)))
    valid, test = holdout(dataset, "valid"), holdout(dataset, "test")
    # Before the fix, user c's validation target was user b's last item.
    assert list(dataset.user_ids[valid.users]) == ["a", "b"] and valid.skipped == test.skipped == 2
    assert list(valid.targets) == internal("4", "2") and list(test.targets) == internal("5", "1")
    assert [list(dataset.items[s:e]) for s, e in zip(test.starts, test.ends)] == [internal("1", "2", "3", "4"),
                                                                                  internal("3", "2")]
    # Users too short to hold anything out train on all of their items.
    ends = training_ends(dataset)
    assert [list(dataset.items[s:e]) for s, e in zip(dataset.offsets[:-1], ends)] == [
        internal("1", "2", "3"), internal("3"), internal("5", "4"), internal("2")]


def test_to_internal_and_user_index_errors(tmp_path):
    dataset = load_dataset(write(tmp_path / "log.csv", log_text()))
    assert list(dataset.to_internal(["i4", "i1"])) == [4, 1]
    data_error(lambda: dataset.to_internal(["i1", "nope", "zap"]), "log.csv", "'nope'", "'zap'")
    data_error(lambda: dataset.user_index("zed"), "log.csv", "'zed'")
    assert dataset.user_index("b") == 1 and list(dataset.sequence(1)) == [1, 2, 4]


def test_read_catalog_standardises_columns(tmp_path):
    path = write(tmp_path / "products.csv", "productId,product_title,main_category,price\n"
                                            "p1,Pen,Office;Writing,1.5\np2,,Garden,3\np2,Dup,Garden,3\n,NoId,X,1\n")
    catalog = read_catalog(path)
    assert list(catalog.columns) == ["item_id", "title", "category", "genres", "price"]
    assert list(catalog["item_id"]) == ["p1", "p2"] and list(catalog["title"]) == ["Pen", "p2"]
    assert list(catalog["category"]) == ["Office", "Garden"] and catalog["genres"][0] == "Office, Writing"


# -----------------------------------------------------------------------------
# errors

def test_empty_file_and_header_only(tmp_path):
    data_error(lambda: load_dataset(write(tmp_path / "empty.csv", b"")), "empty.csv", "empty", "user_id")
    data_error(lambda: load_dataset(write(tmp_path / "head.csv", "user_id,item_id\n")), "head.csv", "no rows", "user_id")


def test_binary_content(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    data_error(lambda: load_dataset(write(tmp_path / "pic.csv", png)), "pic.csv", "PNG", "CSV")
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    data_error(lambda: load_dataset(write(tmp_path / "noise.csv", noise)), "noise.csv", "not a text table")
    data_error(lambda: load_dataset(write(tmp_path / "bad.parquet", noise)), "bad.parquet")


def test_utf16_is_refused_and_latin1_is_read(tmp_path):
    data_error(lambda: load_dataset(write(tmp_path / "wide.csv", log_text(), encoding="utf-16")),
               "wide.csv", "UTF-16", "UTF-8")
    path = write(tmp_path / "old.csv", log_text().replace("i4", "caf\u00e9"), encoding="latin-1")
    assert "caf\u00e9" in load_dataset(path).item_ids


def test_ids_all_missing(tmp_path):
    path = write(tmp_path / "noids.csv", "user_id,item_id\n,1\n,2\n")
    data_error(lambda: load_dataset(path), "noids.csv", "'user_id'", "missing")


def test_unparseable_timestamps_quote_lines(tmp_path):
    rows = [(*row[:3], "2024-01-01") for row in LOG_ROWS]
    rows[4] = (*rows[4][:3], "not a date")
    rows[6] = (*rows[6][:3], "31/31/2024")
    message = data_error(lambda: load_dataset(write(tmp_path / "when.csv", log_text(rows=rows))),
                         "when.csv", "'timestamp'", "line 6", "'not a date'", "line 8")
    assert "2 of 9" in message


def test_unparseable_timestamp_far_down_a_numeric_column(tmp_path):
    # Beyond pyarrow's first 1 MB block, where the column looks like integers.
    rows = [("u", f"i{n % 7}", 1, 1_600_000_000 + n) for n in range(60_000)] + [("v", "i1", 1, "soon")]
    path = write(tmp_path / "late.csv", log_text(rows=rows))
    data_error(lambda: load_dataset(path), "late.csv", "'timestamp'", "line 60002", "'soon'")


def test_too_few_users_or_items_names_the_filter(tmp_path):
    path = write(tmp_path / "log.csv", log_text())
    data_error(lambda: load_dataset(path, preprocessing=Preprocessing(min_rating=6)),
               "log.csv", "'min rating >= 6'", "at least 2")
    data_error(lambda: load_dataset(path, preprocessing=Preprocessing(min_seq_len=4)),
               "log.csv", "'min sequence length 4'")
    one_user = write(tmp_path / "one.csv", "user_id,item_id\nu,a\nu,b\nu,c\n")
    data_error(lambda: load_dataset(one_user), "one.csv", "log itself")


def test_catalog_matching_no_items(tmp_path):
    path = write(tmp_path / "log.csv", log_text())
    items = write(tmp_path / "items.csv", "item_id,title\n101,X\n102,Y\n")
    data_error(lambda: load_dataset(path, items=items), "items.csv", "log.csv", "'101'", "'i1'")


def test_min_rating_needs_a_rating_column(tmp_path):
    path = write(tmp_path / "plain.csv", "user,item\n" + "".join(f"{u},{i}\n" for u, i, _, _ in LOG_ROWS))
    data_error(lambda: load_dataset(path, preprocessing=Preprocessing(min_rating=4)), "plain.csv", "rating column")


def test_a_few_malformed_rows_are_skipped_many_are_refused(tmp_path):
    rows = [("u" + str(n % 5), "i" + str(n % 11), 1, n) for n in range(300)]
    lines = log_text(rows=rows).splitlines()
    lines.insert(50, "u1,i1,1,2,extra")
    path = write(tmp_path / "few.csv", "\n".join(lines) + "\n")
    dataset = load_dataset(path)
    assert dataset.report[0]["skipped_rows"] == 1 and dataset.report[0]["rows"] == 300
    stats = subprocess.run([sys.executable, "-m", "sasrec", "stats", str(path)], cwd=ROOT, capture_output=True,
                           text=True, check=True)
    assert "(1 malformed rows skipped)" in next(line for line in stats.stdout.splitlines() if line.startswith("read "))
    bad = write(tmp_path / "many.csv", log_text() + "a,i1\nb,i2,3,4,5\n")
    data_error(lambda: load_dataset(bad), "many.csv", "2 of 11", "'a,i1'", "line 11")


def test_missing_file_and_unreadable_json(tmp_path):
    data_error(lambda: read_log(tmp_path / "nope.csv"), "nope.csv", "no such file")
    data_error(lambda: read_log(write(tmp_path / "bad.jsonl", '{"user": 1\n{"user": 2}\n')), "bad.jsonl", "JSON")
    data_error(lambda: read_log(write(tmp_path / "notjson.json", "user,item\n1,2\n")), "notjson.json", "JSON")


def test_headerless_numbers_are_read_by_position(tmp_path):
    path = write(tmp_path / "u.csv", "1,2,3\n4,5,6\n")
    raw = read_log(path)
    assert raw.header is False and list(raw.events.columns) == ["column 1", "column 2", "column 3"]
    assert raw.roles == Columns("column 1", "column 2", None, "column 3") and len(raw.events) == 2


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    dataset = load_dataset(write(tmp_path / "log.csv", log_text()))
    dataset.save(tmp_path / "out")
    dataset.save(tmp_path / "out")  # overwriting works too
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["interactions.parquet", "items.parquet", "meta.json"]
    assert isinstance(dataset, Dataset) and "3 users" in repr(dataset)
