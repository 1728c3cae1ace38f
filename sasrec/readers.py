"""Reading interaction logs and item catalogs, in whatever format they come.

read_log() turns a file or folder into a RawLog (the table as read, with original column
names); read_catalog() reads an item catalog into a standard table. Formats are decided by
name and content, never by trusting either alone. Anything a user can get wrong about
their files raises DataError, whose message names the file and the column, says what was
expected and quotes the offending rows. dataset.build_dataset() cleans what is read here.

Nothing here loops over rows in Python: readers are pyarrow's (openpyxl's for Excel),
clean-up is numpy/pandas. Delimited text streams into pyarrow's CSV reader, gunzipped on the
way (_Content), so that reading takes the memory of the table, not of the file. Compressed
input (gzip, zip) is unpacked up to MAX_DECOMPRESSED_BYTES, so that a bomb gets a message
instead of the memory; running out of memory anyway is a DataError too.

Column roles are found by name, then by content (find_roles), each with the rule that found it.
"""

import codecs
import csv
import functools
import gzip
import inspect
import io
import json
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable
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
ROLE_NAMES = {"user": USER_NAMES, "item": ITEM_NAMES, "timestamp": TIMESTAMP_NAMES, "rating": RATING_NAMES}
# A first row holding any of these is a header, whatever the rows below it look like.
KNOWN_COLUMN_NAMES = {name.lower() for names in (USER_NAMES, ITEM_NAMES, TIMESTAMP_NAMES, RATING_NAMES, TITLE_NAMES,
                                                 CATEGORY_NAMES) for name in names} | {"id"}
# Columns that describe an item (a title, a genre): never taken for an id or a time by their content.
DESCRIPTIVE_NAMES = {name.lower() for name in TITLE_NAMES + CATEGORY_NAMES}
# Finding roles by content (find_roles), where the names say nothing. The rules read the first rows
# (runs of a user's rows are consecutive) ...
CONTENT_SAMPLE_ROWS = 100_000
# ... a time is a date, or an epoch number in seconds or milliseconds, within these years ...
EPOCH_YEARS = (1995, 2100)
YEAR_IN_TEXT = r"(?<!\d)(?:19|20|21)\d\d(?!\d)"
# ... a user's values repeat the row above on at least this share of rows, and this many times more
# often than two random rows agree (so that a type or a country, with few values, is no user) ...
MIN_RUN_SHARE, RUN_CONTRAST = 0.5, 2.0
# ... and the item column has at least this many distinct values (or a third of the rows, in a tiny log).
MIN_ITEMS = 20

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
MULTI_VALUE_SEPARATOR = r"\s*[|;,]\s*"
NO_GENRES = "(no genres listed)"  # MovieLens' own placeholder: means missing
MAX_MALFORMED_FRACTION = 0.01  # skip at most this share of rows with the wrong number of fields
# gzip and zip input is unpacked up to this many bytes: room for real logs, and a bound for a bomb.
MAX_DECOMPRESSED_BYTES = 4 << 30
SNIFF_BYTES = 1 << 16
# pyarrow parses CSV in blocks of this size, in parallel: its 1 MB default costs a 10M-row log about a
# second of system time in memory churn (bench/read_speed.py).
CSV_BLOCK_BYTES = 8 << 20
# Text streams into pyarrow a piece of whole lines at a time (_pieces), parsed a block per core: reading
# takes the memory of the table and of a few pieces, whatever the size of the file.
CSV_PIECE_BYTES = 2 * CSV_BLOCK_BYTES
# pyarrow's words for running out of memory (or of room for a thread's stack) in other exceptions than its
# ArrowMemoryError.
OUT_OF_RESOURCES = re.compile(r"malloc of size \d+ failed|Failed to launch worker thread|Out of memory")
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

    @functools.cached_property
    def found_roles(self) -> "FoundRoles":
        """Each role's column and how it was found (see guess_roles); worked out once per log read."""
        if self.roles is None:
            return find_roles(self.events, self.source)
        if self.header is False and (by_position := _roles_by_position(self.events)):
            return by_position
        fixed = asdict(self.roles)
        return FoundRoles(fixed, {role: f"set by the format ({self.format})" for role, column in fixed.items() if column})


# -----------------------------------------------------------------------------
# reading

def _memory_errors_as_data_errors(source_of: Callable[[dict], str]):
    """Make a reader's MemoryError one DataError, naming `source_of(its arguments by name)`, raised once the
    frames that held what was read are gone (after the except block), so that the memory is free again."""
    def decorate(read):
        signature = inspect.signature(read)

        @functools.wraps(read)
        def checked(*args, **kwargs):
            try:
                return read(*args, **kwargs)
            except MemoryError:  # pyarrow's ArrowMemoryError is one too
                pass
            arguments = signature.bind(*args, **kwargs)
            arguments.apply_defaults()
            raise DataError(f"{source_of(arguments.arguments)}: ran out of memory while reading it. What it holds does "
                            "not fit in the memory this process may use: close other programs, use a machine with more "
                            "memory, or read a part of the log")
        return checked
    return decorate


