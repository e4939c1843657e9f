"""Read a user's CSV of a univariate numeric series, or say exactly what to fix.

Only the csv module and numpy: nothing in the file is ever evaluated or unpickled. Every
rejection is an `UploadError` whose message tells the user what to change in the file.

Decisions worth knowing:
- Delimiters ',', ';', tab, '|' and runs of spaces are sniffed from the first rows: the one
  that splits rows into the same number of cells, most of them numbers, wins.
- With ';', tab, '|' or spaces as delimiter, decimal commas (1,5) are read as 1.5 (a note says
  so). A file whose only separator is ',' is read the CSV way: "1,5" is two columns, 1 and 5;
  a note explains how to make decimal commas unambiguous (use ';' between columns).
- In a comma-separated file a cell can hold a comma only inside quotes: "0,5" is a decimal
  comma, read as 0.5 (a note says so). Quoted "1,500" alone is ambiguous (1.5, or 1500 with a
  thousands separator): the message says how to make it plain.
- A first row with non-numbers in numeric columns is a header.
- Several numeric columns: the first that is not an index is used and the others are listed;
  an index is a column of at least 3 whole numbers counting by a fixed step (day 1, 2, 3, ...).
- `column` picks by header name, or by 0-based position among all the file's columns.
"""
from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from models import limits

DELIMITERS = ("\t", ";", "|", ",", " ")  # preference order on ties; " " means any whitespace
DELIMITER_NAMES = {"\t": "tab", ";": "semicolon", "|": "pipe", ",": "comma", " ": "spaces"}
SNIFF_ROWS = 50
SHOW_ROWS = 5  # rows quoted in an error message
MAX_COLUMNS = 1000  # a univariate series needs one; bounds the padding of ragged rows
DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+([eE][+-]?\d+)?$")
THOUSANDS_LIKE = re.compile(r"^[+-]?[1-9]\d{0,2},\d{3}$")  # 1,500: 1.5 or 1500?
PLAIN_INT = re.compile(r"^\d+$")
CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


class UploadError(ValueError):
    """The upload cannot be used; the message says what to fix."""


@dataclass
class SeriesResult:
    values: np.ndarray                                  # float32, 1-D, all finite
    columns: list[str] = field(default_factory=list)   # numeric candidate columns
    column: str = ""                                    # the one read into `values`
    notes: list[str] = field(default_factory=list)


def parse_series(data: bytes, column: str | int | None = None) -> SeriesResult:
    notes: list[str] = []
    text = _decode(data, notes)
    rows = _read_rows(text, notes)
    header, body = _split_header(rows)
    if len(body) > limits.MAX_UPLOAD_ROWS:
        _too_many_rows(len(body))
    names = _column_names(header, len(rows[0].cells))
    numeric = [i for i in range(len(names)) if _mostly_numeric(body, i, rows.delimiter)]
    if not numeric:
        raise UploadError("No column of numbers found: the file needs one column whose rows "
                          "are numbers like 0.5 or -3 (a header row on top is fine).")
    # Skipped by default: index columns, unless the only alternative is constant (1,5 2,5:
    # decimal commas read as two columns, where the "index" is the better guess).
    index = [i for i in numeric if _is_index(body, i, rows.delimiter)]
    if all(_is_constant(body, i, rows.delimiter) for i in numeric if i not in index):
        index = []
    idx = _pick_column(column, names, numeric, index)
    values = _column_values(body, idx, names[idx], rows.delimiter, notes)
    if len(values) < 2:
        raise UploadError("The file has only one row of numbers: put the series in a column, "
                          "one value per row (at least 2 rows).")
    notes += _layout_notes(rows, header, names, numeric, idx, body)
    if column is None and index and idx not in index:
        skipped = ", ".join(repr(names[i]) for i in index)
        notes.append(f"Skipped {skipped}: it counts by a fixed step (an index, not a series).")
    return SeriesResult(values, [names[i] for i in numeric], names[idx], notes)


def check_length(n_values: int, seq_len: int, min_sequences: int = 2) -> None:
    """Raise unless the series can be cut into `min_sequences` sequences of `seq_len` values."""
    need = seq_len * min_sequences
    if n_values < need:
        raise UploadError(f"The series has {n_values} values, but you need at least {need} "
                          f"values for {min_sequences} sequences of length {seq_len}: upload a "
                          f"longer series or choose a shorter sequence length.")


