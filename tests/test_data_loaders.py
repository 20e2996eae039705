"""Loaders, the synthetic generator, the dataset registry and the splits they feed."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from realdata import DATA, real_data

from fedrec.data.csvfile import read_csv
from fedrec.data.dataset import InteractionLog
from fedrec.data.lightgcn import read_lightgcn
from fedrec.data.movielens import read_movielens
from fedrec.data.recbole import read_atomic
from fedrec.data.registry import known_datasets, load_dataset
from fedrec.data.sessions import load_plain_pickle, read_session_pickles
from fedrec.data.splits import leave_last_out, predefined_cf_split, session_pairs, session_split
from fedrec.data.synthetic import generate
from fedrec.errors import ConfigError, DatasetError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def write_sessions(folder: Path, train: object, test: object) -> Path:
    (folder / "all_train_seq.txt").write_bytes(pickle.dumps(train, protocol=3))
    (folder / "test.txt").write_bytes(pickle.dumps(test, protocol=3))
    return folder


# --- MovieLens -------------------------------------------------------------------------------------------------------

def test_movielens_u_data(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t10\t5\t100\n2\t20\t1\t200\n1\t30\t3\t300\n")
    log = read_movielens(tmp_path)  # a folder is searched for the ratings file
    assert log.users.tolist() == [1, 2, 1]
    assert log.items.tolist() == [10, 20, 30]
    assert log.timestamps.tolist() == [100, 200, 300]
    assert read_movielens(tmp_path / "u.data", min_rating=3).items.tolist() == [10, 30]


def test_movielens_ratings_dat_and_csv(tmp_path: Path) -> None:
    dat = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    assert read_movielens(dat).items.tolist() == [1193, 661]
    csv = write(tmp_path / "ratings.csv",
                "userId,movieId,rating,timestamp\n1,307,3.5,1256677221\n2,481,2.0,1256677456\n")
    log = read_movielens(csv, min_rating=3.0)
    assert (log.users.tolist(), log.items.tolist(), log.timestamps.tolist()) == ([1], [307], [1256677221])


@pytest.mark.parametrize("bad_line", ["abc\t1", "1\t2\t3", "1\t2\t3\t4\t5", "1\t2\tx\t4", "1\t2\t3\t"])
def test_movielens_bad_line_names_file_and_line(tmp_path: Path, bad_line: str) -> None:
    path = write(tmp_path / "u.data", f"1\t10\t5\t100\n\n2\t20\t1\t200\n{bad_line}\n1\t30\t3\t300\n")
    with pytest.raises(DatasetError, match=r"u\.data line 4: expected 4 tab-separated numbers") as err:
        read_movielens(path)
    assert repr(bad_line) in str(err.value) and "\n" not in str(err.value)


def test_movielens_dat_single_colon_and_missing(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.dat", "1::2::3::4\n5::6:7::8::9\n")
    with pytest.raises(DatasetError, match=r"ratings\.dat line 2: expected 4 '::'-separated"):
        read_movielens(path)
    with pytest.raises(DatasetError, match="file not found"):
        read_movielens(tmp_path / "u.data")
    with pytest.raises(DatasetError, match="no MovieLens ratings file"):
        read_movielens(tmp_path / "..")


# --- LightGCN --------------------------------------------------------------------------------------------------------

def test_lightgcn_files(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "0 5 3 9\n1 3\n2 7 8\n")
    write(tmp_path / "test.txt", "0 1\n1\n2 4 6\n")
    train, test = read_lightgcn(tmp_path)
    assert train.users.tolist() == [0, 0, 0, 1, 2, 2]
    assert train.items.tolist() == [5, 3, 9, 3, 7, 8]
    assert (test.users.tolist(), test.items.tolist()) == ([0, 2, 2], [1, 4, 6])
    assert train.timestamps is None and test.timestamps is None


def test_lightgcn_bad_line(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "0 5 3\n1 3 x4\n")
    write(tmp_path / "test.txt", "0 1\n")
    with pytest.raises(DatasetError, match=r"train\.txt line 2: expected space-separated integers.*'1 3 x4'"):
        read_lightgcn(tmp_path)
    with pytest.raises(DatasetError, match="file not found"):
        read_lightgcn(tmp_path / "nowhere")


# --- session pickles -------------------------------------------------------------------------------------------------

def test_session_pickles(tmp_path: Path) -> None:
    write_sessions(tmp_path, [[1, 2, 3], [2, 4]], ([[1], [1, 2]], [2, 3]))
    assert read_session_pickles(tmp_path) == ([[1, 2, 3], [2, 4]], [[1], [1, 2]], [2, 3], "(prefixes, labels)")


def test_dhcn_style_test_pickles_with_ids_and_times(tmp_path: Path) -> None:
    write_sessions(tmp_path, [[1, 2, 3], [2, 4]], ([7, 8], [[1], [1, 2]], [2, 3], [100, 200]))
    train, prefixes, labels, layout = read_session_pickles(tmp_path)
    assert (prefixes, labels) == ([[1], [1, 2]], [2, 3]) and "session ids" in layout


class _Payload:
    """Unpickling this would call a builtin: the restricted unpickler must refuse before anything runs."""

    def __reduce__(self) -> tuple:
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("payload, global_name", [
    (os.getcwd, os.getcwd.__module__ + ".getcwd"),
    (_Payload(), "builtins.eval"),
    ([1, _Payload()], "builtins.eval"),
    (InteractionLog(np.arange(2), np.arange(2)), "fedrec.data.dataset.InteractionLog"),
])
def test_unpickler_refuses_globals(tmp_path: Path, payload: object, global_name: str) -> None:
    path = tmp_path / "all_train_seq.txt"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(DatasetError, match=f"all_train_seq.txt: refusing to unpickle: it names the global "
                                           f"{global_name.replace('.', '[.]')}"):
        load_plain_pickle(path)


def test_unpickler_accepts_plain_data(tmp_path: Path) -> None:
    value = ([1, [2, 3]], (4, "five"), [])
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(value))
    assert load_plain_pickle(path) == value


@pytest.mark.parametrize("train, test, message", [
    ({"a": 1}, ([], []), r"all_train_seq\.txt: expected a list of sessions.*got dict"),
    ([[1, 2], [3, "4"]], ([], []), r"all_train_seq\.txt: session 1: expected int item ids, found str '4'"),
    ([[1, 2], [3, None]], ([], []), r"session 1: expected int item ids, found NoneType"),
    ([[1, 2]], ([[1]], [2], [3]), r"test\.txt: expected \(prefixes, labels\) or \(session ids, prefixes, labels, time"),
    ([[1, 2]], ([[1], [1]], [2]), r"test\.txt: 2 prefixes but 1 labels"),
    ([[1, 2]], ([[1]], [2.0]), r"test\.txt: labels: expected int item ids, found float"),
])
def test_session_structure_errors(tmp_path: Path, train: object, test: object, message: str) -> None:
    write_sessions(tmp_path, train, test)
    with pytest.raises(DatasetError, match=message):
        read_session_pickles(tmp_path)


def test_session_not_a_pickle(tmp_path: Path) -> None:
    write(tmp_path / "all_train_seq.txt", "1 2 3\n")
    with pytest.raises(DatasetError, match=r"all_train_seq\.txt: not a readable pickle"):
        read_session_pickles(tmp_path)


# --- RecBole and CSV -------------------------------------------------------------------------------------------------

def test_recbole_atomic(tmp_path: Path) -> None:
    path = write(tmp_path / "x.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                       "u1\ti9\t4\t10.5\nu2\ti8\t3\t11\n")
    log = read_atomic(path)
    assert (log.users.tolist(), log.items.tolist(), log.timestamps.tolist()) == (["u1", "u2"], ["i9", "i8"],
                                                                                 [10.5, 11.0])
    path = write(tmp_path / "s.inter", "session_id:token\titem_id:token\n1\t7\n1\t8\n")
    log = read_atomic(path)
    assert log.users.tolist() == [1, 1] and log.items.dtype == np.int64 and log.timestamps is None


def test_recbole_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "x.inter", "user_id:token\tproduct:token\n1\t2\n")
    with pytest.raises(DatasetError, match=r"x\.inter line 1: expected fields user_id \(or session_id\) and item_id"):
        read_atomic(path)
    path = write(tmp_path / "y.inter", "user_id\titem_id\n1\t2\n")
    with pytest.raises(DatasetError, match=r"y\.inter line 1: expected header fields 'name:type'"):
        read_atomic(path)
    path = write(tmp_path / "z.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\tnoon\n")
    with pytest.raises(DatasetError, match=r"z\.inter line 3: expected 3 tab-separated fields"):
        read_atomic(path)


def test_csv_with_column_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", 'who,what,"when"\nalice,"book, red",3\nbob,pen,1\n')
    log = read_csv(path, {"user": "who", "item": "what", "timestamp": "when"})
    assert log.users.tolist() == ["alice", "bob"] and log.items.tolist() == ["book, red", "pen"]
    assert log.timestamps.tolist() == [3.0, 1.0]
    with pytest.raises(DatasetError, match=r"log\.csv: no column 'uid' \(for user\); the file's columns are who, what"):
        read_csv(path, {"user": "uid", "item": "what"})
    with pytest.raises(ConfigError, match="--columns user="):
        read_csv(path, {"item": "what"})
    bad = write(tmp_path / "bad.csv", "u;i\n1;2\n3\n")
    with pytest.raises(DatasetError, match=r"bad\.csv line 3: expected 2 fields separated by ';' \(u, i\), got '3'"):
        read_csv(bad, {"user": "u", "item": "i"}, sep=";")


# --- synthetic generator ---------------------------------------------------------------------------------------------

def test_synthetic_deterministic() -> None:
    a = generate()
    b = generate()
    c = generate(seed=1)
    for x, y in [(a.users, b.users), (a.items, b.items), (a.timestamps, b.timestamps)]:
        np.testing.assert_array_equal(x, y)
    assert len(a) != len(c) or not np.array_equal(a.items, c.items)


def test_synthetic_shape() -> None:
    log = generate()
    counts = np.bincount(log.items, minlength=500)
    assert np.sort(counts)[::-1][:50].sum() > 0.3 * len(log)  # top 10% of items: a large share (uniform: 10%)
    activity = np.bincount(log.users, minlength=200)
    assert activity.min() >= 5 and activity.max() > 4 * np.median(activity)
    assert 20 <= activity.mean() <= 40
    order = np.lexsort((log.timestamps, log.users))
    same_user = log.users[order][1:] == log.users[order][:-1]
    assert (np.diff(log.timestamps[order])[same_user] > 0).all()
    assert log.timestamps.dtype.kind == "i"
    assert len(set(zip(log.users.tolist(), log.items.tolist()))) >= 0.99 * len(log)  # duplicates are rare


def test_synthetic_items_appear_over_time() -> None:
    log = generate()
    first_seen = np.full(500, np.iinfo(np.int64).max)
    np.minimum.at(first_seen, log.items, log.timestamps)
    first_seen = first_seen[first_seen < np.iinfo(np.int64).max]
    middle = np.median(log.timestamps)
    assert (first_seen > middle).mean() > 0.1
    # items are numbered in release order, so late ids first appear late
    ids = np.flatnonzero(np.bincount(log.items, minlength=500))
    assert np.corrcoef(ids, first_seen)[0, 1] > 0.5


def hit_rate(split_test, scores: np.ndarray, k: int = 20) -> float:
    hits = 0
    for history, target in zip(split_test.histories, split_test.targets):
        ranked = scores.astype(float).copy()
        ranked[history] = -np.inf
        hits += int(target[0] in np.argpartition(-ranked, k)[:k])
    return hits / len(split_test)


def test_popularity_beats_random_on_synthetic() -> None:
    split = leave_last_out(generate(), "synthetic")
    popularity = hit_rate(split.test, split.item_popularity())
    random = np.mean([hit_rate(split.test, np.random.default_rng(s).random(split.n_items)) for s in range(5)])
    assert random < 0.08
    assert popularity > 3 * random


# --- splits ----------------------------------------------------------------------------------------------------------

def test_leave_last_out_exact() -> None:
    log = InteractionLog(users=np.array(["b", "a", "a", "b", "a", "c", "a", "b"]),
                         items=np.array([10, 11, 12, 13, 14, 15, 16, 17]),
                         timestamps=np.array([5, 4, 1, 5, 3, 1, 2, 1]))
    split = leave_last_out(log, "tiny")
    # dense users a=0 b=1 c=2; items 10..17 -> 0..7; user a by time: 12 16 14 11; b: 17 10 13 (tie keeps file order)
    assert (split.n_users, split.n_items) == (3, 8)
    assert [s.tolist() for s in split.train_sequences] == [[2, 6], [7], [5]]
    assert sorted(zip(split.train_users.tolist(), split.train_items.tolist())) == [(0, 2), (0, 6), (1, 7), (2, 5)]
    assert split.valid.users.tolist() == [0, 1] and split.test.users.tolist() == [0, 1]
    assert [h.tolist() for h in split.valid.histories] == [[2, 6], [7]]
    assert [t.tolist() for t in split.valid.targets] == [[4], [0]]
    assert [h.tolist() for h in split.test.histories] == [[2, 6, 4], [7, 0]]
    assert [t.tolist() for t in split.test.targets] == [[1], [3]]
    assert [e.tolist() for e in split.test.exclude] == [[2, 6, 4], [7, 0]]


def test_session_split_exact() -> None:
    train = [[5, 7, 9], [7, 5], [9, 11, 5, 7]]
    split = session_split(train, [[5], [5, 7]], [7, 9], "tiny", valid_fraction=0.34)
    # items 5 7 9 11 -> 0 1 2 3; the last session (1 of 3) is validation
    assert split.item_ids.tolist() == [5, 7, 9, 11]
    assert [s.tolist() for s in split.train_sequences] == [[0, 1, 2], [1, 0]]
    assert split.train_users.tolist() == [0, 0, 0, 1, 1] and split.train_items.tolist() == [0, 1, 2, 1, 0]
    assert [h.tolist() for h in split.valid.histories] == [[2, 3, 0], [2, 3], [2]]
    assert [t.tolist() for t in split.valid.targets] == [[1], [0], [3]]
    assert [h.tolist() for h in split.test.histories] == [[0], [0, 1]]
    assert [t.tolist() for t in split.test.targets] == [[1], [2]]
    assert split.valid.exclude is None and split.test.users.tolist() == [-1, -1]
    with pytest.raises(DatasetError, match="1 test item ids never occur in training"):
        session_split(train, [[5]], [42], "tiny")


def test_predefined_split_keeps_a_training_item() -> None:
    train = InteractionLog(np.array([0, 0, 1, 1, 1]), np.array([1, 2, 1, 2, 3]))
    test = InteractionLog(np.array([0, 1]), np.array([3, 0]))
    split = predefined_cf_split(train, test, "tiny", valid_fraction=1.0)
    assert all(len(h) >= 1 for h in split.valid.histories)
    assert [len(t) for t in split.valid.targets] == [1, 2]
    assert [t.tolist() for t in split.test.targets] == [[3], [0]]


# --- registry --------------------------------------------------------------------------------------------------------

def test_registry_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DatasetError,
                       match="unknown dataset 'nope'.*synthetic, synthetic-3k, ml-100k, gowalla, tmall, diginetica"):
        load_dataset("nope")
    csv = write(tmp_path / "log.csv", "u,i\n1,2\n")
    with pytest.raises(ConfigError, match=r"pass --columns user=\.\.\.,item=\.\.\.\[,timestamp=\.\.\.\]"):
        load_dataset(str(csv))
    with pytest.raises(ConfigError, match="min_rating applies only to MovieLens"):
        load_dataset("synthetic", min_rating=4)
    monkeypatch.setenv("FEDREC_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match=f"dataset 'gowalla' not found; looked in {tmp_path}/gowalla-lightgcn; "
                                           "run `fedrec fetch-data gowalla`, or set FEDREC_DATA"):
        load_dataset("gowalla")
    assert [(d.name, d.available) for d in known_datasets()] == [
        ("synthetic", True), ("synthetic-3k", True), ("ml-100k", False), ("gowalla", False), ("tmall", False),
        ("diginetica", False)]
    assert known_datasets()[3].location == str(tmp_path / "gowalla-lightgcn")  # a real path, not a placeholder
    with pytest.raises(DatasetError, match="unrecognised dataset folder"):
        load_dataset(str(tmp_path))


def test_registry_detects_formats(tmp_path: Path) -> None:
    rows = "".join(f"{u}\t{i}\t4\t{t}\n" for t, (u, i) in enumerate([(1, 1), (1, 2), (1, 3), (2, 1), (2, 3), (2, 4)]))
    ml = tmp_path / "ml"
    ml.mkdir()
    write(ml / "u.data", rows)
    assert load_dataset(str(ml)).stats()["test_examples"] == 2
    lg = tmp_path / "lg"
    lg.mkdir()
    write(lg / "train.txt", "0 1 2 3\n1 2 3\n")
    write(lg / "test.txt", "0 4\n1 1\n")
    split = load_dataset(str(lg))
    assert (split.kind, split.n_users, split.n_items) == ("cf", 2, 4)  # items 1..4
    se = tmp_path / "se"
    se.mkdir()
    write_sessions(se, [[1, 2, 3], [2, 3]], ([[1]], [2]))
    assert load_dataset(str(se), valid_fraction=0.0).kind == "session"
    rb = tmp_path / "rb"
    rb.mkdir()
    write(rb / "rb.inter", "user_id:token\titem_id:token\ttimestamp:float\n" + rows.replace("\t4\t", "\t"))
    assert load_dataset(str(rb)).name == "rb" and load_dataset(str(rb / "rb.inter")).n_users == 2
    csv = write(tmp_path / "log.csv", "u,i,t\n" + rows.replace("\t4\t", "\t").replace("\t", ","))
    assert load_dataset(str(csv), columns={"user": "u", "item": "i", "timestamp": "t"}).n_items == 4


# --- real datasets (counts from each folder's SOURCE.md) -------------------------------------------------------------

@real_data
def test_real_movielens_counts() -> None:
    log = read_movielens(DATA / "movielens-100k")
    assert (len(log), len(np.unique(log.users)), len(np.unique(log.items))) == (100_000, 943, 1_682)


@real_data
def test_real_gowalla_counts() -> None:
    train, test = read_lightgcn(DATA / "gowalla-lightgcn")
    assert (len(train), len(test)) == (810_128, 217_242)
    assert len(np.unique(np.r_[train.users, test.users])) == 29_858
    assert len(np.unique(np.r_[train.items, test.items])) == 40_981


@real_data
@pytest.mark.parametrize("folder, sessions, test_pairs, items, pairs", [
    ("tmall-gcegnn", 65_286, 25_898, 40_727, 351_268),
    ("diginetica-srgnn", 186_670, 60_858, 43_097, 719_470),
])
def test_real_session_counts(folder: str, sessions: int, test_pairs: int, items: int, pairs: int) -> None:
    train, prefixes, labels, _ = read_session_pickles(DATA / folder)
    assert (len(train), len(prefixes), len(labels)) == (sessions, test_pairs, test_pairs)
    assert len({i for s in train for i in s}) == items
    assert len(session_pairs([np.asarray(s) for s in train])[1]) == pairs


@real_data
def test_real_registry_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDREC_DATA", str(DATA))
    assert all(d.available for d in known_datasets())
    split = load_dataset("ml-100k")
    assert (split.n_users, split.n_items, len(split.test)) == (943, 1_682, 943)


def test_session_refit_split_adds_the_validation_sessions() -> None:
    sessions = [[1, 2, 3], [2, 3], [3, 1, 2], [1, 3]]
    split = session_split(sessions, [[1]], [2], name="toy", valid_fraction=0.5)
    full = split.with_validation_in_training()
    assert [s.tolist() for s in full.train_sequences] == [[0, 1, 2], [1, 2], [2, 0, 1], [0, 2]]
    assert full.n_users == 4 and full.train_users.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
