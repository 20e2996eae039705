import numpy as np
import torch

from fedrec.train.local import sample_negatives, train_mf_client


def setup(width=8, n_items=50):
    torch.manual_seed(0)
    return torch.randn(n_items, width) * 0.1, torch.randn(width) * 0.1, np.array([3, 7, 11, 20])


def margin(items, user, positives, negatives, width):
    return float((items[positives, :width] @ user[:width]).mean() - (items[negatives, :width] @ user[:width]).mean())


def test_update_covers_only_touched_rows_and_improves_ranking_at_every_prefix():
    items, user, positives = setup()
    others = np.setdiff1d(np.arange(50), positives)
    update = train_mf_client(items, user, positives, nested_widths=[2, 4], epochs=20, lr=0.5, l2=0.0,
                             rng=np.random.default_rng(0))
    assert set(positives) <= set(update.rows.tolist()) and len(update.rows) < 50
    assert update.item_delta.shape == (len(update.rows), 8) and update.n_examples == 4
    new_items = items.clone()
    new_items[update.rows] += update.item_delta
    for width in (2, 4, 8):
        assert margin(new_items, update.user, positives, others, width) > margin(items, user, positives, others, width)


def test_same_rng_same_update():
    items, user, positives = setup()
    a = train_mf_client(items, user, positives, [4], 3, 0.1, 1e-4, np.random.default_rng(5))
    b = train_mf_client(items, user, positives, [4], 3, 0.1, 1e-4, np.random.default_rng(5))
    assert torch.equal(a.rows, b.rows) and torch.equal(a.item_delta, b.item_delta) and torch.equal(a.user, b.user)


def test_negatives_avoid_positives():
    negatives = sample_negatives(np.array([0, 1, 2]), 4, 500, np.random.default_rng(0))
    assert set(negatives.tolist()) == {3}