# ---- bytes -> text ----------------------------------------------------------------------------
def _decode(data: bytes, notes: list[str]) -> str:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UploadError("Expected the file's bytes.")
    data = bytes(data)
    if len(data) > limits.MAX_UPLOAD_BYTES:
        raise UploadError(f"The file is {_mb(len(data))}; the limit is "
                          f"{_mb(limits.MAX_UPLOAD_BYTES)}: upload a shorter series.")
    if not data.strip():
        raise UploadError("The file is empty: upload a CSV with one number per row.")
    text = _as_text(data, notes)
    if CONTROL.search(text):
        raise UploadError("This looks like a binary file, not text: export your data as CSV "
                          "(comma-separated values) and upload that.")
    return text


def _as_text(data: bytes, notes: list[str]) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" export
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    elif b"\x00" not in data:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            pass
        try:
            text = data.decode("cp1252")
            notes.append("The file is not UTF-8; read it as Windows-1252 (Western European).")
            return text
        except UnicodeDecodeError:
            pass
    raise UploadError("This looks like a binary file, not text (for example an Excel .xlsx): "
                      "save it as CSV (comma-separated values) and upload that.")


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


# ---- text -> rows -----------------------------------------------------------------------------
@dataclass
class _Row:
    line: int         # 1-based line number in the file
    cells: list[str]


class _Rows(list):
    delimiter: str = ","


def _read_rows(text: str, notes: list[str]) -> _Rows:
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise UploadError("The file is empty: upload a CSV with one number per row.")
    if len(lines) > limits.MAX_UPLOAD_ROWS + 1:  # checked early (before splitting); +1: a header
        _too_many_rows(len(lines))
    delim = _sniff([ln for _, ln in lines[:SNIFF_ROWS]])
    rows = _Rows(_Row(i, _split(ln, delim)) for i, ln in lines)
    rows.delimiter = delim
    width = max(len(r.cells) for r in rows)
    if width > MAX_COLUMNS:
        raise UploadError(f"A row has {width} columns (the limit is {MAX_COLUMNS}): put the "
                          f"series in a column, one value per row.")
    for r in rows:
        r.cells += [""] * (width - len(r.cells))
    if delim == ",":
        _quoted_decimal_commas(rows, notes)
    if width > 1:
        notes.append(f"Columns separated by {DELIMITER_NAMES[delim]}.")
    return rows


def _quoted_decimal_commas(rows: _Rows, notes: list[str]) -> None:
    """Comma-separated: a cell holds a comma only if it was quoted, so "0,5" is one number
    with a decimal comma. Read them as decimals, unless every one could be a thousands
    separator ("1,500"): then say how to write the file unambiguously."""
    cells = [(r, j) for r in rows for j, c in enumerate(r.cells) if DECIMAL_COMMA.match(c)]
    if not cells:
        return
    if all(THOUSANDS_LIKE.match(r.cells[j]) for r, j in cells):
        r, j = cells[0]
        raise UploadError(f"Line {r.line} has the quoted number {r.cells[j]!r}: is that a "
                          f"decimal comma ({r.cells[j].replace(',', '.')}) or a thousands "
                          f"separator ({r.cells[j].replace(',', '')})? Save the file without "
                          f"thousands separators, or with ';' between columns and decimal "
                          f"commas.")
    for r, j in cells:
        r.cells[j] = r.cells[j].replace(",", ".")
    notes.append('Read decimal commas in quoted cells: "0,5" means 0.5.')


def _too_many_rows(n: int):
    raise UploadError(f"The file has {n} rows; the limit is {limits.MAX_UPLOAD_ROWS}: "
                      f"upload a shorter series.")


def _split(line: str, delim: str) -> list[str]:
    if delim == " ":
        return line.split()
    try:
        cells = next(csv.reader([line], delimiter=delim), [])
    except csv.Error as e:
        raise UploadError(f"Could not read the line {line[:40]!r} ({e}): save the file as "
                          f"plain CSV.") from None
    return [c.strip() for c in cells]


def _sniff(sample: list[str]) -> str:
    """The delimiter that gives every row the same number (> 1) of mostly numeric cells."""
    best, best_score = ",", (False, -1.0)
    for d in DELIMITERS:
        try:
            rows = [_split(ln, d) for ln in sample]
        except UploadError:  # e.g. a huge "cell": this delimiter is not the one
            continue
        width, count = Counter(len(r) for r in rows).most_common(1)[0]
        consistent = width > 1 and count >= 0.9 * len(rows)
        cells = [c for r in rows[1:] or rows for c in r]  # skip a possible header
        numeric = sum(_number(c, d) is not None for c in cells) / max(1, len(cells))
        score = (consistent, numeric)
        if score > best_score:
            best, best_score = d, score
    return best if best_score[0] else ","


