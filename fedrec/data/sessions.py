"""Session pickles in the SR-GNN/GCE-GNN layout, loaded without ever executing code from the file.

`all_train_seq.txt` is a list of training sessions (each a list of int item ids); `test.txt` is a pair
(prefixes, labels). A pickle can name any importable callable and have it run on load, so the unpickler here
admits no globals at all: only lists, tuples, ints and strings can be built.
"""
from __future__ import annotations

import pickle
import reprlib
from pathlib import Path
from typing import Any

from fedrec.data.csvfile import require_file
from fedrec.errors import DatasetError

TRAIN_FILE, TEST_FILE = "all_train_seq.txt", "test.txt"


class _GlobalRefused(Exception):
    """Raised from inside the unpickler; turned into a DatasetError naming the file."""


class _NoGlobalsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise _GlobalRefused(f"{module}.{name}")


def load_plain_pickle(path: Path) -> Any:
    """Unpickle `path` with every global refused (so nothing in the file can run)."""
    with require_file(path).open("rb") as f:
        try:
            return _NoGlobalsUnpickler(f).load()
        except _GlobalRefused as refused:
            raise DatasetError(f"{path}: refusing to unpickle: it names the global {refused}; "
                               "expected only lists, tuples and ints") from None
        except Exception as exc:  # any failure of a malformed pickle stream is the file's fault
            raise DatasetError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); "
                               "expected a Python pickle of lists and ints") from None


# test.txt layouts by length: SR-GNN/GCE-GNN (prefixes, labels); DHCN/COTREC (session ids, prefixes, labels, times)
TEST_LAYOUTS = {2: ("(prefixes, labels)", 0, 1), 4: ("(session ids, prefixes, labels, timestamps)", 1, 2)}


def read_session_pickles(path: Path) -> tuple[list[list[int]], list[list[int]], list[int], str]:
    """(training sessions, test prefixes, test labels, the test file's layout) from the folder holding both pickles,
    structure-checked."""
    path = Path(path)
    train_file, test_file = path / TRAIN_FILE, path / TEST_FILE
    train = _int_lists(load_plain_pickle(train_file), train_file, "session")
    test = load_plain_pickle(test_file)
    if not isinstance(test, (tuple, list)) or len(test) not in TEST_LAYOUTS:
        raise DatasetError(f"{test_file}: expected {' or '.join(name for name, _, _ in TEST_LAYOUTS.values())}, "
                           f"got {_describe(test)}")
    layout, prefix_at, label_at = TEST_LAYOUTS[len(test)]
    prefixes = _int_lists(test[prefix_at], test_file, "prefix")
    labels = _ints(test[label_at], test_file, "labels")
    if len(prefixes) != len(labels):
        raise DatasetError(f"{test_file}: {len(prefixes)} prefixes but {len(labels)} labels; expected equal counts")
    return train, prefixes, labels, layout


def _int_lists(value: Any, path: Path, what: str) -> list[list[int]]:
    if not isinstance(value, list):
        raise DatasetError(f"{path}: expected a list of {what}s (lists of int), got {_describe(value)}")
    for index, seq in enumerate(value):
        _ints(seq, path, f"{what} {index}")
    return value


def _ints(value: Any, path: Path, what: str) -> list[int]:
    if not isinstance(value, list):
        raise DatasetError(f"{path}: {what}: expected a list of int, got {_describe(value)}")
    if not all(type(x) is int for x in value):
        bad = next(x for x in value if type(x) is not int)
        raise DatasetError(f"{path}: {what}: expected int item ids, found {_describe(bad)}")
    return value


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {reprlib.repr(value)}"
