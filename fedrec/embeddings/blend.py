"""`blend`: eta * (a compact table) + (1 - eta) * (the frozen teacher table), the EODRec release's student table.

Kept as an ablation (docs/PAPERS.md §7.3): with eta < 1 the device must also store the teacher's full float32 table, so
the stored bytes are the compact method's plus the full table's and nothing is compressed. It shows how much of the
release's near-teacher accuracy comes from the teacher table rather than from the codebooks.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fedrec.embeddings.base import EmbeddingSpec, ItemEmbedding
from fedrec.errors import ConfigError


def blend_spec(inner: EmbeddingSpec, eta: float) -> EmbeddingSpec:
    """The spec of `inner` mixed with a teacher table at weight `eta` on `inner`."""
    if not 0 < eta < 1:
        raise ConfigError(f"teacher_mix = {eta}; a blend needs 0 < teacher_mix < 1 (1 = the compact table alone)")
    return EmbeddingSpec("blend", inner.n_items, inner.dim, {"inner": inner.to_dict(), "eta": eta})


class TeacherBlend(ItemEmbedding):
    method = "blend"

    def __init__(self, spec: EmbeddingSpec, **init: Any):
        from fedrec.embeddings import build  # the registry imports this module

        super().__init__(spec)
        self.eta = float(spec.options["eta"])
        self.inner = build(EmbeddingSpec(**spec.options["inner"]), **init)
        self.register_buffer("teacher", torch.zeros(spec.n_items, spec.dim))

    def set_teacher(self, table: torch.Tensor) -> None:
        if tuple(table.shape) != (self.n_items, self.dim):
            raise ConfigError(f"teacher table of shape {tuple(table.shape)}; expected ({self.n_items}, {self.dim})")
        self.teacher.copy_(table.detach())

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        return self.eta * self.inner.lookup(ids) + (1 - self.eta) * F.embedding(ids, self.teacher)

    def score_all(self, query: torch.Tensor) -> torch.Tensor:
        return self.eta * self.inner.score_all(query) + (1 - self.eta) * (query @ self.teacher.T)

    def payload(self) -> dict[str, torch.Tensor]:
        return {**{f"inner.{k}": v for k, v in self.inner.payload().items()}, "teacher": self.teacher}

    def load_payload(self, tensors: dict[str, torch.Tensor]) -> None:
        self.inner.load_payload({k.removeprefix("inner."): v for k, v in tensors.items() if k.startswith("inner.")})
        self.set_teacher(tensors["teacher"])

    def shared_tensors(self) -> dict[str, torch.Tensor]:
        return self.inner.shared_tensors()

    @classmethod
    def for_budget(cls, budget_bytes: int, n_items: int, max_dim: int, **options: Any) -> EmbeddingSpec:
        raise ConfigError("blend is a centralised ablation that stores the full teacher table; it has no budget "
                          "sizing: use codes, tt, stp_tt or full for devices")
