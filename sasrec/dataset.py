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
import pyarrow.parquet as pq

from .files import atomic_write
from .readers import (
    RATING_NAMES,
    Columns,
    DataError,
    _normalise_ids,
    _standard_catalog,
    detect_roles,
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
        typical = np.median(np.abs(raw[~missing])) if (~missing).any() else 0
        # Epoch seconds stay below 1e11 until the year 5138; anything bigger is a finer unit.
        unit, per_second = next(((unit, scale) for limit, unit, scale in
                                 ((1e17, "epoch ns", 10 ** 9), (1e14, "epoch us", 10 ** 6), (1e11, "epoch ms", 10 ** 3))
                                 if typical > limit), ("epoch s", 1))
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


def _record(report: list, step: str, log: pd.DataFrame, **extra) -> None:
    report.append({"step": step, "rows": len(log), "users": int(log["user"].nunique()),
                   "items": int(log["item"].nunique()), **extra})


def _check_enough(report: list, source: str) -> None:
    last = report[-1]
    if last["users"] >= 2 and last["items"] >= 2:
        return
    culprit = next(step for step in report if step["users"] < 2 or step["items"] < 2)
    trail = " -> ".join(f"{s['step']}: {s['rows']} rows, {s['users']} users, {s['items']} items" for s in report)
    cause = ("the log itself has too few" if culprit["step"] == "read"
             else f"the step {culprit['step']!r} removed the rest; relax it")
    raise DataError(f"{source}: {last['users']} user(s) and {last['items']} item(s) are left, but at least 2 of each "
                    f"are needed: {cause} ({trail})")


def _time_order(log: pd.DataFrame) -> np.ndarray:
    """Stable sort by (user, time): two stable passes, so file order breaks ties (and is all there is without times)."""
    order = np.argsort(log["key"].to_numpy(), kind="stable") if "key" in log else np.arange(len(log))
    return order[np.argsort(log["user"].to_numpy()[order], kind="stable")]


def build_dataset(events: pd.DataFrame, roles: Columns, catalog: pd.DataFrame | None = None,
                  preprocessing: Preprocessing = Preprocessing(), source: str = "") -> Dataset:
    """Clean a raw table into sequences: drop missing ids -> min rating -> drop duplicates -> order by time ->
    collapse repeats -> k-core -> min sequence length, recording each step's effect in `report`."""
    source = source or events.attrs.get("source") or "the log"
    first_line = events.attrs.get("first_line")
    columns = [str(c) for c in events.columns]
    for role, column in (("user", roles.user), ("item", roles.item), ("timestamp", roles.timestamp), ("rating", roles.rating)):
        if column is not None and column not in events.columns:
            raise DataError(f"{source}: the {role} column {column!r} is not in the table; columns are {columns}")
    if roles.user == roles.item:
        raise DataError(f"{source}: column {roles.user!r} cannot be both the user and the item column")

    users, items = _normalise_ids(events[roles.user]), _normalise_ids(events[roles.item])
    for role, column, ids in (("user", roles.user, users), ("item", roles.item, items)):
        if ids.isna().all():
            raise DataError(f"{source}: the {role} column {column!r} has no ids: all {len(ids)} values are missing")
    # Sorted factorisation: the same cleaned data always gets the same internal ids.
    user_codes, user_names = pd.factorize(users, sort=True)
    item_codes, item_names = pd.factorize(items, sort=True)
    log = pd.DataFrame({"user": user_codes, "item": item_codes})

    read_step = {"step": "read", "rows": len(log), "users": len(user_names), "items": len(item_names),
                 "skipped_rows": int(events.attrs.get("skipped_rows", 0))}
    if roles.timestamp is not None:
        key, seconds, missing, unit = _parse_timestamps(events[roles.timestamp], source, roles.timestamp, first_line)
        if missing.all():
            raise DataError(f"{source}: the timestamp column {roles.timestamp!r} has no values; "
                            "choose another column, or none to keep file order")
        log["key"], log["seconds"], log["has_time"] = key, seconds, ~missing
        read_step["timestamps"] = unit
    if preprocessing.min_rating is not None:
        if roles.rating is None:
            raise DataError(f"{source}: min_rating >= {preprocessing.min_rating:g} needs a rating column, but there is "
                            f"none (columns are {columns}; recognised names: {', '.join(RATING_NAMES)})")
        log["rating"] = _parse_ratings(events[roles.rating], source, roles.rating, first_line)
    report = [read_step]

    log = log[(log["user"] >= 0) & (log["item"] >= 0)]
    _record(report, "drop missing ids", log)
    if "has_time" in log:
        log = log[log["has_time"]]
        _record(report, "drop missing timestamps", log)
    if preprocessing.min_rating is not None:
        log = log[log["rating"] >= preprocessing.min_rating]
        _record(report, f"min rating >= {preprocessing.min_rating:g}", log)
    if preprocessing.drop_duplicates:
        if "key" in log:
            log = log[~log.duplicated(["user", "item", "key"])]
            _record(report, "drop duplicates", log)
        else:  # without times, a repeated (user, item) may be a genuine re-consumption: keep it
            _record(report, "drop duplicates", log, note="no timestamps: nothing is an exact duplicate")
    log = log.iloc[_time_order(log)]
    if preprocessing.collapse_repeats:
        user, item = log["user"].to_numpy(), log["item"].to_numpy()
        repeat = np.r_[False, (user[1:] == user[:-1]) & (item[1:] == item[:-1])]
        log = log[~repeat]
        _record(report, "collapse repeats", log)
    if preprocessing.k_core > 1:
        k, passes = preprocessing.k_core, 0
        while len(log):  # removing users can drop items below k and vice versa: repeat until nothing changes
            user, item = log["user"].to_numpy(), log["item"].to_numpy()
            keep = (np.bincount(user)[user] >= k) & (np.bincount(item)[item] >= k)
            if keep.all():
                break
            log, passes = log[keep], passes + 1
        _record(report, f"k-core {k}", log, passes=passes)
    if preprocessing.min_seq_len > 1:
        user = log["user"].to_numpy()
        log = log[np.bincount(user)[user] >= preprocessing.min_seq_len] if len(log) else log
        _record(report, f"min sequence length {preprocessing.min_seq_len}", log)
    _check_enough(report, source)

    # Renumber what is left: users 0..U-1 and items 1..N, both still in sorted order of the original id.
    kept_users, user_index = np.unique(log["user"].to_numpy(), return_inverse=True)
    kept_items, item_index = np.unique(log["item"].to_numpy(), return_inverse=True)
    user_ids = np.asarray(user_names, dtype=object)[kept_users]
    item_ids = np.concatenate([np.array([""], dtype=object), np.asarray(item_names, dtype=object)[kept_items]])
    offsets = np.zeros(len(kept_users) + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_index, minlength=len(kept_users)), out=offsets[1:])
    return Dataset(
        user_ids=user_ids, item_ids=item_ids, offsets=offsets, items=(item_index + 1).astype(np.int32),
        timestamps=log["seconds"].to_numpy(dtype=np.int64) if "seconds" in log else None,
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
    """read_log + the catalog (`items` if given, else the log's own) + roles (explicit > format's > detected)
    + build_dataset."""
    raw = read_log(path)
    catalog = read_catalog(items) if items else raw.catalog
    roles = roles or raw.roles or detect_roles(raw.events, raw.source)
    return build_dataset(raw.events, roles, catalog, preprocessing, raw.source)
