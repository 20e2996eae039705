"""On-device training of one user's MF model against the slice of the shared item table the device holds.

The device holds the first `width` columns of the item table and a private user vector of the same width. It trains
BPR on its own interactions at its own width and, with a smaller weight, at every narrower tier width it contains
(nested prefixes), so that any prefix of the shared table remains a usable model for smaller devices. It returns
the deltas of the item rows it touched (not the whole table) and its new private vector.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class LocalUpdate:
    rows: np.ndarray        # item rows touched
    item_delta: np.ndarray  # [len(rows), width]
    user: np.ndarray        # new private user vector [width]
    loss: float
    n_examples: int


def sample_negatives(positives: np.ndarray, n_items: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform items outside the user's positives: resampled until none collide while the positives are at most
    half the items, drawn from the complement beyond that (so a user of nearly every item cannot loop for long)."""
    distinct = np.unique(positives)
    if len(distinct) * 2 > n_items:
        complement = np.setdiff1d(np.arange(n_items), distinct)
        if not len(complement):
            raise ValueError(f"the user has interacted with all {n_items} items: BPR has no negative to sample")
        return complement[rng.integers(0, len(complement), size=size)]
    negatives = rng.integers(0, n_items, size=size)
    clash = np.isin(negatives, positives)
    while clash.any():
        negatives[clash] = rng.integers(0, n_items, size=int(clash.sum()))
        clash = np.isin(negatives, positives)
    return negatives


def train_mf_client(items: np.ndarray, user: np.ndarray, positives: np.ndarray, nested_widths: Sequence[int],
                    epochs: int, lr: float, l2: float, rng: np.random.Generator, prefix_weight: float) -> LocalUpdate:
    """E epochs of full-batch SGD on BPR over the user's positives, one sampled negative each, nested prefixes.

    The loss is BPR on the device's own width plus `prefix_weight` x the mean of BPR on the first w columns over
    the narrower widths w, scaled to weights summing to 1 (`width_weights`). Gradients are written out in numpy
    rather than taken by autograd: a device's problem is a few hundred rows, where autograd's fixed cost per call
    would be most of a client's round (tests check these gradients against autograd).
    """
    width = items.shape[1]
    widths = sorted({w for w in nested_widths if w <= width} | {width})
    pos = np.asarray(positives, dtype=np.int64)
    negatives = sample_negatives(pos, items.shape[0], epochs * len(pos), rng)
    rows, inverse = np.unique(np.concatenate([pos, negatives]), return_inverse=True)
    local, vector = items[rows].astype(np.float32), user.astype(np.float32)
    pos_local, neg_local = inverse[:len(pos)], inverse[len(pos):].reshape(epochs, len(pos))
    weights = width_weights(len(widths), prefix_weight)
    # share[k]: the weight of the widths that contain column k (the weight of column k in the loss)
    share = (weights[:, None] * (np.arange(width)[None, :] < np.array(widths)[:, None])).sum(0).astype(np.float32)
    loss = 0.0
    for epoch in range(epochs):
        pairs = np.concatenate([pos_local, neg_local[epoch]])  # the epoch's rows: positives, then negatives
        both = local[pairs]
        p, n = both[:len(pos)], both[len(pos):]
        loss, d_margin = _nested_bpr(vector, p, n, widths, weights, l2, share)
        grad_user = (d_margin * (p - n)).sum(0) + l2 * share * vector
        grad_local = np.zeros_like(local)
        signed = np.concatenate([d_margin, -d_margin]) * vector
        np.add.at(grad_local, pairs, signed + l2 * share * both / len(pos))
        local -= lr * grad_local
        vector = vector - lr * grad_user
    return LocalUpdate(rows=rows, item_delta=local - items[rows], user=vector, loss=loss, n_examples=len(pos))


def width_weights(n_widths: int, prefix_weight: float) -> np.ndarray:
    """The loss weight of each nested width, narrowest first: the device's own width 1 and the narrower ones
    `prefix_weight` in all (shared equally), scaled to sum to 1 (so the learning rate means the same for every
    tier). `prefix_weight = n_widths - 1` weighs every width equally."""
    if n_widths == 1:
        return np.ones(1)
    return np.r_[np.full(n_widths - 1, prefix_weight / (n_widths - 1)), 1.0] / (1.0 + prefix_weight)


def _nested_bpr(user: np.ndarray, pos: np.ndarray, neg: np.ndarray, widths: list[int], weights: np.ndarray,
                l2: float, share: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over widths of BPR + L2, and d loss / d (u_k (p_jk - n_jk)) as a [P, width] matrix.

    All widths at once: column k's derivative sums the terms of every width w > k (a reverse cumulative sum over
    the widths, indexed by the first width that contains k)."""
    terms = user * (pos - neg)
    margins = np.cumsum(terms, axis=1)[:, np.asarray(widths) - 1]       # [P, len(widths)]
    coefficients = _sigmoid(-margins) * weights / len(pos)
    from_width = np.cumsum(coefficients[:, ::-1], axis=1)[:, ::-1]      # [:, j]: sum over widths j, j+1, ...
    d_margin = -from_width[:, np.searchsorted(widths, np.arange(terms.shape[1]), side="right")]
    reg = (user ** 2 * len(pos) + (pos ** 2).sum(0) + (neg ** 2).sum(0)) / (2 * len(pos))
    loss = float((np.logaddexp(0.0, -margins).mean(0) * weights).sum()) + l2 * float((share * reg).sum())
    return loss, d_margin


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))