def _path_name(arguments: dict) -> str:
    return Path(arguments["path"]).name


@_memory_errors_as_data_errors(_path_name)
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


@_memory_errors_as_data_errors(_path_name)
def read_catalog(path: str | Path) -> pd.DataFrame:
    """Read an item catalog (any table format, or a MovieLens / RecBole / dataset source that carries one),
    standardised to item_id, title, category, genres, then any other columns."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path.name}: no such file or folder")
    if path.name == "u.item":
        return _ml100k_catalog(_Content.of_file(path))
    if path.name == "movies.dat":
        return _ml1m_catalog(_Content.of_file(path))
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
        by_position = _roles_by_position(events)
        roles = by_position and Columns(**by_position.columns)
    else:
        roles = None
    return RawLog(events, None, source, file_format, roles, events.attrs.get("delimiter"), header)


def _head(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError as err:
        raise DataError(f"{path.name}: cannot be read: {err.strerror}") from err  # err itself holds the full path


def _too_big(source: str, what: str) -> DataError:
    return DataError(f"{source}: {what} more than {_size(MAX_DECOMPRESSED_BYTES)}, the most read from compressed "
                     "input; this looks like a decompression bomb (or a log too big to read here)")


def _size(size: int) -> str:
    return f"{size / 2**30:,.1f} GB" if size >= 2**30 else f"{size / 2**20:,.1f} MB"


class _Stream(io.RawIOBase):
    """The bytes of `raw`, gunzipped if `gzipped`, checked as they pass: DataError for gzip data that is cut
    short or damaged, past MAX_DECOMPRESSED_BYTES when `capped`, and, for `text`, at a NUL byte (text never
    holds one; pyarrow would keep it inside an id). Notes whether a quote (") passed."""

    def __init__(self, raw, source: str, gzipped: bool, capped: bool, text: bool):
        super().__init__()
        self.raw, self.source, self.gzipped, self.capped, self.text = raw, source, gzipped, capped, text
        self.unpacked = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        self.size = self.lines = 0  # bytes and line ends read so far
        self.saw_quote = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return bytes(self.readall())
        try:
            chunk = self.unpacked.read(size)
        except EOFError as err:
            if not self.gzipped:
                raise
            raise DataError(f"{self.source}: the gzip data is cut short ({err}); the file is incomplete: "
                            "copy or download it again") from err
        except (OSError, zlib.error) as err:
            if not self.gzipped:
                raise
            raise DataError(f"{self.source}: looks gzip-compressed but cannot be decompressed: {err}") from err
        self.size += len(chunk)
        if self.capped and self.size > MAX_DECOMPRESSED_BYTES:
            raise _too_big(self.source, "the gzip data unpacks to" if self.gzipped else "unpacks to")
        if self.text:
            nul = chunk.find(b"\0")
            if nul >= 0:
                line = self.lines + chunk.count(b"\n", 0, nul) + 1
                raise DataError(f"{self.source}: line {line} holds a NUL byte (\\x00), which text never does: the file "
                                f"is damaged, or not text; it reads {chunk[max(0, nul - 30):nul + 10]!r} there")
            self.lines += chunk.count(b"\n")
            self.saw_quote = self.saw_quote or b'"' in chunk
        return chunk

    def readall(self) -> bytearray:
        """The rest, in one buffer grown in place (joining chunks would hold the data twice)."""
        data = bytearray()
        while chunk := self.read(CSV_BLOCK_BYTES):
            data += chunk
        return data

    def close(self) -> None:
        if not self.closed:
            self.unpacked.close()
            self.raw.close()  # GzipFile leaves the file it was given open
        super().close()


class _Content:
    """The bytes of a file, a zip member or a buffer, as a stream that can be opened again (the CSV reader
    reads it once; a second pass finds the lines of an error). Gzip data is gunzipped on the way, whatever
    the name says; compressed input (gzip, zip) yields at most MAX_DECOMPRESSED_BYTES."""

    def __init__(self, source: str, open_raw: Callable, compressed: bool = False):
        self.source, self.open_raw, self.compressed = source, open_raw, compressed

    @classmethod
    def of_file(cls, path: Path, source: str | None = None) -> "_Content":
        source = source or path.name

        def open_raw():
            try:
                return open(path, "rb")
            except OSError as err:
                raise DataError(f"{source}: cannot be read: {err.strerror}") from err  # err itself holds the full path

        return cls(source, open_raw)

    @classmethod
    def of_bytes(cls, data, source: str) -> "_Content":
        return cls(source, lambda: pa.BufferReader(data))

    @functools.cached_property
    def gzipped(self) -> bool:
        with self.open_raw() as raw:
            return raw.read(2) == b"\x1f\x8b"

    def open(self, text: bool = False) -> _Stream:
        return _Stream(self.open_raw(), self.source, self.gzipped, self.compressed or self.gzipped, text)

    @functools.cached_property
    def head(self) -> bytes:
        """The first SNIFF_BYTES (all of it, if shorter); DataError if there is nothing but whitespace."""
        with self.open() as stream:
            head = stream.read(SNIFF_BYTES)
            if head.strip():
                return head
            size = len(head)
            while chunk := stream.read(CSV_BLOCK_BYTES):
                if not chunk.isspace():
                    return head
                size += len(chunk)
        raise _empty(self.source, size)

    @property
    def complete_head(self) -> bool:
        """Whether the head is all there is."""
        return len(self.head) < SNIFF_BYTES

    def read(self, text: bool = False) -> bytearray:
        """All of it, in memory: for what is read whole (Parquet, JSON, 'user item ...' lines, catalogs)."""
        with self.open(text) as stream:
            data = stream.readall()
        if not data or data.isspace():
            raise _empty(self.source, len(data))
        if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as Excel writes
            del data[:3]
        return data


def _empty(source: str, size: int) -> DataError:
    return DataError(f"{source}: the file is empty ({size} bytes); expected a table such as "
                     "user_id,item_id,timestamp with one event per row")


def _text_encoding(data, source: str, complete: bool = True) -> str:
    """'utf-8', or 'latin-1' for plain 8-bit text (ml-100k's u.item is latin-1); DataError for anything else.
    `data` is the whole text or, not `complete`, its head (whose last character may be cut): then a later
    byte that is not UTF-8 makes _read_delimited read the text again as latin-1."""
    head = bytes(data[:SNIFF_BYTES])
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
    decoder, view = codecs.getincrementaldecoder("utf-8")(), memoryview(data)
    try:  # in steps, so that a big text is never decoded whole
        for start in range(0, len(view), CSV_BLOCK_BYTES):
            decoder.decode(view[start:start + CSV_BLOCK_BYTES])
        decoder.decode(b"", final=complete)
        return "utf-8"
    except UnicodeDecodeError:
        return "latin-1"  # no control bytes: 8-bit text, and latin-1 decodes any byte


def _read_table(path: Path, delimiter: str | None = None, header: bool | None = None) -> tuple[pd.DataFrame, str]:
    """One file holding one table: Parquet, JSON, SASRec text or delimited text. Returns (table, format)."""
    if _head(path, 4) == b"PAR1":
        return _read_parquet(path, path.name), "parquet"
    return _read_table_content(_Content.of_file(path), _bare_suffix(path) in JSON_SUFFIXES, delimiter, header)


def _read_table_content(content: _Content, json_expected: bool = False, delimiter: str | None = None,
                        header: bool | None = None) -> tuple[pd.DataFrame, str]:
    if content.head[:4] == b"PAR1":
        return _read_parquet(pa.BufferReader(content.read()), content.source), "parquet"
    return _read_text_table(content, json_expected, delimiter, header)


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


def _read_text_table(content: _Content, json_expected: bool = False, delimiter: str | None = None,
                     header: bool | None = None) -> tuple[pd.DataFrame, str]:
    """Delimited text streams into pyarrow; JSON and 'user item ...' lines are read whole. The format,
    separator and header row are decided from the first SNIFF_BYTES."""
    source = content.source
    encoding = _text_encoding(content.head, source, content.complete_head)
    sample = content.head.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark, as Excel writes
    start = sample.lstrip()[:1]
    if delimiter is None and start in (b"{", b"["):
        data = content.read(text=True)
        return _read_json(data, source, _text_encoding(data, source)), "jsonl"
    if json_expected and delimiter is None:
        raise DataError(f"{source}: expected JSON Lines (one {{...}} object per line) or a JSON list of records, "
                        f"but the file starts with {sample.lstrip()[:40]!r}")
    lines = sample.splitlines()
    if not content.complete_head:
        lines = lines[:-1]  # the sample cut the last line short
    lines = [line for line in lines[:100] if line.strip()] or sample.splitlines()[:1]
    if delimiter is None and _looks_like_sequences(lines):
        return _read_sequences(content.read(text=True), source)
    text_lines = [line.decode(encoding) for line in lines]
    delimiter = delimiter or _sniff_delimiter(text_lines, source)
    rows = list(csv.reader(text_lines, delimiter=delimiter, skipinitialspace=delimiter == " "))
    if header is None:
        header = _first_row_is_header(rows)
    if header:
        frame = _read_delimited(content, delimiter, encoding, header=rows[0])
    else:
        names = [f"column {i}" for i in range(1, len(rows[0]) + 1)]
        frame = _read_delimited(content, delimiter, encoding, names=names,
                                column_types={name: pa.string() for name in names[:2]})  # the likely ids
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


def _read_delimited(content: _Content, delimiter: str, encoding: str = "utf-8", header: list[str] | None = None,
                    names: list[str] | None = None, quote: bool = True, column_types: dict | None = None) -> pd.DataFrame:
    """pyarrow's CSV reader, a piece of whole lines at a time (_pieces) as the content streams; `names` for
    headerless files. Id-like columns are read as text so that '007' stays '007' and 20-digit ids keep every
    digit, and so is a column whose pieces disagree on its type (as pyarrow's reader does for a whole file).
    Text that turns out not to be UTF-8 past the sniffed head is read again as latin-1."""
    source = content.source
    columns = names or header or []
    separated = DELIMITER_NAMES.get(delimiter, repr(delimiter))

    def read(threads: bool, encoding: str, types: dict):
        tables, malformed, column_names = [], [], names
        with content.open(text=True) as stream:
            for piece, first_line in _pieces(stream):
                def skip(row, offset=first_line - 1):
                    malformed.append(row if row.number is None or row.number < 0 else row._replace(number=row.number + offset))
                    return "skip"

                try:
                    table = pacsv.read_csv(
                        pa.BufferReader(piece),
                        read_options=pacsv.ReadOptions(encoding=encoding, column_names=column_names, use_threads=threads,
                                                       block_size=CSV_BLOCK_BYTES),
                        parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quote else False,
                                                         ignore_empty_lines=True, invalid_row_handler=skip),
                        convert_options=pacsv.ConvertOptions(column_types=types))
                except pa.ArrowException as err:
                    if isinstance(err, MemoryError) or OUT_OF_RESOURCES.search(str(err)):
                        raise MemoryError(str(err)) from err
                    if encoding == "utf-8" and "invalid UTF8" in str(err):
                        return read(threads, "latin-1", types)
                    if quote and (unclosed := _unclosed_quote(piece, first_line)):  # it ran to the end of the piece
                        line, text = unclosed
                        raise DataError(f"{source}: line {line}: a quote (\") is never closed, so the lines after it "
                                        f"run together ({text[:60]!r}); close the quote, or remove it") from err
                    raise DataError(f"{source}: cannot be read as {separated}-separated text: {err}") from err
                if encoding == "utf-8" and any(pa.types.is_binary(field.type) for field in table.schema):  # not UTF-8
                    return read(threads, "latin-1", types)
                column_names = column_names or table.column_names
                tables.append(table)
        schema, disagreeing = _common_schema(tables)
        if disagreeing:
            return read(threads, encoding, types | {name: pa.string() for name in disagreeing})
        table = pa.concat_tables([table.cast(schema) for table in tables])
        return table, malformed, encoding, types, stream.saw_quote

    table, malformed, encoding, types, saw_quote = read(
        True, encoding, {name: pa.string() for name in columns if _is_id_name(name)} | (column_types or {}))
    if malformed:
        total = table.num_rows + len(malformed)
        if quote and any("\n" in row.text for row in malformed):  # a quote never closed swallowed the lines after it
            malformed = read(False, encoding, types)[1]  # slower, but says on which line
            row = next(row for row in malformed if "\n" in row.text)
            raise DataError(f"{source}: line {row.number}: a quote (\") is never closed, so the lines after it run "
                            f"together ({row.text[:60]!r}); close the quote, or remove it")
        if len(malformed) > total * MAX_MALFORMED_FRACTION:
            malformed = read(False, encoding, types)[1]  # slower, but says on which lines
            examples = "; ".join(f"line {row.number}: {row.text[:80]!r} ({row.actual_columns} fields)"
                                 for row in malformed[:3])
            first_row = f"header ({', '.join(map(str, header))})" if header else "first row"
            raise DataError(f"{source}: {len(malformed)} of {total} rows do not have the {malformed[0].expected_columns} "
                            f"{separated}-separated fields of the {first_row}, e.g. {examples}")
    frame = table.to_pandas(split_blocks=True, self_destruct=True)  # each column freed as it is converted
    del table
    frame = _finish_table(frame, source, first_line=1 if names else 2, skipped_rows=len(malformed))
    if quote and saw_quote:
        _check_quotes_closed(frame, source)
    return frame


