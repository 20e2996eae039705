import json

import pandas as pd
import pytest

from fedrec.configs import resolve
from fedrec.data.registry import load_dataset
from fedrec.embeddings.artifact import payload_bytes
from fedrec.train.trainer import fit, save_run


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def quiet(_message):
    pass



@pytest.fixture(scope="module")
def mf_result(synthetic):
    return fit(synthetic, "mf", resolve("mf", "synthetic", overrides={"epochs": 20}), seed=3, log=quiet)


def test_mf_beats_popularity_on_the_synthetic_dataset(synthetic, mf_result):
    pop = fit(synthetic, "pop", resolve("pop", "synthetic"), log=quiet)
    mf_recall = mf_result.summary["metrics"]["test"]["recall@20"]
    pop_recall = pop.summary["metrics"]["test"]["recall@20"]
    assert mf_recall > 1.5 * pop_recall, (mf_recall, pop_recall)


def test_same_seed_gives_identical_metrics_and_other_seed_differs(synthetic, mf_result):
    config = resolve("mf", "synthetic", overrides={"epochs": 20})
    again = fit(synthetic, "mf", config, seed=3, log=quiet)
    other = fit(synthetic, "mf", config, seed=4, log=quiet)
    assert again.summary["metrics"] == mf_result.summary["metrics"]
    assert other.summary["metrics"]["test"] != mf_result.summary["metrics"]["test"]


def test_early_stopping_keeps_the_best_validation_epoch(synthetic):
    # with lr = 0 nothing changes, so the first evaluation is the best and patience 2 stops at epoch 3
    result = fit(synthetic, "mf", resolve("mf", "synthetic", overrides={"lr": 0.0, "patience": 2, "epochs": 50}),
                 log=quiet)
    assert result.summary["best_epoch"] == 1
    assert result.summary["epochs_run"] == 3


def test_run_directory_has_summary_epochs_and_exact_artifact(tmp_path, mf_result):
    save_run(mf_result, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["metrics"]) >= {"valid", "test"}
    for key in ("recall@20", "ndcg@20", "hr@20", "mrr@20"):
        assert 0.0 <= summary["metrics"]["test"][key] <= 1.0
    assert summary["config"]["epochs"] == 20 and summary["config"]["lr"] == 1e-2
    epochs = pd.read_parquet(tmp_path / "epochs.parquet")
    assert len(epochs) == summary["epochs_run"] and {"epoch", "loss", "valid_recall@20"} <= set(epochs.columns)
    assert payload_bytes(tmp_path / "item_embedding.fedrec") == summary["item_embedding"]["bytes"]
    assert summary["item_embedding"]["bytes"] == mf_result.model.items.n_items * summary["config"]["dim"] * 4
    assert not list(tmp_path.glob(".*")), "no temporary files left behind"


def test_sasrec_trains_on_per_user_histories(synthetic):
    config = resolve("sasrec", "synthetic", overrides={"epochs": 2, "dim": 16, "inner": 16, "batch_size": 256,
                                                        "track_test": True})
    result = fit(synthetic, "sasrec", config, log=quiet)
    losses = [row["loss"] for row in result.epochs]
    assert losses[1] < losses[0]
    assert result.summary["metrics"]["test"]["hr@20"] > 0.1
    assert set(result.summary["metrics"]["test_best_epoch"]) == set(result.summary["metrics"]["test"])


def test_validation_joins_training_on_refit(synthetic):
    full = synthetic.with_validation_in_training()
    assert full.n_train == synthetic.n_train + len(synthetic.valid)
    user = int(synthetic.valid.users[0])
    assert full.train_sequences[user][-1] == synthetic.valid.targets[0][0]
    assert full.test is synthetic.test


def test_refit_retrains_for_the_selected_epochs_and_reports_both(synthetic):
    config = resolve("mf", "synthetic", overrides={"epochs": 8, "refit": True})
    result = fit(synthetic, "mf", config, seed=1, log=quiet)
    metrics = result.summary["metrics"]
    assert result.summary["refit_epochs"] == result.summary["best_epoch"] >= 1
    assert metrics["test"] != metrics["test_before_refit"]
    assert result.model.users.weight.shape[0] == synthetic.n_users


def test_step_decay_scales_the_learning_rate_per_epoch(synthetic):
    """lr x 0 after the first epoch freezes the model: later epochs evaluate exactly like the first."""
    config = resolve("sasrec", "synthetic", overrides={"dim": 16, "inner": 16, "epochs": 3, "patience": 5,
                                                       "lr_decay_epochs": 1, "lr_decay": 0.0})
    rows = fit(synthetic, "sasrec", config, log=quiet).epochs
    assert rows[0]["valid_recall@20"] == rows[1]["valid_recall@20"] == rows[2]["valid_recall@20"]
    moving = fit(synthetic, "sasrec", config | {"lr_decay_epochs": 0}, log=quiet).epochs
    assert moving[0]["valid_recall@20"] == rows[0]["valid_recall@20"] and moving[2]["loss"] < moving[0]["loss"]
