"""Most-popular baseline: every example gets the training popularity of each item (no learning)."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from fedrec.data.dataset import EvalSet, Split
from fedrec.embeddings import ItemEmbedding
from fedrec.models.base import Recommender


class Popularity(Recommender):
    trainable = False

    def __init__(self, items: ItemEmbedding, popularity: np.ndarray):
        super().__init__(items)
        self.register_buffer("popularity", torch.as_tensor(popularity, dtype=torch.float32))

    def n_batches(self, split: Split, batch_size: int) -> int:
        return 0

    def batches(self, split: Split, batch_size: int, rng: np.random.Generator) -> Iterator[None]:
        return iter(())

    def loss(self, batch: None) -> torch.Tensor:
        raise TypeError("the popularity baseline has nothing to train")

    def score(self, examples: EvalSet) -> torch.Tensor:
        return self.popularity.expand(len(examples), -1).clone()