def _pieces(stream: _Stream):
    """The stream's text in pieces of whole lines, about CSV_PIECE_BYTES each, with the line each starts on.
    Each piece is copied into memory of pyarrow's own: pyarrow's threads then hold no Python object, which
    they would release later, from a thread of their own (one still doing so when the interpreter exits
    aborts the process). Unlike pyarrow reading a Python file, this also reads nothing ahead. (A quoted
    value could hold a line end, but values of a log never do: _check_quotes_closed refuses them.)"""
    rest, line = bytearray(), 1  # grown in place: a line without an end may be long (a bomb is, up to the cap)
    while chunk := stream.read(CSV_PIECE_BYTES):
        cut = chunk.rfind(b"\n") + 1  # 0: no line ends in this chunk, so all of it is carried over
        if cut == 0:
            rest += chunk
            continue
        piece = pa.allocate_buffer(len(rest) + cut)
        view = memoryview(piece).cast("B")
        view[:len(rest)] = rest
        view[len(rest):] = memoryview(chunk)[:cut]
        yield piece, line
        line += chunk.count(b"\n", 0, cut)  # `rest` holds no line end
        rest = bytearray(chunk[cut:])
    if rest:
        piece = pa.allocate_buffer(len(rest))
        memoryview(piece).cast("B")[:] = rest
        yield piece, line


