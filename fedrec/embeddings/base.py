"""The item-representation interface every method implements (DESIGN §3).

Backbones only ever call `lookup` and `score_all`, so a compressed method plugs in without touching them.
`memory_bytes` counts exactly what a device stores, and `export` writes exactly that many payload bytes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from fedrec.embeddings import artifact
from fedrec.embeddings.holdings import Holding, Prefix

FLOAT_BYTES = 4  # every stored float is float32


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
        """Tensors the server aggregates across devices (by default every parameter)."""
        return dict(self.named_parameters())

    def layout(self, device: EmbeddingSpec) -> dict[str, Holding]:
        """What a device whose representation is `device` holds of each of this (global) one's shared tensors.

        By default the leading slice of each: a device's representation of the same method is this one cut short
        (fewer columns, codebooks or TT ranks). Methods that cut otherwise (elastic blocks) override it."""
        with torch.device("meta"):  # shapes only: no memory, no draws from torch's RNG
            small = type(self)(device).shared_tensors()
        layout = {}
        for name, tensor in self.shared_tensors().items():
            held, full = tuple(small[name].shape), tuple(tensor.shape)
            if len(held) != len(full) or any(h > f for h, f in zip(held, full)):
                raise ValueError(f"{self.method}: a device's {name} {held} is not a leading slice of {full}; "
                                 f"override layout() for this method")
            layout[name] = Prefix(held)
        return layout

    def load_shared(self, blocks: dict[str, np.ndarray]) -> None:
        """Set the shared tensors from a device's blocks of them (as `layout` cuts them)."""
        with torch.no_grad():
            for name, tensor in self.shared_tensors().items():
                tensor.copy_(torch.from_numpy(blocks[name]))

    def static_arrays(self, device: EmbeddingSpec) -> dict[str, np.ndarray]:
        """Stored arrays a device of spec `device` gets from the server and nobody trains (codes); none by default."""
        return {}

    def static_bytes(self, device: EmbeddingSpec) -> int:
        """Bytes the static arrays cost to download once (their stored, possibly packed, size)."""
        return sum(a.nbytes for a in self.static_arrays(device).values())

    def load_static(self, arrays: dict[str, np.ndarray]) -> None:
        """Take the static arrays `static_arrays` produced."""

    def randomise_static(self, generator: torch.Generator) -> None:
        """Fix the static arrays at random (the no-teacher start of a federated run); nothing to do by default."""

    def sub_configurations(self) -> list[Any]:
        """Smaller configurations this representation contains, each a usable model for a smaller device: the
        students that self-distillation trains alongside the full configuration (none by default)."""
        return []

    @contextmanager
    def configured(self, sub: Any) -> Iterator[None]:
        """Use the sub-configuration `sub` inside the block, the full one again after it."""
        raise ValueError(f"{self.method} has no sub-configurations")
        yield  # pragma: no cover

    def memory_bytes(self) -> int:
        """Exact bytes stored on the device: the sum of the payload tensors' sizes."""
        return sum(t.numel() * t.element_size() for t in self.payload().values())

    def export(self, path: str | Path) -> Path:
        """Write the compact on-device artifact (header + raw payload); its payload size equals memory_bytes()."""
        return artifact.write(Path(path), self.spec.to_dict(), self.payload())
