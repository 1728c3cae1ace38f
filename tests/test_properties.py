"""Properties of reading and cleaning, checked on logs hypothesis makes up: ids come back as they
were written, no row is lost but those the options drop (and the report counts those), and a
user's events keep their time order, file order breaking ties."""

import csv
import io
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sasrec.dataset import Preprocessing, build_dataset, load_dataset
from sasrec.readers import Columns, DataError, read_log

EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Ids as people write them: any printable text (commas, quotes, unicode), leading zeros, more digits than
# an int64 holds. Surrounding spaces are not part of an id (they are stripped), and text holds no control
# characters (a file with them is refused as binary).
printable = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=12)
awkward_ids = st.one_of(
    printable.map(str.strip).filter(bool),
    st.from_regex(r"0[0-9]{1,6}", fullmatch=True),
    st.integers(10 ** 18, 10 ** 40).map(str),
    st.sampled_from(["a,b", 'say "hi"', '"', ",", "'", "NA", "null", "None", "nan", "-", "1.0", "1e5", "caf\u00e9",
                     "\u6f22\u5b57", "\U0001f600", "a;b|c"]),
)


def write_csv(rows: list[tuple], header: tuple) -> Path:
    """The rows as a CSV file, quoted as Python's csv module (and Excel) quotes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = Path(tempfile.mkdtemp()) / "log.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def sequences(dataset) -> dict:
    return {user: list(dataset.item_ids[dataset.sequence(u)]) for u, user in enumerate(dataset.user_ids)}


@EXAMPLES
@given(st.lists(st.tuples(awkward_ids, awkward_ids), min_size=2, max_size=40).filter(
    lambda rows: len({u for u, _ in rows}) >= 2 and len({i for _, i in rows}) >= 2))
def test_ids_round_trip_through_a_csv_file_and_a_saved_dataset(rows):
    path = write_csv(rows, ("user_id", "item_id"))
    keep_all = Preprocessing(drop_duplicates=False, min_seq_len=0)
    dataset = load_dataset(path, preprocessing=keep_all)
    expected = {}
    for user, item in rows:  # without timestamps, file order is time order
        expected.setdefault(user, []).append(item)
    assert sequences(dataset) == expected
    assert list(dataset.item_ids[dataset.to_internal(dataset.item_ids[1:])]) == list(dataset.item_ids[1:])
    assert [dataset.user_index(user) for user in dataset.user_ids] == list(range(dataset.num_users))

    dataset.save(path.parent / "saved")
    again = load_dataset(path.parent / "saved", preprocessing=keep_all)
    assert sequences(again) == expected and list(again.item_ids) == list(dataset.item_ids)


@st.composite
def raw_logs(draw):
    """Events with missing ids and times, duplicates, ties and ratings; and the options to clean them with."""
    size = draw(st.integers(1, 60))
    maybe = lambda values: st.one_of(st.none(), values) if draw(st.booleans()) else values
    users = draw(st.lists(maybe(st.sampled_from("abcdef")), min_size=size, max_size=size))
    items = draw(st.lists(maybe(st.sampled_from(["x", "y", "z", "w", "v"])), min_size=size, max_size=size))
    times = draw(st.lists(maybe(st.integers(0, 5)), min_size=size, max_size=size))
    ratings = draw(st.lists(st.integers(1, 5), min_size=size, max_size=size))
    rows = list(zip(users, items, times, ratings))
    rows += draw(st.lists(st.sampled_from(rows), max_size=10))  # exact duplicates
    options = Preprocessing(min_rating=draw(st.sampled_from([None, 3])), drop_duplicates=draw(st.booleans()),
                            collapse_repeats=draw(st.booleans()), k_core=draw(st.sampled_from([0, 2])),
                            min_seq_len=draw(st.sampled_from([0, 2, 3])))
    return rows, options


def reference_cleaning(rows: list[tuple], options: Preprocessing) -> tuple[list[tuple], dict]:
    """The obvious, slow rules, one at a time: -> (kept (user, item, time) in dataset order, rows dropped by step)."""
    dropped = Counter()

    def apply(step, kept_rows):
        nonlocal rows
        dropped[step] += len(rows) - len(kept_rows)
        rows = kept_rows

    apply("drop missing ids", [r for r in rows if r[0] is not None and r[1] is not None])
    apply("drop missing timestamps", [r for r in rows if r[2] is not None])
    if options.min_rating is not None:
        apply(f"min rating >= {options.min_rating:g}", [r for r in rows if r[3] >= options.min_rating])
    if options.drop_duplicates:
        seen = set()
        apply("drop duplicates", [r for r in rows if r[:3] not in seen and not seen.add(r[:3])])
    rows = sorted(rows, key=lambda r: (r[0], r[2]))  # Python's sort is stable: file order breaks ties
    if options.collapse_repeats:
        apply("collapse repeats", [r for n, r in enumerate(rows) if n == 0 or r[:2] != rows[n - 1][:2]])
    if options.k_core > 1:
        while True:
            users, items = Counter(r[0] for r in rows), Counter(r[1] for r in rows)
            kept = [r for r in rows if users[r[0]] >= options.k_core and items[r[1]] >= options.k_core]
            if len(kept) == len(rows):
                break
            apply(f"k-core {options.k_core}", kept)
    if options.min_seq_len > 1:
        lengths = Counter(r[0] for r in rows)
        apply(f"min sequence length {options.min_seq_len}", [r for r in rows if lengths[r[0]] >= options.min_seq_len])
    return [r[:3] for r in rows], {step: count for step, count in dropped.items() if count}


@EXAMPLES
@given(raw_logs())
def test_no_row_is_lost_but_those_the_options_drop_and_the_report_counts_them(log):
    rows, options = log
    events = pd.DataFrame(rows, columns=["user", "item", "time", "rating"], dtype=object)
    kept, dropped_by_step = reference_cleaning(rows, options)
    roles = Columns("user", "item", "time", "rating")
    if all(r[0] is None for r in rows) or all(r[1] is None for r in rows) or all(r[2] is None for r in rows):
        with pytest.raises(DataError, match="has no"):
            build_dataset(events, roles, preprocessing=options)
        return
    if len({r[0] for r in kept}) < 2 or len({r[1] for r in kept}) < 2:
        with pytest.raises(DataError, match="at least 2 of each"):
            build_dataset(events, roles, preprocessing=options)
        return
    dataset = build_dataset(events, roles, preprocessing=options)
    report = dataset.report
    assert report[0]["rows"] == len(rows) and report[-1]["rows"] == dataset.num_events == len(kept)
    counted = {step["step"]: previous["rows"] - step["rows"] for previous, step in zip(report, report[1:])
               if previous["rows"] != step["rows"]}
    assert counted == dropped_by_step
    found = [(user, item, int(time)) for u, user in enumerate(dataset.user_ids)
             for item, time in zip(dataset.item_ids[dataset.sequence(u)],
                                   dataset.timestamps[dataset.offsets[u]:dataset.offsets[u + 1]])]
    assert found == kept  # the same rows, in the same order: by user, then time, then file order


@EXAMPLES
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 50), st.integers(0, 3)), min_size=4, max_size=80),
       st.sampled_from(["epoch", "dates"]))
def test_a_users_order_is_by_time_then_file_order_through_a_file(rows, unit):
    """Through reading, with many ties: numbers or dates as they come in a file."""
    rows = [(user, f"i{item}", time) for user, item, time in rows]
    if len({u for u, _, _ in rows}) < 2 or len({i for _, i, _ in rows}) < 2:
        return
    written = [(u, i, 1_600_000_000 + t if unit == "epoch" else f"2024-01-0{t + 1}") for u, i, t in rows]
    path = write_csv(written, ("user_id", "item_id", "timestamp"))
    dataset = load_dataset(path, preprocessing=Preprocessing(drop_duplicates=False, min_seq_len=0))
    expected = {}
    for user, item, _ in sorted(rows, key=lambda r: (r[0], r[2])):
        expected.setdefault(user, []).append(item)
    assert sequences(dataset) == expected
    assert read_log(path).header is True
    assert np.all(np.diff(dataset.timestamps)[np.diff(np.repeat(np.arange(dataset.num_users),
                                                                np.diff(dataset.offsets))) == 0] >= 0)