def _unclosed_quote(piece: pa.Buffer, first_line: int) -> tuple[int, str] | None:
    """(line, its text) of the piece's first line with an odd number of quotes, or None. As values hold no
    line ends, a line whose quotes do not pair opens a quote that the line does not close."""
    for number, line in enumerate(piece.to_pybytes().splitlines(), start=first_line):
        if line.count(b'"') % 2:
            return number, line.decode("latin-1")
    return None


def _common_schema(tables: list[pa.Table]) -> tuple[pa.Schema, list[str]]:
    """The schema all pieces fit (a column empty in one piece takes the others' type; integers in one and
    fractions in another are fractions), and the columns whose pieces disagree otherwise (to be read as text)."""
    fields, disagreeing = [], []
    for column, first in enumerate(tables[0].schema):
        kinds = {table.schema.field(column).type for table in tables} - {pa.null()}
        if len(kinds) > 1 and all(pa.types.is_integer(kind) or pa.types.is_floating(kind) for kind in kinds):
            kinds = {pa.float64()}
        if len(kinds) > 1:
            disagreeing.append(first.name)
        fields.append(first.with_type(kinds.pop() if len(kinds) == 1 else pa.null()))
    return pa.schema(fields), disagreeing


def _check_quotes_closed(frame: pd.DataFrame, source: str) -> None:
    """A quote that is never closed makes the reader take the rest of the file as one value: say so
    instead of silently losing those rows. (Logs hold no multi-line values.)"""
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


