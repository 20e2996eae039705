"""`full`: an ordinary float32 table, the uncompressed baseline every other method is measured against."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fedrec.embeddings.base import FLOAT_BYTES, EmbeddingSpec, ItemEmbedding, init_tensor
from fedrec.errors import BudgetError


class FullEmbedding(ItemEmbedding):
    method = "full"

    def __init__(self, spec: EmbeddingSpec, init_std: float | None = None, init_range: float | None = None):
        super().__init__(spec)
        self.weight = nn.Parameter(torch.empty(spec.n_items, spec.dim))
        init_tensor(self.weight, init_range, init_std, default_std=spec.dim ** -0.5)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight[ids]

    def table(self) -> torch.Tensor:
        return self.weight

    def score_all(self, query: torch.Tensor) -> torch.Tensor:
        return query @ self.weight.T

    def payload(self) -> dict[str, torch.Tensor]:
        return {"weight": self.weight.detach()}

    @classmethod
    def for_budget(cls, budget_bytes: int, n_items: int, max_dim: int, **options: Any) -> EmbeddingSpec:
        dim = min(max_dim, budget_bytes // (n_items * FLOAT_BYTES))
        if dim < 1:
            minimum = n_items * FLOAT_BYTES
            raise BudgetError(f"budget {budget_bytes} B fits no full table of {n_items} items; "
                              f"the minimum (width 1) is {minimum} B", minimum)
        return EmbeddingSpec("full", n_items, int(dim), dict(options))
