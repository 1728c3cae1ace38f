"""A cleaned interaction log: every user's items, time-ordered, in one flat array.

build_dataset() cleans a table read by readers.py into a Dataset, where every user's items
sit in one flat CSR array with internal item ids 1..N (0 is padding); each cleaning step's
effect is recorded. load_dataset() reads and cleans in one call. Where the sequences are
cut for training and evaluation is sequences.py's business.
"""

import json
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .files import atomic_write
from .readers import (
    RATING_NAMES,
    Columns,
    DataError,
    _memory_errors_as_data_errors,
    _normalise_ids,
    _standard_catalog,
    read_catalog,
    read_log,
)


@dataclass(frozen=True)
class Preprocessing:
    min_rating: float | None = None   # keep rows with rating >= this (needs a rating column)
    drop_duplicates: bool = True      # drop exact duplicate events (same user, item, timestamp)
    collapse_repeats: bool = False    # collapse consecutive repeats of the same item within a user's sequence
    k_core: int = 0                   # iterative k-core: until every user and item has >= k events (0/1 = off)
    min_seq_len: int = 3              # drop users with fewer events (3 = enough for leave-one-out)

    def __post_init__(self):
        if self.k_core < 0 or self.min_seq_len < 0:
            raise DataError(f"preprocessing: k_core and min_seq_len must be >= 0, got {self.k_core} and {self.min_seq_len}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise DataError(f"preprocessing: unknown settings {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        return cls(**d)


@dataclass(eq=False)
class Dataset:
    user_ids: np.ndarray      # (num_users,) original user ids as str; internal user u is index u
    item_ids: np.ndarray      # (num_items + 1,) original item ids as str; [0] = "" is padding
    offsets: np.ndarray       # (num_users + 1,) int64 CSR offsets into `items`
    items: np.ndarray         # (num_events,) int32 internal item ids, grouped by user, time-ordered within user
    timestamps: np.ndarray | None   # (num_events,) int64 epoch seconds aligned with `items`, None if the log had none
    catalog: pd.DataFrame     # one row per internal item 1..N (the index): item_id, title, category, genres, ...
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    report: list[dict] = field(default_factory=list)  # each step's effect: {"step", "rows", "users", "items", ...}
    source: str = ""

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids) - 1

    @property
    def num_events(self) -> int:
        return len(self.items)

    def __repr__(self):
        return f"Dataset({self.source!r}: {self.num_users} users, {self.num_items} items, {self.num_events} events)"

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user]:self.offsets[user + 1]]

    def to_internal(self, original_item_ids) -> np.ndarray:
        """Original item ids (one or many, str or int) -> internal ids 1..N."""
        wanted = _normalise_ids(pd.Series(np.atleast_1d(original_item_ids)))
        positions = pd.Index(self.item_ids[1:]).get_indexer(wanted.to_numpy(dtype=object))
        unknown = wanted[positions < 0]
        if len(unknown):
            raise DataError(f"{self.source}: unknown item ids {list(unknown[:5].astype(object))}"
                            f"{f' and {len(unknown) - 5} more' if len(unknown) > 5 else ''}; "
                            f"the dataset has {self.num_items} items, e.g. {list(self.item_ids[1:4])}")
        return (positions + 1).astype(np.int64)

    def user_index(self, original_user_id) -> int:
        wanted = _normalise_ids(pd.Series([original_user_id])).iloc[0]
        position = pd.Index(self.user_ids).get_indexer([wanted])[0]
        if position < 0:
            raise DataError(f"{self.source}: unknown user id {original_user_id!r}; "
                            f"the dataset has {self.num_users} users, e.g. {list(self.user_ids[:3])}")
        return int(position)

    def stats(self) -> dict:
        lengths = np.diff(self.offsets)
        p25, median, p75, p90, p99 = np.percentile(lengths, [25, 50, 75, 90, 99]) if len(lengths) else [0.0] * 5
        has_timestamps = self.timestamps is not None and len(self.timestamps) > 0
        iso = lambda seconds: pd.Timestamp(int(seconds), unit="s", tz="UTC").isoformat()
        return {
            "users": self.num_users, "items": self.num_items, "interactions": self.num_events,
            "density": self.num_events / max(self.num_users * self.num_items, 1),
            "seq_len_min": int(lengths.min()) if len(lengths) else 0, "seq_len_p25": float(p25),
            "seq_len_median": float(median), "seq_len_mean": float(lengths.mean()) if len(lengths) else 0.0,
            "seq_len_p75": float(p75), "seq_len_p90": float(p90), "seq_len_p99": float(p99),
            "seq_len_max": int(lengths.max(initial=0)),
            "has_timestamps": bool(has_timestamps),
            "time_min": iso(self.timestamps.min()) if has_timestamps else None,
            "time_max": iso(self.timestamps.max()) if has_timestamps else None,
        }

    def save(self, folder) -> None:
        """folder/interactions.parquet (cleaned, ordered, original ids), items.parquet and meta.json,
        each written atomically; load_dataset(folder) reads it back."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        interactions = pd.DataFrame({
            "user_id": pd.array(np.repeat(self.user_ids, np.diff(self.offsets)), dtype="string"),
            "item_id": pd.array(self.item_ids[self.items], dtype="string")})
        if self.timestamps is not None:
            interactions["timestamp"] = self.timestamps.astype(np.int64)
        catalog = self.catalog.reset_index(drop=True)
        meta = {"source": self.source, "preprocessing": self.preprocessing.to_dict(), "stats": self.stats(),
                "report": self.report}
        atomic_write(folder / "interactions.parquet", lambda tmp: pq.write_table(_to_arrow(interactions), tmp))
        atomic_write(folder / "items.parquet", lambda tmp: pq.write_table(_to_arrow(catalog), tmp))
        atomic_write(folder / "meta.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1, default=str)))


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # an extra catalog column mixing types: keep it as text
        mixed = frame.select_dtypes(include="object").columns
        return pa.Table.from_pandas(frame.astype({c: "string" for c in mixed}), preserve_index=False)


def _where(rows: np.ndarray, first_line: int | None) -> list[str]:
    """Row positions as the user would find them: file lines for text formats, 1-based rows otherwise."""
    return [f"line {r + first_line}" if first_line else f"row {r + 1}" for r in rows]


def _parse_timestamps(values: pd.Series, source: str, column: str, first_line: int | None):
    """-> (sort key, epoch seconds, missing mask, how the values were read). The key keeps full precision
    (milliseconds, microseconds) so that events within one second still sort right."""
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(f"{source}: column {column!r} holds true/false values, not timestamps; choose another column")
    numbers, text = None, None
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values
    elif not pd.api.types.is_datetime64_any_dtype(values.dtype):
        text = _normalise_ids(values)  # same clean-up: str, stripped, "" missing
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers.notna().sum() * 2 < text.notna().sum():
            numbers = None  # mostly not numbers: they must be dates

    if numbers is not None:
        failed = (numbers.isna() & text.notna()).to_numpy() if text is not None else np.zeros(len(numbers), bool)
        if failed.any():
            rows = np.flatnonzero(failed)[:3]
            examples = ", ".join(f"{where} {text.iloc[r]!r}" for where, r in zip(_where(rows, first_line), rows))
            raise DataError(f"{source}: column {column!r} should hold timestamps (here epoch numbers), but "
                            f"{failed.sum()} of {len(text)} values are not numbers, e.g. {examples}")
        missing = numbers.isna().to_numpy()
        integer = pd.api.types.is_integer_dtype(numbers.dtype)
        raw = numbers.to_numpy(dtype=np.int64 if integer else np.float64, na_value=0)
        if not integer and not np.isfinite(raw).all():
            bad = np.flatnonzero(~np.isfinite(raw))[:3]
            raise DataError(f"{source}: column {column!r} should hold timestamps, but has infinite values at "
                            f"{', '.join(_where(bad, first_line))}")
        present = raw[~missing] if missing.any() else raw
        typical = np.median(np.abs(present[::max(1, len(present) // 100_000)])) if len(present) else 0  # a sample will do
        # Epoch seconds stay below 1e11 until the year 5138; anything bigger is a finer unit.
        unit, per_second = next(((unit, scale) for limit, unit, scale in
                                 ((1e17, "epoch ns", 10 ** 9), (1e14, "epoch us", 10 ** 6), (1e11, "epoch ms", 10 ** 3))
                                 if typical > limit), ("epoch s", 1))
        if integer and per_second == 1:
            return raw, raw, missing, unit  # epoch seconds are their own sort key
        seconds = raw // per_second if integer else np.floor(raw / per_second)
        return raw, seconds.astype(np.int64), missing, unit

    if text is None:
        dates = pd.to_datetime(values, utc=True)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format": the mixed retry handles it
            dates = pd.to_datetime(text, utc=True, errors="coerce")
            failed = (dates.isna() & text.notna()).to_numpy()
            if failed.any():  # several formats in one column: parse the stragglers one by one
                dates[failed] = pd.to_datetime(text[failed], utc=True, errors="coerce", format="mixed")
        failed = (dates.isna() & text.notna()).to_numpy()
        if failed.any():
            rows = np.flatnonzero(failed)[:3]
            examples = ", ".join(f"{where} {text.iloc[r]!r}" for where, r in zip(_where(rows, first_line), rows))
            raise DataError(f"{source}: column {column!r} should hold timestamps (epoch seconds or milliseconds, or "
                            f"dates like 2024-01-31 or 2024-01-31T12:00:00), but {failed.sum()} of {len(text)} values "
                            f"cannot be read, e.g. {examples}")
    micros = dates.dt.tz_convert(None).dt.as_unit("us").to_numpy().view(np.int64)
    return micros, micros // 10 ** 6, dates.isna().to_numpy(), "dates"


def _parse_ratings(values: pd.Series, source: str, column: str, first_line: int | None) -> np.ndarray:
    text = values if pd.api.types.is_numeric_dtype(values.dtype) else _normalise_ids(values)
    numbers = pd.to_numeric(text, errors="coerce")
    failed = (numbers.isna() & text.notna()).to_numpy()
    if failed.any():
        rows = np.flatnonzero(failed)[:3]
        examples = ", ".join(f"{where} {text.iloc[r]!r}" for where, r in zip(_where(rows, first_line), rows))
        raise DataError(f"{source}: column {column!r} should hold numeric ratings, but {failed.sum()} values are not "
                        f"numbers, e.g. {examples}")
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def _factorize_ids(values: pd.Series, source: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """-> (codes, names): the distinct ids, normalised as _normalise_ids does and sorted, so that the same
    cleaned data always gets the same internal ids; each row's code indexes them, -1 where the id is missing.
    Rows are hashed once by pyarrow; the clean-up and the sort touch each distinct id once."""
    try:
        array = pa.Table.from_pandas(values.to_frame("ids"), preserve_index=False).column("ids")
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # python objects of mixed types (JSON): pandas hashes them
        array = None
    if array is not None and pa.types.is_nested(array.type):
        raise DataError(f"{source}: column {column!r} holds {array.type} values (lists or records), but an id column "
                        "needs one id per row; choose another column")
    if array is None:
        codes, distinct = pd.factorize(_normalise_ids(values), use_na_sentinel=True)
    else:
        encoded = pc.dictionary_encode(array)  # the chunks share one dictionary
        distinct = (encoded.chunks[-1].dictionary if encoded.num_chunks else pa.array([], array.type)).to_pandas()
        codes = np.concatenate([chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False) for chunk in encoded.chunks]
                               or [np.zeros(0, np.int32)])
    distinct_codes, names = pd.factorize(_normalise_ids(pd.Series(distinct)), sort=True, use_na_sentinel=True)
    codes = np.append(distinct_codes.astype(np.int32), -1)[codes]  # a missing id's -1 picks the appended -1
    return codes, np.asarray(names, dtype=object)


def _record(report: list, step: str, log: dict, **extra) -> None:
    """Append a step's effect: rows, users and items left (the same as before if it dropped nothing)."""
    previous = report[-1]
    if len(log["user"]) == previous["rows"]:
        counts = {key: previous[key] for key in ("rows", "users", "items")}
    else:
        counts = {"rows": len(log["user"])} | {f"{role}s": int(np.count_nonzero(np.bincount(log[role], minlength=1)))
                                                for role in ("user", "item")}
    report.append({"step": step, **counts, **extra})


