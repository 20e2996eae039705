"""Splits and end-to-end training on the real datasets in ../shared/data (skipped with a reason when absent)."""
import json

import numpy as np
import pytest
from realdata import ROOT, real_data

from fedrec.cli import main
from fedrec.data.movielens import read_movielens
from fedrec.data.registry import load_dataset
from fedrec.data.splits import time_segments


@real_data
def test_movielens_leave_last_out_holds_out_two_per_user():
    split = load_dataset("ml-100k")
    assert split.n_train == 100_000 - 2 * 943
    assert len(split.valid) == len(split.test) == 943
    # the test history is the training sequence plus the validation item
    u = int(split.test.users[0])
    assert np.array_equal(split.test.histories[0][:-1], split.train_sequences[u])
    assert split.test.histories[0][-1] == split.valid.targets[0][0]


@real_data
def test_movielens_time_segments_are_equal_and_chronological():
    log = read_movielens(ROOT / "movielens-100k")
    segments = time_segments(log, 9)
    assert sum(len(s) for s in segments) == len(log)
    assert max(len(s) for s in segments) - min(len(s) for s in segments) <= 1
    for earlier, later in zip(segments, segments[1:]):
        assert log.timestamps[earlier].max() <= log.timestamps[later].min()


@real_data
def test_gowalla_validation_holds_out_a_tenth_of_training_items():
    split = load_dataset("gowalla")
    held = sum(len(t) for t in split.valid.targets)
    assert split.n_train + held == 810_128
    assert 0.09 < held / 810_128 < 0.12
    assert sum(len(t) for t in split.test.targets) == 217_242


@real_data
def test_cli_trains_mf_on_movielens(tmp_path, capsys):
    assert main(["train", "--dataset", "ml-100k", "--model", "mf", "--out", str(tmp_path), "--epochs", "3"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dataset"]["users"] == 943 and summary["epochs_run"] == 3
    assert summary["metrics"]["test"]["recall@20"] > 0.05  # random ranking gives about 0.012


@real_data
@pytest.mark.slow
@pytest.mark.parametrize("dataset, model, extra", [
    ("gowalla", "pop", []), ("tmall", "pop", []), ("diginetica", "pop", []),
    ("tmall", "sasrec", ["--epochs", "1", "--set", "dim=16", "--set", "inner=16", "--set", "batch_size=1024"]),
])
def test_cli_runs_on_each_real_dataset(tmp_path, dataset, model, extra):
    assert main(["train", "--dataset", dataset, "--model", model, "--out", str(tmp_path), *extra]) == 0
    test = json.loads((tmp_path / "summary.json").read_text())["metrics"]["test"]
    assert test["hr@20"] > 0.005
