"""On-device training of one user's MF model against the slice of the shared item table the device holds.

The device holds the first `width` columns of the item table and a private user vector of the same width. It trains
BPR on its own interactions, summing the loss over nested prefixes (every narrower tier width it contains), so that
any prefix of the shared table remains a usable model for smaller devices. It returns the deltas of the item rows it
touched (not the whole table) and its new private vector.
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
                    epochs: int, lr: float, l2: float, rng: np.random.Generator) -> LocalUpdate:
    """E epochs of full-batch SGD on BPR over the user's positives, one sampled negative each, nested prefixes.

    The loss is the mean over widths w of BPR on the first w columns. Gradients are written out in numpy rather than
    taken by autograd: a device's problem is a few hundred rows, where autograd's fixed cost per call would be most
    of a client's round (tests check these gradients against autograd).
    """
    width = items.shape[1]
    widths = sorted({w for w in nested_widths if w <= width} | {width})
    pos = np.asarray(positives, dtype=np.int64)
    negatives = sample_negatives(pos, items.shape[0], epochs * len(pos), rng)
    rows, inverse = np.unique(np.concatenate([pos, negatives]), return_inverse=True)
    local, vector = items[rows].astype(np.float32), user.astype(np.float32)
    pos_local, neg_local = inverse[:len(pos)], inverse[len(pos):].reshape(epochs, len(pos))
    # share[k]: fraction of the widths that contain column k (the weight of column k in the mean loss)
    share = (np.arange(width)[None, :] < np.array(widths)[:, None]).mean(0).astype(np.float32)
    loss = 0.0
    for epoch in range(epochs):
        p, n = local[pos_local], local[neg_local[epoch]]
        loss, d_margin = _nested_bpr(vector, p, n, widths, l2, share)
        grad_user = (d_margin * (p - n)).sum(0) + l2 * share * vector
        grad_local = np.zeros_like(local)
        np.add.at(grad_local, pos_local, d_margin * vector + l2 * share * p / len(pos))
        np.add.at(grad_local, neg_local[epoch], -d_margin * vector + l2 * share * n / len(pos))
        local -= lr * grad_local
        vector = vector - lr * grad_user
    return LocalUpdate(rows=rows, item_delta=local - items[rows], user=vector, loss=loss, n_examples=len(pos))


def _nested_bpr(user: np.ndarray, pos: np.ndarray, neg: np.ndarray, widths: list[int], l2: float,
                share: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over widths of BPR + L2, and d loss / d (u_k (p_jk - n_jk)) as a [P, width] matrix."""
    terms = user * (pos - neg)
    margins = np.cumsum(terms, axis=1)
    d_margin = np.zeros_like(terms)
    loss = 0.0
    for w in widths:
        m = margins[:, w - 1]
        loss -= float(np.mean(-np.logaddexp(0.0, -m)))
        d_margin[:, :w] -= (_sigmoid(-m) / len(m))[:, None]
    reg = (user ** 2 * len(pos) + (pos ** 2).sum(0) + (neg ** 2).sum(0)) / (2 * len(pos))
    loss = loss / len(widths) + l2 * float((share * reg).sum())
    return loss, d_margin / len(widths)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))
