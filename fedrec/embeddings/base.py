"""The item-representation interface every method implements (DESIGN §3).

Backbones only ever call `lookup` and `score_all`, so a compressed method plugs in without touching them.
`memory_bytes` counts exactly what a device stores, and `export` writes exactly that many payload bytes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from fedrec.embeddings import artifact


def init_tensor(tensor: torch.Tensor, init_range: float | None, init_std: float | None,
                default_std: float | None = None, default_range: float | None = None) -> None:
    """U(-init_range, init_range) when a range is given (the session papers' init), N(0, init_std) when a std is;
    with neither, the method's default (a std or a range)."""
    if init_range is None and init_std is None:
        init_range, init_std = default_range, default_std
    if init_range is not None:
        nn.init.uniform_(tensor, -init_range, init_range)
    else:
        nn.init.normal_(tensor, std=init_std)


@dataclass(frozen=True)
class EmbeddingSpec:
    """A method and its size parameters: enough to rebuild an empty representation of the same shape."""

    method: str
    n_items: int
    dim: int
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ItemEmbedding(nn.Module, ABC):
    """Item representation of `n_items` rows of width `dim`."""

    method: ClassVar[str]

    def __init__(self, spec: EmbeddingSpec):
        super().__init__()
        self.spec = spec

    @property
    def n_items(self) -> int:
        return self.spec.n_items

    @property
    def dim(self) -> int:
        return self.spec.dim

    @abstractmethod
    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Embeddings of `ids` (any shape) -> [..., dim]."""

    @abstractmethod
    def score_all(self, query: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each query row: [B, dim] -> [B, n_items], by the fastest exact route."""

    def table(self) -> torch.Tensor:
        """Every item's embedding [n_items, dim] (differentiable); methods that store a table return it directly."""
        return self.lookup(torch.arange(self.n_items))

    @abstractmethod
    def payload(self) -> dict[str, torch.Tensor]:
        """The tensors a device stores, by name, in the dtype they are stored in."""

    def load_payload(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore from the tensors `payload()` produced (methods that pack their storage override this)."""
        self.load_state_dict(tensors)

    @classmethod
    @abstractmethod
    def for_budget(cls, budget_bytes: int, n_items: int, max_dim: int, **options: Any) -> EmbeddingSpec:
        """The largest configuration of this method within `budget_bytes`; raises BudgetError if none fits."""

    def shared_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors the server aggregates across devices (by default everything the device stores)."""
        return dict(self.named_parameters())

    def memory_bytes(self) -> int:
        """Exact bytes stored on the device: the sum of the payload tensors' sizes."""
        return sum(t.numel() * t.element_size() for t in self.payload().values())

    def export(self, path: str | Path) -> Path:
        """Write the compact on-device artifact (header + raw payload); its payload size equals memory_bytes()."""
        return artifact.write(Path(path), self.spec.to_dict(), self.payload())
