"""Reading interaction logs and item catalogs, in whatever format they come.

read_log() turns a file or folder into a RawLog (the table as read, with original column
names); read_catalog() reads an item catalog into a standard table. Formats are decided by
name and content, never by trusting either alone. Anything a user can get wrong about
their files raises DataError, whose message names the file and the column, says what was
expected and quotes the offending rows. dataset.build_dataset() cleans what is read here.

Nothing here loops over rows in Python: readers are pyarrow's (openpyxl's for Excel),
clean-up is numpy/pandas. Compressed input (gzip, zip) is unpacked up to
MAX_DECOMPRESSED_BYTES, so that a bomb gets a message instead of the memory.
"""

import csv
import functools
import gzip
import io
import json
import re
import warnings
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

# Column names recognised for each role, matched case-insensitively.
USER_NAMES = ("user_id", "userId", "user", "uid", "customer_id", "visitor_id", "session_id")
ITEM_NAMES = ("item_id", "itemId", "item", "movieId", "movie_id", "product_id", "productId", "track_id", "sku", "asin")
TIMESTAMP_NAMES = ("timestamp", "ts", "time", "datetime", "date", "event_time", "created_at")
RATING_NAMES = ("rating", "score", "stars")
TITLE_NAMES = ("title", "movie_title", "name", "item_name", "product_title", "product_name", "track_name")
CATEGORY_NAMES = ("category", "main_category", "genre", "genres", "class", "categories")
# A first row holding any of these is a header, whatever the rows below it look like.
KNOWN_COLUMN_NAMES = {name.lower() for names in (USER_NAMES, ITEM_NAMES, TIMESTAMP_NAMES, RATING_NAMES, TITLE_NAMES,
                                                 CATEGORY_NAMES) for name in names} | {"id"}

# ml-100k's u.item ends in 19 0/1 genre flags, in this order.
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western")
ML_RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
MOVIELENS_LOGS = ("u.data", "ratings.dat", "ratings.csv")

TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".txt", ".dat", ".jsonl", ".ndjson", ".json")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
# Formats holding one plain table, which read_catalog takes as a catalog too.
TABLE_FORMATS = ("csv", "tsv", "parquet", "jsonl", "excel")
DELIMITERS = (",", "\t", ";", "|")  # sniffed, in this order of preference
DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe", " ": "space"}  # those a user may choose
RECBOLE_TYPE = re.compile(r":(token|token_seq|float|float_seq)$")
RECBOLE_ARROW_TYPES = {"token": pa.string(), "token_seq": pa.string(), "float": pa.float64(), "float_seq": pa.string()}
# 'user item item ...' lines: whitespace-separated integers of at most 18 digits (int64 holds them).
SEQUENCE_LINE = re.compile(rb"[ \t]*\d{1,18}(?:[ \t]+\d{1,18})+[ \t]*\r?")
NOT_SEQUENCE_LINE = re.compile(rb"(?m)^(?![ \t]*\d{1,18}(?:[ \t]+\d{1,18})*[ \t]*\r?$)[ \t]*\S.*$")
NUMBER = re.compile(r"[-+]?\d+(\.\d*)?([eE][-+]?\d+)?")
DATE_LIKE = r"\d[-/:.T ]\d"
MULTI_VALUE_SEPARATOR = r"\s*[|;,]\s*"
NO_GENRES = "(no genres listed)"  # MovieLens' own placeholder: means missing
MAX_MALFORMED_FRACTION = 0.01  # skip at most this share of rows with the wrong number of fields
# gzip and zip input is unpacked up to this many bytes: room for real logs, and a bound for a bomb.
MAX_DECOMPRESSED_BYTES = 4 << 30
SNIFF_BYTES = 1 << 16
# pyarrow parses CSV in blocks of this size, in parallel: its 1 MB default costs a 10M-row log about a
# second of system time in memory churn (bench/read_speed.py).
CSV_BLOCK_BYTES = 16 << 20
BINARY_MAGIC = ((b"\x89PNG", "PNG image"), (b"\xff\xd8\xff", "JPEG image"), (b"GIF8", "GIF image"),
                (b"%PDF", "PDF document"), (b"\xd0\xcf\x11\xe0", "legacy Office (.xls) file"),
                (b"SQLite format", "SQLite database"), (b"\x7fELF", "program binary"))
CONTROL_BYTES = bytes(range(0, 9)) + bytes(range(14, 32)) + b"\x7f"
FORMATS_HINT = ("CSV/TSV (with or without a header row), Parquet, JSON Lines, Excel .xlsx, SASRec 'user item' text or "
                "one 'user item item ...' line per user, a RecBole .inter, a MovieLens .zip, a .zip holding one table, "
                "or a dataset folder (interactions.* + items.*)")


class DataError(ValueError):
    """The one exception for bad input. Message names the file and the column, says what was expected,
    and quotes an example of the offending rows (a few rows, short)."""


@dataclass(frozen=True)
class Columns:
    """Which column of a raw table plays which role."""
    user: str
    item: str
    timestamp: str | None = None
    rating: str | None = None


