"""Dataset names and paths -> `Split`: the known datasets, the data root, and format detection for paths."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from fedrec.data import synthetic
from fedrec.data.csvfile import read_csv
from fedrec.data.dataset import Split
from fedrec.data.lightgcn import read_lightgcn
from fedrec.data.movielens import RATING_FILES, find_ratings_file, read_movielens
from fedrec.data.recbole import read_atomic
from fedrec.data.sessions import TEST_FILE, TRAIN_FILE, read_session_pickles
from fedrec.data.splits import leave_last_out, predefined_cf_split, session_split
from fedrec.errors import ConfigError, DatasetError

BUILT_IN = "built-in"
_PICKLE_MAGIC = b"\x80"  # every pickle of protocol 2+ starts with PROTO


@dataclass(frozen=True)
class Options:
    """The loading settings that some formats use; a setting given to a format that has no use for it is an error."""

    seed: int = 0
    valid_fraction: float = 0.1
    min_rating: float | None = None
    columns: dict[str, str] | None = None


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    location: str  # folder path, or "built-in"
    available: bool


Loader = Callable[[Path, str, Options], Split]


def _movielens(path: Path, name: str, opts: Options) -> Split:
    return leave_last_out(read_movielens(path, opts.min_rating), name)


def _lightgcn(path: Path, name: str, opts: Options) -> Split:
    train, test = read_lightgcn(path)
    return predefined_cf_split(train, test, name, valid_fraction=opts.valid_fraction, seed=opts.seed)


def _sessions(path: Path, name: str, opts: Options) -> Split:
    train, prefixes, labels, layout = read_session_pickles(path)
    split = session_split(train, prefixes, labels, name=name, valid_fraction=opts.valid_fraction)
    return replace(split, description=f"{split.description}; {TEST_FILE} read as {layout}")


def _recbole(path: Path, name: str, opts: Options) -> Split:
    return leave_last_out(read_atomic(path), name)


def _csv(path: Path, name: str, opts: Options) -> Split:
    if opts.columns is None:
        raise ConfigError(f"{path}: a CSV file needs its column names; "
                          "pass --columns user=...,item=...[,timestamp=...]")
    return leave_last_out(read_csv(path, opts.columns), name)


def _synthetic(name: str, opts: Options) -> Split:
    """The generator with its defaults: a fixed dataset, so runs with different seeds see the same data."""
    return leave_last_out(synthetic.generate(), name)


def _synthetic_3k(name: str, opts: Options) -> Split:
    """Large enough that device tiers of 4, 8 and 16 columns differ by more than their users' sampling noise, with
    tastes of 16 factors (centralised MF: Recall@20 rises with width up to 16; BENCHMARKS.md, tier ordering)."""
    return leave_last_out(synthetic.generate(n_users=3000, n_items=1000, dim=16), name)


@dataclass(frozen=True)
class _Known:
    folder: str  # under the data root
    description: str
    loader: Loader


BUILT_IN_DATASETS: dict[str, tuple[str, Callable[[str, Options], Split]]] = {
    "synthetic": ("generated: 200 users, 500 items, power-law popularity, drifting tastes; leave-last-out",
                  _synthetic),
    "synthetic-3k": ("generated as `synthetic`, 3,000 users, 1,000 items, 16 taste factors; leave-last-out "
                     "(the default scenario's data)", _synthetic_3k),
}
KNOWN: dict[str, _Known] = {
    "ml-100k": _Known("movielens-100k", "MovieLens 100K ratings as implicit feedback; leave-last-out", _movielens),
    "gowalla": _Known("gowalla-lightgcn", "Gowalla check-ins, LightGCN's own train/test split", _lightgcn),
    "tmall": _Known("tmall-gcegnn", "Tmall sessions, GCE-GNN's own test pairs", _sessions),
    "diginetica": _Known("diginetica-srgnn", "Diginetica sessions, SR-GNN's own test pairs", _sessions),
}


def _root_candidates() -> list[Path]:
    """Where the data root may be: $FEDREC_DATA alone if set, else ../shared/data from the cwd and from the repo."""
    if os.environ.get("FEDREC_DATA"):
        return [Path(os.environ["FEDREC_DATA"]).expanduser()]
    repo = Path(__file__).resolve().parents[2]
    return [Path.cwd() / ".." / "shared" / "data", repo / ".." / "shared" / "data"]


def data_root() -> Path | None:
    """The first existing data root candidate (None if none exists)."""
    return next((p.resolve() for p in _root_candidates() if p.is_dir()), None)


def known_datasets() -> list[DatasetInfo]:
    root = data_root()
    infos = [DatasetInfo(name, description, BUILT_IN, True) for name, (description, _) in BUILT_IN_DATASETS.items()]
    for name, known in KNOWN.items():
        folder = (root or _root_candidates()[0].resolve()) / known.folder
        infos.append(DatasetInfo(name, known.description, str(folder), root is not None and folder.is_dir()))
    return infos


def load_dataset(name_or_path: str, *, seed: int = 0, valid_fraction: float = 0.1, min_rating: float | None = None,
                 columns: dict[str, str] | None = None) -> Split:
    """A known dataset by name, or any supported file/folder by path (format detected from its files)."""
    opts = Options(seed, valid_fraction, min_rating, columns)
    if name_or_path in BUILT_IN_DATASETS:
        _, generate = BUILT_IN_DATASETS[name_or_path]
        _check_options(name_or_path, None, opts)
        return generate(name_or_path, opts)
    if name_or_path in KNOWN:
        known = KNOWN[name_or_path]
        _check_options(name_or_path, known.loader, opts)
        return known.loader(_known_folder(name_or_path, known), name_or_path, opts)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        names = ", ".join([*BUILT_IN_DATASETS, *KNOWN])
        raise DatasetError(f"unknown dataset {name_or_path!r}: not a known name ({names}) and no such file or folder")
    loader, target = _detect(path)
    _check_options(str(path), loader, opts)
    return loader(target, _name_of(path), opts)


def _name_of(path: Path) -> str:
    """A known dataset's name when `path` is its folder (so that its tuned config sections apply), else the
    file's stem or the folder's name."""
    if path.is_dir():
        by_folder = {known.folder: name for name, known in KNOWN.items()}
        if path.resolve().name in by_folder:
            return by_folder[path.resolve().name]
    return path.stem if path.is_file() else path.resolve().name


def _known_folder(name: str, known: _Known) -> Path:
    root = data_root()
    if root is None or not (root / known.folder).is_dir():
        looked = ", ".join(dict.fromkeys(str((p / known.folder).resolve()) for p in _root_candidates()))
        raise DatasetError(f"dataset {name!r} not found; looked in {looked}; run `fedrec fetch-data {name}`, or set "
                           f"FEDREC_DATA to the folder that holds {known.folder}/")
    return root / known.folder


def config_name(name_or_path: str) -> str:
    """The name a dataset's config sections go by: a known dataset's name, also when given by its folder's path."""
    path = Path(name_or_path).expanduser()
    if name_or_path in BUILT_IN_DATASETS or name_or_path in KNOWN or not path.is_dir():
        return name_or_path
    return _name_of(path) if _name_of(path) in KNOWN else name_or_path


