"""LightGCN/NGCF `train.txt` + `test.txt`: one line per user, `user item item ...`, no timestamps."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fedrec.data.csvfile import bad_line, require_file
from fedrec.data.dataset import InteractionLog
from fedrec.errors import DatasetError

_EXPECTED = "space-separated integers 'user item item ...'"


def read_lightgcn(path: Path) -> tuple[InteractionLog, InteractionLog]:
    """(train, test) logs from the folder holding `train.txt` and `test.txt`; rows in file order."""
    path = Path(path)
    return read_user_lines(path / "train.txt"), read_user_lines(path / "test.txt")


def read_user_lines(path: Path) -> InteractionLog:
    """One file of `user item item ...` lines; a user line with no items contributes no rows."""
    lines = require_file(path).read_text(encoding="utf-8", errors="replace").splitlines()
    tokens: list[str] = []
    counts = np.zeros(len(lines), dtype=np.int64)
    for i, line in enumerate(lines):
        fields = line.split()
        tokens += fields
        counts[i] = len(fields)
    try:
        values = np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        raise _first_bad_line(path, lines) from None
    if len(values) == 0:
        raise DatasetError(f"{path}: no data lines; expected lines of {_EXPECTED}")
    starts = np.cumsum(counts) - counts
    has_user = counts > 0
    users = np.repeat(values[starts[has_user]], counts[has_user] - 1)
    is_item = np.ones(len(values), dtype=bool)
    is_item[starts[has_user]] = False
    return InteractionLog(users=users, items=values[is_item], timestamps=None)


def _first_bad_line(path: Path, lines: list[str]) -> DatasetError:
    for line_no, line in enumerate(lines, 1):
        try:
            np.array(line.split(), dtype=np.int64)
        except (ValueError, OverflowError):
            return bad_line(path, line_no, _EXPECTED, line)
    return DatasetError(f"{path}: cannot be read as lines of {_EXPECTED}")