@dataclass
class RawLog:
    events: pd.DataFrame            # the table as read, original column names (RecBole `name:type` stripped)
    catalog: pd.DataFrame | None    # the source's own item catalog, standardised (see read_catalog)
    source: str                     # file name for messages
    format: str                     # one of TABLE_FORMATS, sasrec-txt, user-sequences, recbole, movielens-*, dataset-folder
    roles: Columns | None           # roles fixed by the format or, without a header row, guessed; else None (detect them)
    delimiter: str | None = None    # delimited text: the separator
    header: bool | None = None      # delimited text and Excel: whether the first row names the columns


# -----------------------------------------------------------------------------
# reading

def read_log(path: str | Path, delimiter: str | None = None, header: bool | None = None) -> RawLog:
    """Read an interaction log in any supported format, deciding by name and content. For delimited
    text, `delimiter` and `header` (is the first row column names?) override what is detected."""
    path = Path(path)
    if delimiter is not None and delimiter not in DELIMITER_NAMES:
        raise DataError(f"{path.name}: {delimiter!r} is not a separator I read; choose one of "
                        f"{', '.join(DELIMITER_NAMES.values())}")
    if not path.exists():
        raise DataError(f"{path.name}: no such file or folder")
    if path.is_dir():
        return _read_folder(path)
    if path.name in ("u.data", "ratings.dat"):  # extracted MovieLens: headerless, so the name is all we have
        return _read_movielens(path.parent.name or path.name, _folder_members(path.parent))
    if path.suffix.lower() == ".inter":
        return _read_recbole(path)
    if _head(path, 4) == b"PK\x03\x04":
        return _read_zip(path, delimiter, header)
    events, file_format = _read_table(path, delimiter, header)
    return _table_log(events, path.name, file_format)


def read_catalog(path: str | Path) -> pd.DataFrame:
    """Read an item catalog (any table format, or a MovieLens / RecBole / dataset source that carries one),
    standardised to item_id, title, category, genres, then any other columns."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path.name}: no such file or folder")
    if path.name == "u.item":
        return _ml100k_catalog(_read_bytes(path), path.name)
    if path.name == "movies.dat":
        return _ml1m_catalog(_read_bytes(path), path.name)
    if path.suffix.lower() == ".item":
        return _read_recbole_items(path)
    if path.is_dir() or _head(path, 4) == b"PK\x03\x04" or path.suffix.lower() == ".inter":
        raw = read_log(path)
        if raw.catalog is not None:
            return raw.catalog
        if raw.format in TABLE_FORMATS:  # a workbook, or a zip holding one table
            return _standard_catalog(raw.events, raw.source)
        raise DataError(f"{path.name}: holds no item catalog (expected e.g. items.csv, u.item, movies.csv)")
    frame, _ = _read_table(path)
    return _standard_catalog(frame, path.name)


def _table_log(events: pd.DataFrame, source: str, file_format: str) -> RawLog:
    """A RawLog of one table, with the roles its format fixes (or its column positions suggest)."""
    header = events.attrs.get("header")
    if file_format in ("sasrec-txt", "user-sequences"):
        roles = Columns("user_id", "item_id")
    elif header is False:
        roles = _roles_by_position(events)
    else:
        roles = None
    return RawLog(events, None, source, file_format, roles, events.attrs.get("delimiter"), header)


def _head(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError as err:
        raise DataError(f"{path.name}: cannot be read: {err.strerror}") from err  # err itself holds the full path


def _read_bytes(path: Path, source: str | None = None) -> bytes:
    """The file's bytes, gunzipped if they are gzip (whatever the name says)."""
    source = source or path.name
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{source}: cannot be read: {err.strerror}") from err
    return _gunzip(data, source)


def _too_big(source: str, what: str) -> DataError:
    return DataError(f"{source}: {what} more than {_size(MAX_DECOMPRESSED_BYTES)}, the most read from compressed "
                     "input; this looks like a decompression bomb (or a log too big to read here)")


def _size(size: int) -> str:
    return f"{size / 2**30:,.1f} GB" if size >= 2**30 else f"{size / 2**20:,.1f} MB"


def _gunzip(data: bytes, source: str) -> bytes:
    """Gunzip gzip data, in bounded steps: never more than MAX_DECOMPRESSED_BYTES come out."""
    if data[:2] == b"\x1f\x8b":
        chunks, size = [], 0
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
                while chunk := stream.read(1 << 24):
                    size += len(chunk)
                    if size > MAX_DECOMPRESSED_BYTES:
                        raise _too_big(source, "the gzip data unpacks to")
                    chunks.append(chunk)
        except EOFError as err:
            raise DataError(f"{source}: the gzip data is cut short ({err}); the file is incomplete: "
                            "copy or download it again") from err
        except (OSError, zlib.error) as err:
            raise DataError(f"{source}: looks gzip-compressed but cannot be decompressed: {err}") from err
        data = b"".join(chunks)
    if not data or data.isspace():
        raise DataError(f"{source}: the file is empty ({len(data)} bytes); expected a table such as "
                        "user_id,item_id,timestamp with one event per row")
    return data


