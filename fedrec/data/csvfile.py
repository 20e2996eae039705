"""Delimited text tables: the generic CSV loader and the parsing helpers every text loader shares.

Parsing is vectorised (pandas' C reader); only when that fails is the file scanned line by line, so that the
error can name the first bad line instead of echoing a pandas message.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from fedrec.data.dataset import InteractionLog
from fedrec.errors import ConfigError, DatasetError

FieldKind = Literal["int", "float", "token"]
_PANDAS_DTYPE = {"int": np.int64, "float": np.float64, "token": str}
_INTEGER_TOKEN = r"-?(?:0|[1-9][0-9]{0,17})"  # fits in int64


def require_file(path: Path) -> Path:
    """`path` if it is a file; otherwise a DatasetError naming it."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    return path


def bad_line(path: Path, line_no: int, expected: str, text: str) -> DatasetError:
    """The one-line error for a malformed line: file, line number, what was expected, what was found."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    return DatasetError(f"{path} line {line_no}: expected {expected}, got {shown!r}")


def read_header(path: Path, sep: str) -> list[str]:
    """The first line's field names."""
    with require_file(path).open(encoding="utf-8-sig", errors="replace", newline="") as f:
        first = f.readline().rstrip("\r\n")
    if not first:
        raise DatasetError(f"{path}: empty file; expected a header line")
    return next(_split_lines([first], sep))[1]


def read_table(path: Path, sep: str, fields: dict[str, tuple[int, FieldKind]], n_fields: int, expected: str,
               header: bool = False) -> dict[str, np.ndarray]:
    """Columns `fields` (name -> (position, kind)) of a table whose every line has exactly `n_fields` fields.

    Token columns come back as int64 when every value is an integer, otherwise as strings.
    """
    require_file(path)
    try:
        frame = _read_fast(path, sep, fields, header)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _diagnose(path, sep, fields, n_fields, expected, header, reason=str(exc)) from None
    tokens = [pos for pos, kind in fields.values() if kind == "token"]
    if len(frame) == 0 or frame.shape[1] != n_fields or any((frame[p] == "").any() for p in tokens):
        raise _diagnose(path, sep, fields, n_fields, expected, header, reason="short line or empty field")
    return {name: _column(frame[pos], kind) for name, (pos, kind) in fields.items()}


def _read_fast(path: Path, sep: str, fields: dict[str, tuple[int, FieldKind]], header: bool) -> pd.DataFrame:
    """One pandas C-engine read; `::` (MovieLens .dat) is read as `:` with every other field empty."""
    step = 2 if sep == "::" else 1
    frame = pd.read_csv(
        path, sep=":" if step == 2 else sep, header=None, skiprows=int(header), engine="c", keep_default_na=False,
        dtype={pos * step: _PANDAS_DTYPE[kind] for pos, kind in fields.values()},
    )
    if step == 2:
        if (frame.iloc[:, 1::2].astype(str) != "").to_numpy().any():
            raise ValueError("a single ':' inside a field")
        frame = frame.iloc[:, ::2]
        frame = frame.set_axis(range(frame.shape[1]), axis=1)
    return frame


def _column(values: pd.Series, kind: FieldKind) -> np.ndarray:
    if kind != "token":
        return values.to_numpy(dtype=_PANDAS_DTYPE[kind])
    if values.str.fullmatch(_INTEGER_TOKEN).all():
        return values.astype(np.int64).to_numpy()
    return values.to_numpy(dtype=str)


def _split_lines(lines: Iterator[str] | list[str], sep: str) -> Iterator[tuple[int, list[str], str]]:
    """(line number, fields, raw text) per non-blank line; csv quoting applies for one-character separators."""
    if len(sep) == 1:
        reader = csv.reader(lines, delimiter=sep)
        for row in reader:
            if row:
                yield reader.line_num, row, sep.join(row)
        return
    for line_no, line in enumerate(lines, 1):
        text = line.rstrip("\r\n")
        if text:
            yield line_no, text.split(sep), text


def _diagnose(path: Path, sep: str, fields: dict[str, tuple[int, FieldKind]], n_fields: int, expected: str,
              header: bool, reason: str) -> DatasetError:
    """The error for the first line that breaks the format (found by a slow scan, run only on failure)."""
    n_rows = 0
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
        for line_no, row, text in _split_lines(f, sep):
            if header and line_no == 1:
                continue
            n_rows += 1
            if len(row) != n_fields or not all(_parses(row[pos], kind) for pos, kind in fields.values()):
                return bad_line(path, line_no, expected, text)
    if n_rows == 0:
        return DatasetError(f"{path}: no data lines; expected {expected}")
    return DatasetError(f"{path}: cannot be read as {expected} ({reason.splitlines()[0] if reason else 'unknown'})")


def _parses(value: str, kind: FieldKind) -> bool:
    if kind == "token":
        return value != ""
    try:
        (int if kind == "int" else float)(value)
    except ValueError:
        return False
    return True


def read_csv(path: Path, columns: dict[str, str], sep: str = ",") -> InteractionLog:
    """A delimited file with a header line; `columns` maps `user`, `item` (and optionally `timestamp`) to its names."""
    unknown = set(columns) - {"user", "item", "timestamp"}
    missing_roles = {"user", "item"} - set(columns)
    if unknown or missing_roles:
        raise ConfigError(f"columns must map user, item and optionally timestamp to column names; "
                          f"got {sorted(columns)} (pass --columns user=...,item=...[,timestamp=...])")
    names = read_header(path, sep)
    positions = {}
    for role, column in columns.items():
        if column not in names:
            raise DatasetError(f"{path}: no column {column!r} (for {role}); the file's columns are {', '.join(names)}")
        positions[role] = names.index(column)
    kinds: dict[str, FieldKind] = {"user": "token", "item": "token", "timestamp": "float"}
    got = read_table(path, sep, {role: (pos, kinds[role]) for role, pos in positions.items()}, len(names),
                     expected=f"{len(names)} fields separated by {sep!r} ({', '.join(names)})", header=True)
    return InteractionLog(got["user"], got["item"], got.get("timestamp"))