def _check_enough(report: list, source: str) -> None:
    last = report[-1]
    if last["users"] >= 2 and last["items"] >= 2:
        return
    culprit = next(step for step in report if step["users"] < 2 or step["items"] < 2)
    trail = " -> ".join(f"{s['step']}: {s['rows']:,} rows, {s['users']:,} users, {s['items']:,} items" for s in report)
    cause = ("the log itself has too few" if culprit["step"] == "read"
             else f"the step {culprit['step']!r} removed the rest; relax it")
    raise DataError(f"{source}: {last['users']:,} user(s) and {last['items']:,} item(s) are left, but at least 2 of each "
                    f"are needed: {cause} ({trail})")


def _same_as_previous(*columns: np.ndarray) -> np.ndarray:
    """Whether each row equals the row before it in all these columns (the first row does not)."""
    same = np.zeros(len(columns[0]), dtype=bool)
    same[1:] = np.logical_and.reduce([column[1:] == column[:-1] for column in columns])
    return same


def _time_order(user: np.ndarray, key: np.ndarray | None) -> np.ndarray:
    """Order by (user, time), file order breaking ties (and all there is without times). One unstable sort
    of a combined key, then the tied rows alone put back in file order: much faster than stable sorts."""
    if key is None:
        key = np.arange(len(user))
    if len(user) == 0:
        return np.zeros(0, dtype=np.int64)
    low, high = int(key.min()), int(key.max())
    if key.dtype.kind == "f" or (int(user.max()) + 1) * (high - low + 1) >= 2 ** 63:
        key = np.unique(key, return_inverse=True)[1]  # ranks: small enough to combine with the user
        low, high = 0, int(key.max())
    combined = user.astype(np.int64)  # user * span + (key - low), in place: three fewer arrays of the log's length
    combined *= high - low + 1
    combined -= low  # before adding the key, so that no step leaves the int64 range
    combined += key
    order = np.argsort(combined)
    tied = _same_as_previous(combined[order])
    if tied.any():
        rows = np.flatnonzero(tied | np.r_[tied[1:], False])
        runs = np.cumsum(~tied[rows])  # each run starts with an untied row
        order[rows] = order[rows][np.lexsort((order[rows], runs))]
    return order


