"""MovieLens ratings in the GroupLens layouts: 100K `u.data`, 1M/10M `ratings.dat`, 20M/25M/latest `ratings.csv`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fedrec.data.csvfile import FieldKind, read_table
from fedrec.data.dataset import InteractionLog
from fedrec.errors import DatasetError

RATING_FILES = ("u.data", "ratings.dat", "ratings.csv")
_FIELDS: dict[str, tuple[int, FieldKind]] = {
    "user": (0, "int"), "item": (1, "int"), "rating": (2, "float"), "timestamp": (3, "int"),
}
# suffix -> (separator, has header, how the separator is described in errors)
_LAYOUTS = {".dat": ("::", False, "'::'-separated"), ".csv": (",", True, "comma-separated")}
_TAB_LAYOUT = ("\t", False, "tab-separated")


def find_ratings_file(folder: Path) -> Path | None:
    """The first MovieLens ratings file present in `folder` (None if there is none)."""
    return next((folder / name for name in RATING_FILES if (folder / name).is_file()), None)


def read_movielens(path: Path, min_rating: float | None = None) -> InteractionLog:
    """Every rating is an interaction (implicit feedback); with `min_rating`, only ratings >= it are kept."""
    path = Path(path)
    if path.is_dir():
        found = find_ratings_file(path)
        if found is None:
            raise DatasetError(f"{path}: no MovieLens ratings file; expected one of {', '.join(RATING_FILES)}")
        path = found
    sep, header, described = _LAYOUTS.get(path.suffix, _TAB_LAYOUT)
    got = read_table(path, sep, _FIELDS, n_fields=4, header=header,
                     expected=f"4 {described} numbers (user item rating timestamp)")
    keep = np.ones(len(got["user"]), dtype=bool) if min_rating is None else got["rating"] >= min_rating
    return InteractionLog(got["user"][keep], got["item"][keep], got["timestamp"][keep])