def _number(cell: str, delim: str) -> float | None:
    """The cell as a float (nan and inf included), or None if it is not a number."""
    s = cell.strip()
    if delim != "," and DECIMAL_COMMA.match(s):
        s = s.replace(",", ".")
    if not s or "_" in s:  # float() accepts 1_000; a user file should not
        return None
    try:
        return float(s)
    except ValueError:
        return None


# ---- rows -> one column -----------------------------------------------------------------------
def _split_header(rows: _Rows) -> tuple[_Row | None, list[_Row]]:
    first, rest = rows[0], rows[1:]
    for i, cell in enumerate(first.cells):
        if _number(cell, rows.delimiter) is None and _mostly_numeric(rest, i, rows.delimiter):
            return first, rest
    if all(_number(c, rows.delimiter) is None for c in first.cells) and rest:
        return first, rest  # all text on top: a header even over bad columns
    return None, list(rows)


def _mostly_numeric(body: list[_Row], i: int, delim: str) -> bool:
    """At least half the cells are numbers: a column with a few typos is still offered (and
    its bad rows reported), rather than silently skipped."""
    hits = sum(_number(r.cells[i], delim) is not None for r in body)
    return bool(body) and hits * 2 >= len(body)


def _column_names(header: _Row | None, width: int) -> list[str]:
    names, seen = [], set()
    for i in range(width):
        name = header.cells[i].strip() if header is not None else ""
        name = name or f"column {i + 1}"
        if name in seen:
            name = f"{name} ({i + 1})"
        seen.add(name)
        names.append(name)
    return names


def _is_index(body: list[_Row], i: int, delim: str) -> bool:
    """At least 3 whole numbers counting by one fixed, nonzero step: 1, 2, 3 or 2000, 2005."""
    vals = [_number(r.cells[i], delim) for r in body]
    if len(vals) < 3 or any(v is None or not np.isfinite(v) or v != int(v) for v in vals):
        return False
    steps = {vals[k + 1] - vals[k] for k in range(len(vals) - 1)}
    return len(steps) == 1 and 0 not in steps


def _is_constant(body: list[_Row], i: int, delim: str) -> bool:
    return len({_number(r.cells[i], delim) for r in body}) <= 1


def _pick_column(column: str | int | None, names: list[str], numeric: list[int],
                 index: list[int] = ()) -> int:
    choices = ", ".join(repr(names[i]) for i in numeric)
    if column is None:  # the first that is not an index (all indices: the first)
        return next((i for i in numeric if i not in index), numeric[0])
    if isinstance(column, int) and not isinstance(column, bool):
        idx = column if 0 <= column < len(names) else None
    else:
        key = str(column).strip()
        idx = next((i for i, n in enumerate(names) if n == key), None)
        if idx is None:
            idx = next((i for i, n in enumerate(names) if n.lower() == key.lower()), None)
    if idx is None:
        raise UploadError(f"There is no column {column!r}: choose one of {choices}.")
    if idx not in numeric:
        raise UploadError(f"Column {names[idx]!r} is not numeric: choose one of {choices}.")
    return idx


def _column_values(body: list[_Row], idx: int, name: str, delim: str,
                   notes: list[str]) -> np.ndarray:
    raw = [_number(r.cells[idx], delim) for r in body]
    values = np.array([np.nan if v is None else v for v in raw], dtype=np.float64)
    with np.errstate(over="ignore"):
        values = values.astype(np.float32)  # beyond float32's range becomes inf: reported
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        shown = ", ".join(f"{body[k].line} ({body[k].cells[idx][:20] or 'empty'!r})"
                          for k in bad[:SHOW_ROWS])
        more = f" and {bad.size - SHOW_ROWS} more" if bad.size > SHOW_ROWS else ""
        cells = "cell that is not a finite number" if bad.size == 1 else \
            "cells that are not finite numbers"
        raise UploadError(f"Column {name!r} has {bad.size} {cells} (empty, text, NaN, inf or "
                          f"too large), on lines {shown}{more}: fix them or delete those rows.")
    if delim != "," and any(DECIMAL_COMMA.match(r.cells[idx]) for r in body):
        notes.append("Read decimal commas: 1,5 means 1.5.")
    return values


def _layout_notes(rows: _Rows, header, names, numeric, idx, body) -> list[str]:
    out = ["First row read as a header." if header is not None else "No header row."]
    if len(numeric) > 1:
        others = ", ".join(repr(names[i]) for i in numeric if i != idx)
        out.append(f"Using column {names[idx]!r}; other numeric columns: {others}.")
    if rows.delimiter == "," and len(names) == 2 and \
            all(PLAIN_INT.match(r.cells[1]) for r in body):
        out.append("Commas were read as column separators, so 1,5 is two columns (1 and 5). "
                   "If they are decimal commas, separate columns with ';' instead.")
    return out
