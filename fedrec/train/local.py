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
import torch
import torch.nn.functional as F


@dataclass
class LocalUpdate:
    rows: torch.Tensor        # item rows touched
    item_delta: torch.Tensor  # [len(rows), width]
    user: torch.Tensor        # new private user vector [width]
    loss: float
    n_examples: int


def sample_negatives(positives: np.ndarray, n_items: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform items outside the user's positives (resampled until none collide, the set being small)."""
    negatives = rng.integers(0, n_items, size=size)
    clash = np.isin(negatives, positives)
    while clash.any():
        negatives[clash] = rng.integers(0, n_items, size=int(clash.sum()))
        clash = np.isin(negatives, positives)
    return negatives


def train_mf_client(items: torch.Tensor, user: torch.Tensor, positives: np.ndarray, nested_widths: Sequence[int],
                    epochs: int, lr: float, l2: float, rng: np.random.Generator) -> LocalUpdate:
    """E epochs of full-batch SGD on BPR over the user's positives, one sampled negative each, nested prefixes."""
    width = items.shape[1]
    widths = sorted({w for w in nested_widths if w <= width} | {width})
    pos = torch.from_numpy(np.asarray(positives, dtype=np.int64))
    neg_all = torch.from_numpy(sample_negatives(np.asarray(positives), items.shape[0], epochs * len(pos), rng))
    rows, inverse = torch.unique(torch.cat([pos, neg_all]), return_inverse=True)
    local_items = items[rows].clone().requires_grad_(True)
    local_user = user.clone().requires_grad_(True)
    pos_local, neg_local = inverse[:len(pos)], inverse[len(pos):].view(epochs, len(pos))
    optimizer = torch.optim.SGD([local_items, local_user], lr=lr)
    loss = torch.zeros(())
    for epoch in range(epochs):
        optimizer.zero_grad()
        p, n = local_items[pos_local], local_items[neg_local[epoch]]
        loss = sum(_bpr(local_user[:w], p[:, :w], n[:, :w], l2) for w in widths) / len(widths)
        loss.backward()
        optimizer.step()
    return LocalUpdate(rows=rows, item_delta=(local_items - items[rows]).detach(), user=local_user.detach(),
                       loss=loss.item(), n_examples=len(pos))


def _bpr(user: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, l2: float) -> torch.Tensor:
    margin = pos @ user - neg @ user
    reg = (user.pow(2).sum() * len(pos) + pos.pow(2).sum() + neg.pow(2).sum()) / (2 * len(pos))
    return -F.logsigmoid(margin).mean() + l2 * reg