def kind_of(name_or_path: str) -> str | None:
    """Whether a dataset is sessions or user histories ("session"/"cf"), known without loading it (from its name,
    or its files' names); None when it cannot be told (the loader will say why)."""
    if name_or_path in BUILT_IN_DATASETS:
        return "cf"
    if name_or_path in KNOWN:
        return "session" if KNOWN[name_or_path].loader is _sessions else "cf"
    try:
        loader, _ = _detect(Path(name_or_path).expanduser())
    except (DatasetError, OSError):
        return None
    return "session" if loader is _sessions else "cf"


def _detect(path: Path) -> tuple[Loader, Path]:
    """The loader for a user-given file or folder, recognised by file names and (for .txt) content."""
    if path.is_file():
        if path.name in RATING_FILES:
            return _movielens, path
        if path.suffix in (".inter", ".csv"):
            return (_recbole if path.suffix == ".inter" else _csv), path
        raise DatasetError(f"{path}: unrecognised file; expected a .inter or .csv file, or one of "
                           f"{', '.join(RATING_FILES)}")
    if find_ratings_file(path) is not None:
        return _movielens, path
    if _first_byte(path / TRAIN_FILE) == _PICKLE_MAGIC and _first_byte(path / TEST_FILE) == _PICKLE_MAGIC:
        return _sessions, path
    if all(_first_byte(path / name) not in (None, _PICKLE_MAGIC) for name in ("train.txt", "test.txt")):
        return _lightgcn, path
    inter_files = sorted(path.glob("*.inter"))
    if len(inter_files) == 1:
        return _recbole, inter_files[0]
    found = ", ".join(sorted(p.name for p in path.iterdir())[:20]) or "nothing"
    raise DatasetError(f"{path}: unrecognised dataset folder (found {found}); expected {'/'.join(RATING_FILES)} "
                       f"(MovieLens), train.txt+test.txt (LightGCN), {TRAIN_FILE}+{TEST_FILE} pickles (sessions) "
                       "or one .inter file (RecBole)")


def _first_byte(path: Path) -> bytes | None:
    """The file's first byte (None if it is missing or empty)."""
    if not path.is_file():
        return None
    with path.open("rb") as f:
        return f.read(1) or None


def _check_options(where: str, loader: Loader | None, opts: Options) -> None:
    """Reject settings the format ignores, so that a mistyped run does not silently load something else."""
    if opts.min_rating is not None and loader is not _movielens:
        raise ConfigError(f"{where}: min_rating applies only to MovieLens ratings")
    if opts.columns is not None and loader is not _csv:
        raise ConfigError(f"{where}: columns apply only to .csv files")
