import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedrec.train.local import sample_negatives, train_mf_client


def setup(width=8, n_items=50):
    rng = np.random.default_rng(0)
    items = (rng.normal(size=(n_items, width)) * 0.1).astype(np.float32)
    return items, (rng.normal(size=width) * 0.1).astype(np.float32), np.array([3, 7, 11, 20])


def margin(items, user, positives, negatives, width):
    return float((items[positives, :width] @ user[:width]).mean() - (items[negatives, :width] @ user[:width]).mean())


def test_update_covers_only_touched_rows_and_improves_ranking_at_every_prefix():
    items, user, positives = setup()
    others = np.setdiff1d(np.arange(50), positives)
    update = train_mf_client(items, user, positives, nested_widths=[2, 4], epochs=20, lr=0.5, l2=0.0,
                             rng=np.random.default_rng(0), prefix_weight=0.5)
    assert set(positives) <= set(update.rows.tolist()) and len(update.rows) < 50
    assert update.item_delta.shape == (len(update.rows), 8) and update.n_examples == 4
    new_items = items.copy()
    new_items[update.rows] += update.item_delta
    for width in (2, 4, 8):
        assert margin(new_items, update.user, positives, others, width) > margin(items, user, positives, others, width)


def autograd_reference(items, user, positives, widths, epochs, lr, l2, rng, weights=None):
    """The same local problem solved with torch autograd and SGD: the definition the numpy gradients must match."""
    pos = torch.from_numpy(positives)
    negatives = torch.from_numpy(sample_negatives(positives, items.shape[0], epochs * len(pos), rng))
    rows, inverse = torch.unique(torch.cat([pos, negatives]), return_inverse=True)
    local = torch.from_numpy(items)[rows].clone().requires_grad_(True)
    vector = torch.from_numpy(user).clone().requires_grad_(True)
    pos_local, neg_local = inverse[:len(pos)], inverse[len(pos):].view(epochs, len(pos))
    optimizer = torch.optim.SGD([local, vector], lr=lr)
    for epoch in range(epochs):
        optimizer.zero_grad()
        p, n = local[pos_local], local[neg_local[epoch]]
        terms = []
        for w in widths:
            reg = (vector[:w].pow(2).sum() * len(pos) + p[:, :w].pow(2).sum() + n[:, :w].pow(2).sum()) / (2 * len(pos))
            terms.append(-F.logsigmoid(p[:, :w] @ vector[:w] - n[:, :w] @ vector[:w]).mean() + l2 * reg)
        weights = weights or [1 / len(terms)] * len(terms)
        loss = sum(w * t for w, t in zip(weights, terms))
        loss.backward()
        optimizer.step()
    return rows.numpy(), local.detach().numpy(), vector.detach().numpy(), loss.item()


@pytest.mark.parametrize("prefix_weight, weights", [(2.0, None), (0.5, [1 / 6, 1 / 6, 2 / 3]), (0.0, [0, 0, 1])])
def test_numpy_gradients_match_autograd_with_nested_widths_and_repeated_negatives(prefix_weight, weights):
    items, user, positives = setup(n_items=24)  # 24 items, 4 positives, 6x4 negatives: some repeat in an epoch
    update = train_mf_client(items, user, positives, [2, 4, 8], 6, 0.3, 0.05, np.random.default_rng(1),
                             prefix_weight)
    rows, local, vector, loss = autograd_reference(items, user, positives, [2, 4, 8], 6, 0.3, 0.05,
                                                   np.random.default_rng(1), weights)
    assert np.array_equal(update.rows, rows)
    np.testing.assert_allclose(items[rows] + update.item_delta, local, atol=1e-6)
    np.testing.assert_allclose(update.user, vector, atol=1e-6)
    assert abs(update.loss - loss) < 1e-5


def test_same_rng_same_update():
    items, user, positives = setup()
    a = train_mf_client(items, user, positives, [4], 3, 0.1, 1e-4, np.random.default_rng(5), 0.5)
    b = train_mf_client(items, user, positives, [4], 3, 0.1, 1e-4, np.random.default_rng(5), 0.5)
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.item_delta, b.item_delta)
    assert np.array_equal(a.user, b.user)


def test_negatives_come_from_outside_the_positives_even_when_they_are_most_items():
    rng = np.random.default_rng(0)
    for positives in (np.array([1, 5]), np.arange(1, 10), np.r_[np.arange(9), 9, 9]):
        negatives = sample_negatives(positives, 11, 500, rng)
        assert len(negatives) == 500 and not np.isin(negatives, positives).any()
    assert set(sample_negatives(np.array([0, 1, 2]), 4, 500, rng).tolist()) == {3}
    with pytest.raises(ValueError, match="all 10 items"):
        sample_negatives(np.arange(10), 10, 5, rng)  # a user of every item: no negative (instead of a hang)