def _text_encoding(data: bytes, source: str) -> str:
    """'utf-8', or 'latin-1' for plain 8-bit text (ml-100k's u.item is latin-1); DataError for anything else."""
    head = data[:SNIFF_BYTES]
    for magic, kind in BINARY_MAGIC:
        if head.startswith(magic):
            raise DataError(f"{source}: this is a {kind}, not a table of interactions; expected {FORMATS_HINT}")
    # UTF-16/32 text: a byte-order mark, or (without one) ASCII whose every other byte is NUL.
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or max(head[0::2].count(0), head[1::2].count(0)) > len(head) // 3:
        raise DataError(f"{source}: the text is UTF-16 (or UTF-32), which is not supported; "
                        "save the file as UTF-8 (in Excel: 'CSV UTF-8')")
    control = len(head) - len(head.translate(None, CONTROL_BYTES))
    if control > len(head) / 100:
        raise DataError(f"{source}: binary data ({control} control bytes in the first {len(head)}), not a text table; "
                        f"expected {FORMATS_HINT}")
    nul = data.find(b"\0")
    if nul >= 0:  # text never holds one; pyarrow would keep it inside an id
        line = data.count(b"\n", 0, nul) + 1
        raise DataError(f"{source}: line {line} holds a NUL byte (\\x00), which text never does: the file is damaged, "
                        f"or not text; it reads {data[max(0, nul - 30):nul + 10]!r} there")
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "latin-1"  # no NULs and no control bytes: 8-bit text, and latin-1 decodes any byte


def _read_table(path: Path, delimiter: str | None = None, header: bool | None = None) -> tuple[pd.DataFrame, str]:
    """One file holding one table: Parquet, JSON, SASRec text or delimited text. Returns (table, format)."""
    if _head(path, 4) == b"PAR1":
        return _read_parquet(path, path.name), "parquet"
    return _read_table_data(_read_bytes(path), path.name, _bare_suffix(path) in JSON_SUFFIXES, delimiter, header)


def _read_table_data(data: bytes, source: str, json_expected: bool = False, delimiter: str | None = None,
                     header: bool | None = None) -> tuple[pd.DataFrame, str]:
    if data[:4] == b"PAR1":
        return _read_parquet(pa.BufferReader(data), source), "parquet"
    return _read_text_table(data, source, json_expected, delimiter, header)


def _read_parquet(where, source: str) -> pd.DataFrame:
    try:
        table = pq.read_table(where)
    except (pa.ArrowException, OSError) as err:  # pyarrow's message may hold the server's path: not shown
        raise DataError(f"{source}: not a readable Parquet file (cut short or damaged?): "
                        f"{str(err).replace(str(where), source)}") from err
    frame = table.to_pandas()
    if not isinstance(frame.index, pd.RangeIndex):  # pandas wrote its index as data: it may be the user id
        frame = frame.reset_index()
    return _finish_table(frame, source, first_line=None)


def _read_text_table(data: bytes, source: str, json_expected: bool = False, delimiter: str | None = None,
                     header: bool | None = None) -> tuple[pd.DataFrame, str]:
    encoding = _text_encoding(data, source)
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark, as Excel writes
    start = data[:SNIFF_BYTES].lstrip()[:1]
    if delimiter is None and start in (b"{", b"["):
        return _read_json(data, source, encoding), "jsonl"
    if json_expected and delimiter is None:
        raise DataError(f"{source}: expected JSON Lines (one {{...}} object per line) or a JSON list of records, "
                        f"but the file starts with {data[:SNIFF_BYTES].lstrip()[:40]!r}")
    sample = data[:SNIFF_BYTES]
    lines = sample.splitlines()
    if len(sample) < len(data):
        lines = lines[:-1]  # the sample cut the last line short
    lines = [line for line in lines[:100] if line.strip()] or sample.splitlines()[:1]
    if delimiter is None and _looks_like_sequences(lines):
        return _read_sequences(data, source)
    text_lines = [line.decode(encoding) for line in lines]
    delimiter = delimiter or _sniff_delimiter(text_lines, source)
    rows = list(csv.reader(text_lines, delimiter=delimiter, skipinitialspace=delimiter == " "))
    if header is None:
        header = _first_row_is_header(rows)
    if header:
        frame = _read_delimited(data, source, delimiter, encoding, header=rows[0])
    else:
        names = [f"column {i}" for i in range(1, len(rows[0]) + 1)]
        frame = _read_delimited(data, source, delimiter, encoding, names=names,
                                column_types={name: pa.string() for name in names[:2]})  # the likely ids
    _check_quotes_closed(frame, data, source)
    frame.attrs.update(delimiter=delimiter, header=header)
    return frame, "tsv" if delimiter == "\t" else "csv"