def _repeated_events(user: np.ndarray, item: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Rows (in time order) that repeat an earlier row's user, item and time exactly. Such repeats lie
    among the runs of rows of one user at one time, so only those runs are searched."""
    same_time = _same_as_previous(user, key)
    repeated = np.zeros(len(user), dtype=bool)
    if same_time.any():
        rows = np.flatnonzero(same_time | np.r_[same_time[1:], False])
        runs = np.cumsum(~same_time[rows])  # each run starts with a row unlike the one before
        _, first = np.unique(runs * (int(item.max()) + 1) + item[rows], return_index=True)  # first in file order
        repeated[rows] = True
        repeated[rows[first]] = False
    return repeated


@_memory_errors_as_data_errors(lambda arguments: arguments["source"] or arguments["events"].attrs.get("source") or "the log")
def build_dataset(events: pd.DataFrame, roles: Columns, catalog: pd.DataFrame | None = None,
                  preprocessing: Preprocessing = Preprocessing(), source: str = "", how: dict | None = None) -> Dataset:
    """Clean a raw table into sequences: drop missing ids -> min rating -> drop duplicates -> order by time ->
    collapse repeats -> k-core -> min sequence length, recording each step's effect in `report`. The read
    step records the column of each role and, if given, `how` it was found (readers.FoundRoles.how)."""
    source = source or events.attrs.get("source") or "the log"
    first_line = events.attrs.get("first_line")
    columns = [str(c) for c in events.columns]
    for role, column in (("user", roles.user), ("item", roles.item), ("timestamp", roles.timestamp), ("rating", roles.rating)):
        if column is not None and column not in events.columns:
            raise DataError(f"{source}: the {role} column {column!r} is not in the table; columns are {columns}")
    if roles.user == roles.item:
        raise DataError(f"{source}: column {roles.user!r} cannot be both the user and the item column")

    user_codes, user_names = _factorize_ids(events[roles.user], source, roles.user)
    item_codes, item_names = _factorize_ids(events[roles.item], source, roles.item)
    for role, column, codes in (("user", roles.user, user_codes), ("item", roles.item, item_codes)):
        if (codes < 0).all():
            raise DataError(f"{source}: the {role} column {column!r} has no ids: all {len(codes)} values are missing")
    # One row per event, in parallel arrays that each step filters together.
    log = {"user": user_codes, "item": item_codes}

    read_step = {"step": "read", "rows": len(user_codes), "users": len(user_names), "items": len(item_names),
                 "skipped_rows": int(events.attrs.get("skipped_rows", 0)),
                 "roles": {role: {"column": column} | ({"how": how[role]} if how and role in how else {})
                           for role, column in asdict(roles).items() if column is not None}}
    has_time = rating = None
    if roles.timestamp is not None:
        log["key"], seconds, missing, unit = _parse_timestamps(events[roles.timestamp], source, roles.timestamp, first_line)
        if seconds is not log["key"]:  # finer than seconds: the key sorts, the seconds are kept
            log["seconds"] = seconds
        if missing.all():
            raise DataError(f"{source}: the timestamp column {roles.timestamp!r} has no values; "
                            "choose another column, or none to keep file order")
        has_time, read_step["timestamps"] = ~missing, unit
    if preprocessing.min_rating is not None:
        if roles.rating is None:
            raise DataError(f"{source}: min_rating >= {preprocessing.min_rating:g} needs a rating column, but there is "
                            f"none (columns are {columns}; recognised names: {', '.join(RATING_NAMES)})")
        rating = _parse_ratings(events[roles.rating], source, roles.rating, first_line)
    report = [read_step]

    def keep(rows: np.ndarray, step: str | None = None, **extra) -> None:
        """Keep the rows a mask or an order picks; record the step, if it is one."""
        nonlocal log
        if rows.dtype != bool or not rows.all():
            log = {name: values[rows] for name, values in log.items()}
        if step:
            _record(report, step, log, **extra)

    kept = (user_codes >= 0) & (item_codes >= 0)  # the rows of `events` still in `log`
    keep(kept, "drop missing ids")
    if has_time is not None:
        keep(has_time[kept], "drop missing timestamps")
        kept &= has_time
    if rating is not None:
        keep(rating[kept] >= preprocessing.min_rating, f"min rating >= {preprocessing.min_rating:g}")
    keep(_time_order(log["user"], log.get("key")))
    if preprocessing.drop_duplicates:
        if "key" in log:
            keep(~_repeated_events(log["user"], log["item"], log["key"]), "drop duplicates")
        else:  # without times, a repeated (user, item) may be a genuine re-consumption: keep it
            _record(report, "drop duplicates", log, note="no timestamps: nothing is an exact duplicate")
    if preprocessing.collapse_repeats:
        keep(~_same_as_previous(log["user"], log["item"]), "collapse repeats")
    if preprocessing.k_core > 1:
        k, passes = preprocessing.k_core, 0
        while len(log["user"]):  # removing users can drop items below k and vice versa: repeat until nothing changes
            user, item = log["user"], log["item"]
            enough = (np.bincount(user)[user] >= k) & (np.bincount(item)[item] >= k)
            if enough.all():
                break
            keep(enough)
            passes += 1
        _record(report, f"k-core {k}", log, passes=passes)
    if preprocessing.min_seq_len > 1:
        user = log["user"]
        keep(np.bincount(user, minlength=1)[user] >= preprocessing.min_seq_len, f"min sequence length {preprocessing.min_seq_len}")
    _check_enough(report, source)

    # Renumber what is left: users 0..U-1 and items 1..N, both still in sorted order of the original id.
    # The log is ordered by user code, so each user's events are contiguous and in time order.
    user, item = log["user"], log["item"]
    events_per_user = np.bincount(user, minlength=len(user_names))
    kept_users = np.flatnonzero(events_per_user)
    kept_items = np.flatnonzero(np.bincount(item, minlength=len(item_names)))
    new_item = np.zeros(len(item_names), dtype=np.int32)
    new_item[kept_items] = np.arange(1, len(kept_items) + 1)
    item_ids = np.concatenate([np.array([""], dtype=object), item_names[kept_items]])
    offsets = np.zeros(len(kept_users) + 1, dtype=np.int64)
    np.cumsum(events_per_user[kept_users], out=offsets[1:])
    return Dataset(
        user_ids=user_names[kept_users], item_ids=item_ids, offsets=offsets, items=new_item[item],
        timestamps=log.get("seconds", log.get("key")),
        catalog=_join_catalog(item_ids, catalog, source), preprocessing=preprocessing, report=report, source=source)


def _join_catalog(item_ids: np.ndarray, catalog: pd.DataFrame | None, source: str) -> pd.DataFrame:
    """One row per internal item 1..N; items the catalog lacks are titled by their id."""
    frame = pd.DataFrame({"item_id": pd.array(item_ids[1:], dtype="string")},
                         index=pd.RangeIndex(1, len(item_ids), name="item"))
    if catalog is None:
        frame["title"] = frame["item_id"]
        frame["category"] = frame["genres"] = pd.array([pd.NA] * len(frame), dtype="string")
        return frame
    catalog_source = catalog.attrs.get("source") or "the catalog"
    info = _standard_catalog(catalog, catalog_source).set_index("item_id")
    if not frame["item_id"].isin(info.index).any():
        raise DataError(f"{catalog_source}: none of the catalog's item ids match the items of {source}: the catalog has "
                        f"{list(info.index[:3].astype(object))}, the log has {list(item_ids[1:4])}")
    joined = info.reindex(frame["item_id"].to_numpy())
    joined.index = frame.index
    frame = pd.concat([frame, joined], axis=1)
    frame["title"] = frame["title"].fillna(frame["item_id"])
    return frame


def load_dataset(path, items=None, roles: Columns | None = None, preprocessing: Preprocessing = Preprocessing()) -> Dataset:
    """read_log + the catalog (`items` if given, else the log's own) + roles (given, else as the format fixes
    them, else found by name and content: readers.guess_roles) + build_dataset."""
    raw = read_log(path)
    catalog = read_catalog(items) if items else raw.catalog
    if roles is None:
        found = raw.found_roles
        roles, how = found.require(raw.source), found.how
    else:
        how = dict.fromkeys(("user", "item", "timestamp", "rating"), "given")
    return build_dataset(raw.events, roles, catalog, preprocessing, raw.source, how)
