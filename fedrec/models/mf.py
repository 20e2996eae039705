"""Matrix factorisation trained with BPR (Rendle et al. 2009), the CF backbone of the papers' baselines."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedrec.data.dataset import EvalSet, Split
from fedrec.embeddings import ItemEmbedding
from fedrec.models.base import Recommender

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class NegativeSampler:
    """Uniform negatives that avoid each user's training items (rejection on a sorted key array)."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int, max_tries: int = 10):
        self.n_items = n_items
        self.keys = np.unique(users.astype(np.int64) * n_items + items)
        self.max_tries = max_tries

    def _is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[pos] == keys

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        negatives = rng.integers(0, self.n_items, size=len(users))
        for _ in range(self.max_tries):
            clash = self._is_positive(users, negatives)
            if not clash.any():
                break
            negatives[clash] = rng.integers(0, self.n_items, size=int(clash.sum()))
        return negatives


class MF(Recommender):
    """score(u, i) = p_u · e_i; loss = BPR with one sampled negative + L2 on the batch's embeddings."""

    def __init__(self, items: ItemEmbedding, n_users: int, l2: float = 1e-4, init_std: float = 0.1):
        super().__init__(items)
        self.users = nn.Embedding(n_users, items.dim)
        nn.init.normal_(self.users.weight, std=init_std)
        self.l2 = l2
        self._sampler: NegativeSampler | None = None

    def n_batches(self, split: Split, batch_size: int) -> int:
        return -(-split.n_train // batch_size)

    def batches(self, split: Split, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        if self._sampler is None:
            self._sampler = NegativeSampler(split.train_users, split.train_items, split.n_items)
        order = rng.permutation(split.n_train)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            users = split.train_users[rows]
            negatives = self._sampler.sample(users, rng)
            yield (torch.from_numpy(users), torch.from_numpy(split.train_items[rows]), torch.from_numpy(negatives))

    def loss(self, batch: Batch) -> torch.Tensor:
        users, positives, negatives = batch
        u, pos, neg = self.users(users), self.items.lookup(positives), self.items.lookup(negatives)
        bpr = -F.logsigmoid((u * pos).sum(-1) - (u * neg).sum(-1)).mean()
        reg = (u.pow(2).sum() + pos.pow(2).sum() + neg.pow(2).sum()) / (2 * len(users))
        return bpr + self.l2 * reg

    def score(self, examples: EvalSet) -> torch.Tensor:
        return self.items.score_all(self.users(torch.from_numpy(examples.users)))