def _looks_like_sequences(lines: list[bytes]) -> bool:
    """Whitespace-separated integers, 'user item item ...' (the SASRec pairs are lines of one item). Lines of
    one length >= 3 that are tab-separated are a headerless table (ml-100k's u.data) instead."""
    matched = [SEQUENCE_LINE.fullmatch(line) for line in lines]
    if not matched[0] or matched.count(None) > max(1, len(lines) // 10):  # _read_sequences quotes the odd ones
        return False
    lengths = {len(line.split()) for line, match in zip(lines, matched) if match}
    return lengths == {2} or not (len(lengths) == 1 and any(b"\t" in line for line in lines))


def _sniff_delimiter(lines: list[str], source: str) -> str:
    """The candidate that splits the header and most rows into the same number of fields (quoted text ignored)."""
    unquoted = [re.sub(r'"[^"]*"', "", line) for line in lines]

    def fit(delimiter):
        counts = [line.count(delimiter) for line in unquoted]
        if counts[0] == 0:
            return (0.0, 0)
        return (sum(count == counts[0] for count in counts) / len(counts), counts[0])

    best = max(DELIMITERS, key=fit)  # ties go to the earlier (more common) delimiter
    if fit(best)[0] < 0.5:
        raise DataError(f"{source}: cannot tell how the columns are separated (tried comma, tab, semicolon and pipe) "
                        f"in lines like {lines[0][:80]!r}; expected {FORMATS_HINT}")
    return best


def _first_row_is_header(rows: list[list[str]]) -> bool:
    """Whether the first row names the columns. It does if it holds a name SASRec knows (user_id, item, ...),
    or a text above a column of numbers; it does not if it is all numbers. Otherwise (all columns text) it
    does if none of its values comes back in its column: a user or item of a log recurs, a column name
    does not. The Data page shows the guess and lets the user correct it."""
    first, rest = [value.strip() for value in rows[0]], rows[1:]
    if any(value.lower() in KNOWN_COLUMN_NAMES for value in first):
        return True
    if all(NUMBER.fullmatch(value) for value in first if value):
        return False
    columns = [[row[i].strip() for row in rest if i < len(row)] for i in range(len(first))]
    for value, column in zip(first, columns):
        numbers = sum(bool(NUMBER.fullmatch(v)) for v in column)
        if value and not NUMBER.fullmatch(value) and column and numbers >= 0.9 * len(column):
            return True
    return not any(value and value in column for value, column in zip(first, columns))


def _read_delimited(data: bytes, source: str, delimiter: str, encoding: str = "utf-8", header: list[str] | None = None,
                    names: list[str] | None = None, quote: bool = True, column_types: dict | None = None) -> pd.DataFrame:
    """pyarrow's CSV reader; `names` for headerless files. Id-like columns are read as text so that
    '007' stays '007' and 20-digit ids keep every digit."""
    columns = names or header or []
    types = {name: pa.string() for name in columns if _is_id_name(name)} | (column_types or {})
    separated = DELIMITER_NAMES.get(delimiter, repr(delimiter))

    def read(threads: bool):
        malformed = []

        def skip(row):
            malformed.append(row)
            return "skip"

        try:
            table = pacsv.read_csv(
                pa.BufferReader(data),
                read_options=pacsv.ReadOptions(encoding=encoding, column_names=names, use_threads=threads,
                                               block_size=CSV_BLOCK_BYTES),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quote else False,
                                                 ignore_empty_lines=True, invalid_row_handler=skip),
                convert_options=pacsv.ConvertOptions(column_types=types))
        except (pa.ArrowException, UnicodeError) as err:
            raise DataError(f"{source}: cannot be read as {separated}-separated text: {err}") from err
        return table, malformed

    table, malformed = read(threads=True)
    if malformed:
        total = table.num_rows + len(malformed)
        if quote and any("\n" in row.text for row in malformed):  # a quote never closed swallowed the lines after it
            _, malformed = read(threads=False)  # slower, but says on which line
            row = next(row for row in malformed if "\n" in row.text)
            raise DataError(f"{source}: line {row.number}: a quote (\") is never closed, so the lines after it run "
                            f"together ({row.text[:60]!r}); close the quote, or remove it")
        if len(malformed) > total * MAX_MALFORMED_FRACTION:
            _, malformed = read(threads=False)  # slower, but says on which lines
            examples = "; ".join(f"line {row.number}: {row.text[:80]!r} ({row.actual_columns} fields)"
                                 for row in malformed[:3])
            first_row = f"header ({', '.join(map(str, header))})" if header else "first row"
            raise DataError(f"{source}: {len(malformed)} of {total} rows do not have the {malformed[0].expected_columns} "
                            f"{separated}-separated fields of the {first_row}, e.g. {examples}")
    frame = table.to_pandas()
    return _finish_table(frame, source, first_line=1 if names else 2, skipped_rows=len(malformed))


def _check_quotes_closed(frame: pd.DataFrame, data: bytes, source: str) -> None:
    """A quote that is never closed makes the reader take the rest of the file as one value: say so
    instead of silently losing those rows. (Logs hold no multi-line values.)"""
    if b'"' not in data:
        return
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_string_dtype(values.dtype):
            spans = values.str.contains("\n", regex=False).fillna(False).to_numpy(dtype=bool)
            if spans.any():
                row = int(np.flatnonzero(spans)[0])
                line = row + (frame.attrs.get("first_line") or 1)
                raise DataError(f"{source}: line {line}: a quote (\") in column {column!r} is never closed, so the value "
                                f"runs over {values.iloc[row].count(chr(10)) + 1} lines ({values.iloc[row][:60]!r}); "
                                "close the quote, or remove it")