def _read_json(data, source: str, encoding: str) -> pd.DataFrame:
    if encoding != "utf-8":
        data = data.decode(encoding).encode("utf-8")
    listed, lines = re.match(rb"\s*\[", data) is not None, []
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


def _read_sequences(data, source: str) -> tuple[pd.DataFrame, str]:
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
        numbers = np.fromstring(bytes(data), dtype=np.int64, sep=" ")  # any whitespace separates; validated above
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
    content = _Content.of_file(path)
    encoding = _text_encoding(content.head, path.name, content.complete_head)
    header = content.head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode(encoding).rstrip("\r").split("\t")
    types = {name: RECBOLE_ARROW_TYPES[kind] for name in header
             if (kind := name.rpartition(":")[2]) in RECBOLE_ARROW_TYPES}
    return _read_delimited(content, "\t", encoding, header=header, quote=False, column_types=types), header


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


def _folder_members(folder: Path) -> dict[str, _Content]:
    return {p.name: _Content.of_file(p, f"{folder.name}/{p.name}") for p in folder.iterdir() if p.is_file()}


def _read_zip(path: Path, delimiter: str | None, header: bool | None) -> RawLog:
    """A zip: a MovieLens archive as GroupLens distributes it, an Excel workbook, or a zip of one table.
    Members stream as files do, each at most MAX_DECOMPRESSED_BYTES (zipfile stops at a member's
    declared size, and checks it), and are matched by base name, so the top folder may be called anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            files = [info for info in archive.infolist() if not info.is_dir() and "__MACOSX" not in info.filename]
            if any(info.filename == "xl/workbook.xml" for info in files):
                return _read_excel(path, files, delimiter, header)
            members = {}
            for info in sorted(files, key=lambda info: info.filename.count("/")):  # the shallowest copy wins
                members.setdefault(PurePosixPath(info.filename).name,
                                   _zip_member(archive, info, f"{path.name}/{info.filename}"))
            if set(MOVIELENS_LOGS) & set(members):
                return _read_movielens(path.name, members)
            tables = [info for info in files if _bare_suffix(PurePosixPath(info.filename)) in TABLE_SUFFIXES]
            if len(tables) == 1:
                source = f"{path.name}/{PurePosixPath(tables[0].filename).name}"
                events, file_format = _read_table_content(_zip_member(archive, tables[0], source),
                                                          _bare_suffix(PurePosixPath(tables[0].filename)) in JSON_SUFFIXES,
                                                          delimiter, header)
                return _table_log(events, source, file_format)
            raise DataError(f"{path.name}: not a zip I know; expected a MovieLens zip with u.data (ml-100k), ratings.dat "
                            "(ml-1m) or ratings.csv (ml-latest-small, ml-25m, ml-32m), an Excel workbook, or a zip "
                            f"holding one table; found: {', '.join(sorted(members)[:15]) or 'nothing'}")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
        raise DataError(f"{path.name}: not a readable zip archive: {err}") from err


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> _Content:
    def open_member():
        if info.file_size > MAX_DECOMPRESSED_BYTES:
            raise _too_big(source, f"unpacks to {_size(info.file_size)},")
        return archive.open(info)

    return _Content(source, open_member, compressed=True)


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


def _read_movielens(source: str, members: dict[str, _Content]) -> RawLog:
    """ml-100k, ml-1m (and ml-10m) or the ml-latest/ml-25m/ml-32m csv layout; `members` maps base name -> content."""
    roles = Columns("user_id", "item_id", "timestamp", "rating")
    if "u.data" in members:
        events = _read_delimited(members["u.data"], "\t", names=ML_RATING_COLUMNS, quote=False)
        catalog = _ml100k_catalog(members["u.item"]) if "u.item" in members else None
        return RawLog(events, catalog, source, "movielens-100k", roles)
    if "ratings.dat" in members:
        ratings = members["ratings.dat"]
        data = ratings.read(text=True).replace(b"::", b"\t")  # pyarrow takes one-byte separators only
        events = _read_delimited(_Content.of_bytes(data, ratings.source), "\t", names=ML_RATING_COLUMNS, quote=False)
        catalog = _ml1m_catalog(members["movies.dat"]) if "movies.dat" in members else None
        return RawLog(events, catalog, source, "movielens-1m", roles)
    if "ratings.csv" in members:
        events, _ = _read_text_table(members["ratings.csv"])
        catalog = None
        if "movies.csv" in members:
            catalog = _standard_catalog(_read_text_table(members["movies.csv"])[0], members["movies.csv"].source)
        return RawLog(events, catalog, source, "movielens-csv", Columns("userId", "movieId", "timestamp", "rating"))
    raise DataError(f"{source}: not a MovieLens layout I know; expected u.data (ml-100k), ratings.dat (ml-1m) or "
                    f"ratings.csv (ml-latest-small, ml-25m, ml-32m); found: {', '.join(sorted(members)[:15]) or 'nothing'}")


def _ml100k_catalog(content: _Content) -> pd.DataFrame:
    """u.item: id|title|release date|video release date|IMDb URL|19 genre flags, latin-1."""
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES]
    frame = _read_delimited(content, "|", _text_encoding(content.head, content.source, content.complete_head),
                            names=names, quote=False)
    flags = frame[list(ML100K_GENRES)].to_numpy() == 1
    genres = pd.Series("", index=frame.index, dtype="string")
    for column, genre in enumerate(ML100K_GENRES):  # 19 columns, each a vectorised step
        genres = genres + np.where(flags[:, column], ", " + genre, "")
    frame = frame.drop(columns=list(ML100K_GENRES))
    frame["genres"] = genres.str.removeprefix(", ").replace("", pd.NA)
    return _standard_catalog(frame, content.source)


def _ml1m_catalog(content: _Content) -> pd.DataFrame:
    """movies.dat: id::title::genres|separated, latin-1."""
    data = content.read(text=True)
    frame = _read_delimited(_Content.of_bytes(data.replace(b"::", b"\t"), content.source), "\t",
                            _text_encoding(data, content.source), names=["item_id", "title", "genres"], quote=False)
    return _standard_catalog(frame, content.source)


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


@dataclass(frozen=True)
class FoundRoles:
    """Each role's column (None where no rule found one), and how it was found: "by name", "by content: ...",
    "by position: ..." or "set by the format ..."; for a role left open, why (a sentence for a message)."""
    columns: dict
    how: dict
    ambiguous: tuple = ()  # roles that several columns could play

    @property
    def by_content(self) -> dict:
        """role -> how, for the roles whose column was found by its values."""
        return {role: how for role, how in self.how.items() if self.columns[role] and how.startswith("by content")}

    def require(self, source: str) -> Columns:
        """The roles as Columns; DataError if the user or the item is open, or several columns fit a role."""
        for role in ("user", "item", *self.ambiguous):
            if self.columns[role] is None:
                raise DataError(f"{source}: {self.how[role]}")
        return Columns(**self.columns)


def detect_roles(df: pd.DataFrame, source: str = "") -> Columns:
    """The user, item, timestamp and rating columns, as find_roles finds them; DataError if the user or
    the item is missing, or several columns fit a role."""
    source = source or df.attrs.get("source") or "the table"
    return find_roles(df, source).require(source)


def find_roles(frame: pd.DataFrame, source: str = "") -> FoundRoles:
    """Each role's column in a table with a header row. By name first (user_id, sku, timestamp, ... in any
    case); then, for what the names leave open, by content: a column of dates, or of epoch seconds or
    milliseconds from 1995 to 2100, is the timestamp; a column whose values repeat in runs, many rows each,
    is the user (logs are mostly written user by user); then the item is the remaining id column with the
    most distinct values. The rating is found by name only. Content is judged on the first rows."""
    source = source or frame.attrs.get("source") or "the table"
    names = [str(c) for c in frame.columns]
    columns, how, ambiguous = dict.fromkeys(ROLE_NAMES), {}, []
    for role, accepted in ROLE_NAMES.items():
        try:
            columns[role] = _find_column(frame.columns, accepted, role, source)
        except DataError as err:  # two columns have the role's name
            how[role] = str(err).removeprefix(f"{source}: ")
            ambiguous.append(role)
        else:
            if columns[role] is not None:
                how[role] = "by name"
    sample = frame.iloc[:CONTENT_SAMPLE_ROWS]
    free = [c for c in frame.columns if c not in columns.values() and _bare_name(c).lower() not in DESCRIPTIVE_NAMES]

    def pick(role: str, evidence: dict, rank) -> None:
        """The column whose evidence ranks highest; several equal ones leave the role open."""
        best = sorted(evidence, key=lambda c: rank(evidence[c]), reverse=True)
        if len(best) > 1 and rank(evidence[best[0]]) == rank(evidence[best[1]]):
            how[role] = (f"columns {best[0]!r} and {best[1]!r} could both be the {role} column ({evidence[best[0]][-1]}; "
                         f"{evidence[best[1]][-1]}); choose the {role} column explicitly")
            ambiguous.append(role)
        elif best:
            columns[role], how[role] = best[0], f"by content: {evidence[best[0]][-1]}"

    if "timestamp" not in how:
        times = {c: (why,) for c in free if (why := _time_evidence(frame[c]))}
        pick("timestamp", times, lambda evidence: 0)  # two columns of times: which is the event's, only a person knows
        free = [c for c in free if c not in times]
    ids = [c for c in free if _is_id_like(sample[c])]
    if "user" not in how:
        pick("user", {c: runs for c in ids if (runs := _run_evidence(sample[c]))}, lambda evidence: evidence[0])
        if "user" not in how:
            how["user"] = (f"no user column found among the columns {names}; expected one named "
                           f"{', '.join(USER_NAMES)} (any case), or one whose values repeat in runs, many rows each, "
                           "as in a log written user by user; choose the user column explicitly")
    if "item" not in how:
        if columns["user"] is not None:
            pick("item", {c: distinct for c in ids if c != columns["user"] and (distinct := _item_evidence(sample[c]))},
                 lambda evidence: evidence[0])
        if "item" not in how:
            how["item"] = (f"no item column found among the columns {names}; expected one named "
                           f"{', '.join(ITEM_NAMES)} (any case), or, besides the user's, an id column whose values "
                           "recur; choose the item column explicitly")
    return FoundRoles(columns, {role: how[role] for role in ROLE_NAMES if role in how}, tuple(ambiguous))


def _roles_by_position(frame: pd.DataFrame) -> FoundRoles | None:
    """A table without a header row: the user is the first column and the item the second (as in every
    headerless log format), a later column of dates or epoch times the timestamp, one of numbers from 0
    to 10 the rating. The Data page shows the guess for the user to correct."""
    columns = list(frame.columns)
    if len(columns) < 2:
        return None
    found = {"user": columns[0], "item": columns[1], "timestamp": None, "rating": None}
    how = {"user": "by position: the first column of a file without a header row",
           "item": "by position: the second column of a file without a header row"}
    for column in columns[2:]:
        if found["timestamp"] is None and (why := _time_evidence(frame[column])):
            found["timestamp"], how["timestamp"] = column, f"by content: {why}"
        elif found["rating"] is None and _looks_like_ratings(frame[column]):
            found["rating"], how["rating"] = column, "by content: numbers from 0 to 10"
    return FoundRoles(found, how)


def _time_evidence(values: pd.Series) -> str | None:
    """'epoch seconds from 2019-03-01 to 2021-12-30', 'dates from ...': what shows the column to be a time,
    or None. Numbers must be epoch seconds or milliseconds within EPOCH_YEARS (which ratings, counts and
    most ids are not); text must hold a four-digit year and read as dates; a constant is no event time."""
    present = values.dropna()
    if present.empty or pd.api.types.is_bool_dtype(values.dtype):
        return None
    first, last = (pd.Timestamp(f"{year}-01-01", tz="UTC") for year in EPOCH_YEARS)
    if pd.api.types.is_numeric_dtype(values.dtype):
        low, high = present.min(), present.max()
        for unit, per_second in (("epoch seconds", 1), ("epoch milliseconds", 1000)):
            if first.timestamp() * per_second <= low < high < last.timestamp() * per_second:
                low, high = (pd.Timestamp(number / per_second, unit="s") for number in (low, high))
                return f"{unit} from {low:%Y-%m-%d} to {high:%Y-%m-%d}"
        return None
    inferred = pd.api.types.infer_dtype(present.iloc[:CONTENT_SAMPLE_ROWS], skipna=True)
    if pd.api.types.is_datetime64_any_dtype(values.dtype) or inferred in ("date", "datetime"):  # Parquet, Excel, ISO dates
        kind, dates = ("dates" if inferred == "date" else "date-times"), pd.to_datetime(present, utc=True)
    elif inferred == "string":
        text = present.iloc[::max(1, len(present) // 200)].astype(str).str.strip()  # spread over the column
        if not text.str.contains(YEAR_IN_TEXT).all():
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            kind, dates = "dates", pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
        if dates.isna().any():
            return None
    else:
        return None
    low, high = dates.min(), dates.max()
    if not first <= low < high < last:
        return None
    return f"{kind} from {low:%Y-%m-%d} to {high:%Y-%m-%d}"


def _is_id_like(values: pd.Series) -> bool:
    """Integers, or words (text without spaces): what ids look like. Not a fraction, a rating, a sentence,
    or a list."""
    present = values.dropna()
    if present.empty or pd.api.types.is_bool_dtype(values.dtype) or _looks_like_ratings(values):
        return False
    if pd.api.types.is_integer_dtype(values.dtype):
        return True
    if pd.api.types.is_float_dtype(values.dtype):
        return bool((present % 1 == 0).all())
    if pd.api.types.infer_dtype(present, skipna=True) != "string":
        return False
    return bool(present.str.contains(r"\s", regex=True).mean() <= 0.1)


def _run_evidence(values: pd.Series) -> tuple[float, str] | None:
    """(share of rows that repeat the row above, why) for a column that looks like a log's user: its values
    come in runs, many rows each, far more often than two rows picked at random agree; else None."""
    codes, distinct = pd.factorize(values)
    codes = codes[codes >= 0]
    if len(distinct) < 2 or len(codes) < 2 * len(distinct):
        return None
    repeats = float(np.mean(codes[1:] == codes[:-1]))
    chance = float(np.sum((np.bincount(codes) / len(codes)) ** 2))  # of a row agreeing with a random other row
    if repeats < MIN_RUN_SHARE or repeats < RUN_CONTRAST * chance:
        return None
    return repeats, (f"its values repeat in runs: {repeats:.0%} of rows repeat the row above, "
                     f"{len(codes) / len(distinct):.1f} rows per value")


def _item_evidence(values: pd.Series) -> tuple[int, str] | None:
    """(distinct values, why) for an id column whose values recur and are many; else None. A value on
    almost every row is an event id or a time; a few values are a type or a count."""
    codes, distinct = pd.factorize(values)
    rows = int(np.count_nonzero(codes >= 0))
    if len(distinct) > 0.9 * rows or len(distinct) < min(MIN_ITEMS, rows / 3):
        return None
    return len(distinct), (f"the other id column, with the most distinct values ({len(distinct):,} in "
                           f"{'the first ' * (len(values) == CONTENT_SAMPLE_ROWS)}{rows:,} rows)")


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


def guess_roles(raw: RawLog) -> FoundRoles:
    """Each role's column, and how it was found: as the format fixes it, else by position (no header row),
    else by name and content (find_roles). Role by role, so that a missing or ambiguous column leaves only
    that role open (None) for the user to choose, instead of failing them all."""
    return raw.found_roles
