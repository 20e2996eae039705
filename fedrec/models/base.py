"""What the trainer needs from a backbone: training batches, a loss, and scores for evaluation examples."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from fedrec.data.dataset import EvalSet, Split
from fedrec.embeddings import ItemEmbedding


class Recommender(nn.Module, ABC):
    """A backbone that reaches items only through its `ItemEmbedding`."""

    trainable: bool = True

    def __init__(self, items: ItemEmbedding):
        super().__init__()
        self.items = items

    @abstractmethod
    def batches(self, split: Split, batch_size: int, rng: np.random.Generator) -> Iterator[Any]:
        """One epoch of training batches, shuffled by `rng`."""

    @abstractmethod
    def n_batches(self, split: Split, batch_size: int) -> int:
        """Batches per epoch (for progress display)."""

    @abstractmethod
    def loss(self, batch: Any) -> torch.Tensor:
        """Training loss of one batch."""

    @abstractmethod
    def score(self, examples: EvalSet) -> torch.Tensor:
        """Scores [len(examples), n_items] of every item for each evaluation example."""