def _finish_table(frame: pd.DataFrame, source: str, first_line: int | None, skipped_rows: int = 0) -> pd.DataFrame:
    """Common checks and clean-up for every reader; `attrs` carries what build_dataset needs to word its messages."""
    if len(frame) == 0:
        raise DataError(f"{source}: the file has no rows, only a header"
                        + (f" ({', '.join(map(str, frame.columns))})" if len(frame.columns) else ""))
    names = [str(name).strip() for name in frame.columns]
    if all(RECBOLE_TYPE.search(name) for name in names):
        names = [RECBOLE_TYPE.sub("", name) for name in names]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise DataError(f"{source}: column names must be unique, but {duplicated} appear more than once")
    frame.columns = names
    frame.attrs.update(source=source, first_line=first_line, skipped_rows=skipped_rows)
    return frame


def _read_json(data: bytes, source: str, encoding: str) -> pd.DataFrame:
    if encoding != "utf-8":
        data = data.decode(encoding).encode("utf-8")
    listed, lines = data.lstrip()[:1] == b"[", []
    try:
        if listed:
            records = json.loads(data)
        else:
            try:
                return _finish_table(pajson.read_json(io.BytesIO(data)).to_pandas(), source, first_line=1)
            except pa.ArrowInvalid:  # pyarrow wants one type per column: let json + pandas cope with mixed ones
                lines = [line for line in data.splitlines() if line.strip()]
                records = json.loads(b"[" + b",\n".join(lines) + b"]")
    except json.JSONDecodeError as err:
        where = (f" in {lines[err.lineno - 1][:80].decode()!r}" if lines and err.lineno <= len(lines)
                 else f" at line {err.lineno}")
        raise DataError(f"{source}: expected JSON Lines (one {{...}} object per line) or a JSON list of records; "
                        f"invalid JSON{where}: {err.msg}") from err
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records[:1]):
        raise DataError(f"{source}: expected JSON Lines or a JSON list of records ({{...}} objects), "
                        f"found {type(records).__name__} {str(records)[:80]!r}")
    return _finish_table(pd.DataFrame.from_records(records), source, first_line=None if listed else 1)


def _read_sequences(data: bytes, source: str) -> tuple[pd.DataFrame, str]:
    """Whitespace-separated integers, no header: 'user item item ...', oldest first, as research code
    writes logs ("user-sequences"), of which the SASRec paper's 'user item' pairs are the case of one
    item per line ("sasrec-txt"). A user on several lines has their items in file order."""
    bad = NOT_SEQUENCE_LINE.search(data)
    if bad:
        line = data.count(b"\n", 0, bad.start()) + 1
        raise DataError(f"{source}: line {line} {bad.group().strip()[:80].decode('latin-1')!r} is not whitespace-separated "
                        "integers (of at most 18 digits); the file starts like one 'user item item ...' line per user, "
                        "or the SASRec paper's 'user item' pairs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        numbers = np.fromstring(data, dtype=np.int64, sep=" ")  # any whitespace separates; validated above
    byte = np.frombuffer(data, dtype=np.uint8)
    digit = (byte >= ord("0")) & (byte <= ord("9"))
    token_starts = np.flatnonzero(digit & ~np.r_[False, digit[:-1]])
    line_of_token = np.searchsorted(np.flatnonzero(byte == ord("\n")), token_starts)
    first_in_line = np.r_[True, line_of_token[1:] != line_of_token[:-1]]
    tokens_per_line = np.diff(np.r_[np.flatnonzero(first_in_line), len(token_starts)])
    frame = pd.DataFrame({"user_id": np.repeat(numbers[first_in_line], tokens_per_line - 1),
                          "item_id": numbers[~first_in_line]})
    pairs = bool((tokens_per_line == 2).all())
    return _finish_table(frame, source, first_line=1 if pairs else None), "sasrec-txt" if pairs else "user-sequences"


def _read_recbole(inter: Path) -> RawLog:
    """RecBole atomic files: <name>.inter (tab-separated, `name:type` headers) and an optional <name>.item."""
    events, _ = _read_recbole_file(inter)
    item_file = inter.with_suffix(".item")
    catalog = _read_recbole_items(item_file) if item_file.exists() else None
    return RawLog(events, catalog, inter.name, "recbole", None, "\t", True)


def _read_recbole_file(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """-> (table with `name:type` stripped from its column names, the header as written)."""
    data = _read_bytes(path)
    encoding = _text_encoding(data, path.name)
    header = data.split(b"\n", 1)[0].decode(encoding).rstrip("\r").split("\t")
    types = {name: RECBOLE_ARROW_TYPES[kind] for name in header
             if (kind := name.rpartition(":")[2]) in RECBOLE_ARROW_TYPES}
    return _read_delimited(data, path.name, "\t", encoding, header=header, quote=False, column_types=types), header


def _read_recbole_items(path: Path) -> pd.DataFrame:
    frame, header = _read_recbole_file(path)
    # RecBole's token_seq separates values by spaces (ml-100k's class: "Animation Children's Comedy").
    for name in header:
        bare = RECBOLE_TYPE.sub("", name.strip())
        if name.strip().endswith(":token_seq") and bare.lower() in CATEGORY_NAMES:
            frame[bare] = frame[bare].astype("string").str.strip().str.replace(r"\s+", ", ", regex=True)
    return _standard_catalog(frame, path.name)


def _read_folder(folder: Path) -> RawLog:
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    by_preference = sorted((p for p in files.values() if _bare_suffix(p) in TABLE_SUFFIXES),
                           key=lambda p: TABLE_SUFFIXES.index(_bare_suffix(p)))
    interactions = [p for p in by_preference if p.name.lower().split(".")[0] == "interactions"]
    if interactions:
        events, _ = _read_table(interactions[0])
        events.attrs["source"] = f"{folder.name}/{interactions[0].name}"
        items = [p for p in by_preference if p.name.lower().split(".")[0] == "items"]
        catalog = _standard_catalog(_read_table(items[0])[0], f"{folder.name}/{items[0].name}") if items else None
        return RawLog(events, catalog, f"{folder.name}/{interactions[0].name}", "dataset-folder", None)
    inters = sorted(p for p in files.values() if p.suffix.lower() == ".inter")
    if len(inters) == 1:
        return _read_recbole(inters[0])
    if len(inters) > 1:
        raise DataError(f"{folder.name}: holds several RecBole logs ({', '.join(p.name for p in inters)}); pass one .inter file")
    if set(MOVIELENS_LOGS) & set(files):
        return _read_movielens(folder.name, _folder_members(folder))
    raise DataError(f"{folder.name}: no interaction log in this folder; expected interactions.<csv|parquet|jsonl...> "
                    f"(with optional items.<ext>), a RecBole <name>.inter, or an extracted MovieLens folder; "
                    f"found: {', '.join(sorted(files)[:15]) or 'nothing'}")


def _folder_members(folder: Path) -> dict:
    return {p.name: p.read_bytes for p in folder.iterdir() if p.is_file()}


def _read_zip(path: Path, delimiter: str | None, header: bool | None) -> RawLog:
    """A zip: a MovieLens archive as GroupLens distributes it, an Excel workbook, or a zip of one table.
    Members are read in memory, each at most MAX_DECOMPRESSED_BYTES (zipfile stops at a member's
    declared size, and checks it), and matched by base name, so the top folder may be called anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            files = [info for info in archive.infolist() if not info.is_dir() and "__MACOSX" not in info.filename]
            if any(info.filename == "xl/workbook.xml" for info in files):
                return _read_excel(path, files, delimiter, header)
            members = {}
            for info in sorted(files, key=lambda info: info.filename.count("/")):  # the shallowest copy wins
                members.setdefault(PurePosixPath(info.filename).name,
                                   functools.partial(_unzip, archive, info, f"{path.name}/{info.filename}"))
            if set(MOVIELENS_LOGS) & set(members):
                return _read_movielens(path.name, members)
            tables = [info for info in files if _bare_suffix(PurePosixPath(info.filename)) in TABLE_SUFFIXES]
            if len(tables) == 1:
                source = f"{path.name}/{PurePosixPath(tables[0].filename).name}"
                data = _gunzip(_unzip(archive, tables[0], source), source)
                events, file_format = _read_table_data(data, source, _bare_suffix(PurePosixPath(tables[0].filename))
                                                       in JSON_SUFFIXES, delimiter, header)
                return _table_log(events, source, file_format)
            raise DataError(f"{path.name}: not a zip I know; expected a MovieLens zip with u.data (ml-100k), ratings.dat "
                            "(ml-1m) or ratings.csv (ml-latest-small, ml-25m, ml-32m), an Excel workbook, or a zip "
                            f"holding one table; found: {', '.join(sorted(members)[:15]) or 'nothing'}")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
        raise DataError(f"{path.name}: not a readable zip archive: {err}") from err


def _unzip(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> bytes:
    if info.file_size > MAX_DECOMPRESSED_BYTES:
        raise _too_big(source, f"unpacks to {_size(info.file_size)},")
    return archive.read(info)


def _read_excel(path: Path, files: list, delimiter: str | None, header: bool | None) -> RawLog:
    """The first sheet of an .xlsx workbook, through openpyxl. The first row is a header or data as for
    delimited text."""
    unpacked = sum(info.file_size for info in files)
    if unpacked > MAX_DECOMPRESSED_BYTES:
        raise _too_big(path.name, f"the workbook unpacks to {_size(unpacked)},")
    try:
        sheet = pd.read_excel(path, sheet_name=0, header=None, dtype=object, engine="openpyxl")
    except ImportError as err:
        raise DataError(f"{path.name}: reading Excel workbooks needs openpyxl (pip install openpyxl); "
                        "or save the sheet as CSV UTF-8") from err
    except Exception as err:  # openpyxl raises many kinds on a damaged workbook; the message is what matters
        reason = str(err).replace(str(path), path.name)
        raise DataError(f"{path.name}: not a readable Excel workbook ({type(err).__name__}: {reason}); "
                        "save the sheet as CSV UTF-8 and upload that") from err
    sheet = sheet.dropna(how="all").dropna(axis=1, how="all")
    if sheet.empty:
        raise DataError(f"{path.name}: the first sheet of the workbook is empty; expected a table of events")
    rows = sheet.head(100).astype(str).where(sheet.head(100).notna(), "").to_numpy().tolist()
    if header is None:
        header = _first_row_is_header(rows)
    if header:
        names = [value.strip() or f"column {i}" for i, value in enumerate(rows[0], 1)]
        sheet = sheet.iloc[1:]
    else:
        names = [f"column {i}" for i in range(1, sheet.shape[1] + 1)]
    sheet = pd.DataFrame(sheet.to_numpy(), columns=names).infer_objects()
    events = _finish_table(sheet, path.name, first_line=None)
    events.attrs["header"] = header
    return _table_log(events, path.name, "excel")


def _read_movielens(source: str, members: dict) -> RawLog:
    """ml-100k, ml-1m (and ml-10m) or the ml-latest/ml-25m/ml-32m csv layout; `members` maps base name -> reader."""
    roles = Columns("user_id", "item_id", "timestamp", "rating")
    if "u.data" in members:
        events = _read_delimited(_gunzip(members["u.data"](), f"{source}/u.data"), f"{source}/u.data", "\t",
                                 names=ML_RATING_COLUMNS, quote=False)
        catalog = _ml100k_catalog(members["u.item"](), f"{source}/u.item") if "u.item" in members else None
        return RawLog(events, catalog, source, "movielens-100k", roles)
    if "ratings.dat" in members:
        data = _gunzip(members["ratings.dat"](), f"{source}/ratings.dat")
        events = _read_delimited(data.replace(b"::", b"\t"), f"{source}/ratings.dat", "\t",
                                 names=ML_RATING_COLUMNS, quote=False)
        catalog = _ml1m_catalog(members["movies.dat"](), f"{source}/movies.dat") if "movies.dat" in members else None
        return RawLog(events, catalog, source, "movielens-1m", roles)
    if "ratings.csv" in members:
        events, _ = _read_text_table(_gunzip(members["ratings.csv"](), f"{source}/ratings.csv"), f"{source}/ratings.csv")
        catalog = None
        if "movies.csv" in members:
            movies = _gunzip(members["movies.csv"](), f"{source}/movies.csv")
            catalog = _standard_catalog(_read_text_table(movies, f"{source}/movies.csv")[0], f"{source}/movies.csv")
        return RawLog(events, catalog, source, "movielens-csv", Columns("userId", "movieId", "timestamp", "rating"))
    raise DataError(f"{source}: not a MovieLens layout I know; expected u.data (ml-100k), ratings.dat (ml-1m) or "
                    f"ratings.csv (ml-latest-small, ml-25m, ml-32m); found: {', '.join(sorted(members)[:15]) or 'nothing'}")


def _ml100k_catalog(data: bytes, source: str) -> pd.DataFrame:
    """u.item: id|title|release date|video release date|IMDb URL|19 genre flags, latin-1."""
    data = _gunzip(data, source)
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES]
    frame = _read_delimited(data, source, "|", _text_encoding(data, source), names=names, quote=False)
    flags = frame[list(ML100K_GENRES)].to_numpy() == 1
    genres = pd.Series("", index=frame.index, dtype="string")
    for column, genre in enumerate(ML100K_GENRES):  # 19 columns, each a vectorised step
        genres = genres + np.where(flags[:, column], ", " + genre, "")
    frame = frame.drop(columns=list(ML100K_GENRES))
    frame["genres"] = genres.str.removeprefix(", ").replace("", pd.NA)
    return _standard_catalog(frame, source)


def _ml1m_catalog(data: bytes, source: str) -> pd.DataFrame:
    """movies.dat: id::title::genres|separated, latin-1."""
    data = _gunzip(data, source)
    frame = _read_delimited(data.replace(b"::", b"\t"), source, "\t", _text_encoding(data, source),
                            names=["item_id", "title", "genres"], quote=False)
    return _standard_catalog(frame, source)


def _bare_suffix(path: Path | PurePosixPath) -> str:
    """'.csv' for both data.csv and data.csv.gz."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".gzip"):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


# -----------------------------------------------------------------------------
# column roles and catalogs

def _bare_name(name) -> str:
    return RECBOLE_TYPE.sub("", str(name).strip())


def _is_id_name(name) -> bool:
    bare = _bare_name(name).lower()
    return bare in {n.lower() for n in USER_NAMES + ITEM_NAMES} or bare.endswith("id")


def _find_column(columns, accepted, role: str, source: str, required: bool = False) -> str | None:
    wanted = {name.lower() for name in accepted}
    matches = [column for column in columns if _bare_name(column).lower() in wanted]
    if len(matches) > 1:
        raise DataError(f"{source}: columns {matches[0]!r} and {matches[1]!r} could both be the {role} column; "
                        f"choose the {role} column explicitly")
    if not matches and required:
        raise DataError(f"{source}: no {role} column found among the columns {[str(c) for c in columns]}; "
                        f"expected one named {', '.join(accepted)} (any case), or choose the {role} column explicitly")
    return matches[0] if matches else None


def detect_roles(df: pd.DataFrame, source: str = "") -> Columns:
    """Find the user, item, timestamp and rating columns by name; DataError if user/item is missing or ambiguous."""
    source = source or df.attrs.get("source") or "the table"
    return Columns(user=_find_column(df.columns, USER_NAMES, "user", source, required=True),
                   item=_find_column(df.columns, ITEM_NAMES, "item", source, required=True),
                   timestamp=_find_column(df.columns, TIMESTAMP_NAMES, "timestamp", source),
                   rating=_find_column(df.columns, RATING_NAMES, "rating", source))


def _roles_by_position(frame: pd.DataFrame) -> Columns | None:
    """A table without a header row: the user is the first column and the item the second (as in every
    headerless log format), a later column of epoch numbers or dates the timestamp, one of numbers
    from 0 to 10 the rating. The Data page shows the guess for the user to correct."""
    columns = list(frame.columns)
    if len(columns) < 2:
        return None
    later = columns[2:]
    timestamp = next((column for column in later if _looks_like_times(frame[column])), None)
    rating = next((column for column in later if column != timestamp and _looks_like_ratings(frame[column])), None)
    return Columns(columns[0], columns[1], timestamp, rating)


def _looks_like_times(values: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return bool(values.notna().any() and values.min() >= 1e8)  # epoch seconds since 1973, or a finer unit
    sample = values.dropna().head(100).astype(str)
    if sample.empty or not sample.str.contains(DATE_LIKE).all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return bool(pd.to_datetime(sample, errors="coerce", format="mixed").notna().all())


def _looks_like_ratings(values: pd.Series) -> bool:
    numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)
    return bool(numeric and values.notna().any() and values.min() >= 0 and values.max() <= 10)


def _normalise_ids(values: pd.Series) -> pd.Series:
    """Ids as stripped strings ("242", not "242.0", for a float column that held NaNs); "" becomes missing."""
    if pd.api.types.is_float_dtype(values.dtype):
        text = values.astype("string")
        whole = (values.notna() & (values % 1 == 0) & (values.abs() < 2 ** 62)).fillna(False).to_numpy(dtype=bool)
        text[whole] = values[whole].astype("int64").astype("string")
    else:
        text = values.astype("string")
    return text.str.strip().replace("", pd.NA)


def _multi_value(values: pd.Series) -> pd.Series:
    """'A|B', 'A;B', 'A, B' or a list -> 'A, B'; empty or MovieLens' '(no genres listed)' -> NA."""
    first = values.dropna().iloc[0] if values.notna().any() else None
    if isinstance(first, (list, tuple, np.ndarray)):  # Parquet/JSON list columns
        values = values.str.join(", ")
    text = values.astype("string").str.strip().str.replace(MULTI_VALUE_SEPARATOR, ", ", regex=True).str.strip(", ")
    return text.mask(text.isin(["", NO_GENRES]))


def _standard_catalog(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """item_id, title, category (first value), genres (all values, ', '-joined), then the other columns as they were."""
    columns = list(frame.columns)
    id_column = _find_column(columns, ITEM_NAMES, "item", source) or _find_column(columns, ("id",), "item", source)
    if id_column is None:
        raise DataError(f"{source}: no item id column in the catalog among {[str(c) for c in columns]}; "
                        f"expected one named {', '.join(ITEM_NAMES)} or id (any case)")
    title_column = next((c for name in TITLE_NAMES for c in columns if str(c).lower() == name), None)
    category_column = next((c for name in CATEGORY_NAMES for c in columns if str(c).lower() == name), None)
    genres_column = next((c for c in columns if str(c).lower() == "genres"), category_column)

    ids = _normalise_ids(frame[id_column])
    missing = pd.Series(pd.NA, index=frame.index, dtype="string")
    title = frame[title_column].astype("string").str.strip().replace("", pd.NA) if title_column else missing
    genres = _multi_value(frame[genres_column]) if genres_column else missing
    category = (_multi_value(frame[category_column]).str.extract(r"^([^,]*)", expand=False)
                if category_column else missing)
    used = [c for c in (id_column, title_column, category_column, genres_column) if c is not None]
    out = pd.concat([pd.DataFrame({"item_id": ids, "title": title.fillna(ids), "category": category, "genres": genres}),
                     frame.drop(columns=list(dict.fromkeys(used)))], axis=1)
    out = out[ids.notna()].drop_duplicates("item_id").reset_index(drop=True)
    out.attrs = {"source": source}
    return out


ROLE_NAMES = {"user": USER_NAMES, "item": ITEM_NAMES, "timestamp": TIMESTAMP_NAMES, "rating": RATING_NAMES}


def guess_roles(raw: RawLog) -> dict[str, str | None]:
    """Each role's column: as the format fixes it, else found by name as detect_roles does. Role
    by role, so that a missing or ambiguous column leaves only that role open (None) for the
    user to choose, instead of failing them all."""
    if raw.roles is not None:
        return asdict(raw.roles)
    guesses = {}
    for role, names in ROLE_NAMES.items():
        try:
            guesses[role] = _find_column(raw.events.columns, names, role, raw.source)
        except DataError:  # two columns fit
            guesses[role] = None
    return guesses
