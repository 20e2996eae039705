"""What a device holds of one named shared tensor, and how to take, scatter and cover exactly that part.

Four kinds, one per way a compact model can be cut out of the global one:
- `Prefix(shape)`: the leading slice along every axis (narrower widths, shorter codebook prefixes, lower TT ranks,
  HeteroFL body cuts);
- `Rows(ids, trailing)`: a set of rows (axis 0) with the leading `trailing` slice of the other axes (items a device
  keeps);
- `Select(indices)`: an index selection per axis, `None` for a whole axis (elastic blocks: a subset of blocks);
- `Mask(mask)`: any set of elements, the held block being the whole tensor with the rest zero (per-entity sizes).

A device's values of a holding form a dense block (`shape`); `rows_of` narrows a holding to some rows of that block
(a reply that sends only the rows it touched).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Prefix:
    shape: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Rows:
    ids: np.ndarray                  # distinct row ids, int64
    trailing: tuple[int, ...]        # leading slice of the remaining axes


@dataclass(frozen=True, eq=False)
class Select:
    indices: tuple[np.ndarray | None, ...]  # per axis: the held indices, or None for the whole axis


@dataclass(frozen=True, eq=False)
class Mask:
    mask: np.ndarray                 # bool, the tensor's shape


Holding = Prefix | Rows | Select | Mask


def shape(holding: Holding, full: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the dense block a device holds of a tensor of shape `full`."""
    if isinstance(holding, Prefix):
        return tuple(holding.shape)
    if isinstance(holding, Rows):
        return (len(holding.ids), *holding.trailing)
    if isinstance(holding, Select):
        return tuple(n if ix is None else len(ix) for n, ix in zip(full, holding.indices))
    return tuple(full)


def check(holding: Holding, full: tuple[int, ...], name: str) -> None:
    """Raise ValueError when `holding` does not lie inside a tensor of shape `full` (a method's layout bug)."""
    dims = len(full)
    if isinstance(holding, Prefix):
        bad = len(holding.shape) != dims or any(not 0 <= n <= f for n, f in zip(holding.shape, full))
    elif isinstance(holding, Rows):
        bad = len(holding.trailing) != dims - 1 or any(not 0 <= n <= f for n, f in zip(holding.trailing, full[1:]))
        bad = bad or not _inside(holding.ids, full[0])
    elif isinstance(holding, Select):
        bad = len(holding.indices) != dims or any(ix is not None and not _inside(ix, f)
                                                   for ix, f in zip(holding.indices, full))
    else:
        bad = holding.mask.shape != tuple(full) or holding.mask.dtype != np.bool_
    if bad:
        raise ValueError(f"{name}: holding {holding} does not fit a tensor of shape {tuple(full)}")


def _inside(ids: np.ndarray, n: int) -> bool:
    return ids.ndim == 1 and (len(ids) == 0 or (ids.min() >= 0 and ids.max() < n)) and len(np.unique(ids)) == len(ids)


def _index(holding: Holding, full: tuple[int, ...]) -> tuple:
    """An index into the full tensor that yields the held block (advanced indices as one open mesh)."""
    if isinstance(holding, Prefix):
        return tuple(slice(0, n) for n in holding.shape)
    if isinstance(holding, Rows):
        return (torch.from_numpy(holding.ids.astype(np.int64)), *(slice(0, n) for n in holding.trailing))
    if isinstance(holding, Select):
        axes = [np.arange(n) if ix is None else ix.astype(np.int64) for n, ix in zip(full, holding.indices)]
        return tuple(torch.from_numpy(a) for a in np.ix_(*axes))
    raise TypeError("a Mask holding has no block index; use its mask")


def take(tensor: torch.Tensor, holding: Holding) -> torch.Tensor:
    """The device's dense block of `tensor` (a copy for every kind but Prefix)."""
    if isinstance(holding, Mask):
        return tensor * torch.from_numpy(holding.mask).to(tensor.dtype)
    return tensor[_index(holding, tuple(tensor.shape))]


def rows_of(holding: Holding, rows: np.ndarray) -> Holding:
    """The part of `holding` made of the given rows of its block (axis 0)."""
    rows = rows.astype(np.int64)
    if isinstance(holding, Prefix):
        return Rows(rows, tuple(holding.shape[1:]))
    if isinstance(holding, Rows):
        return Rows(holding.ids[rows], holding.trailing)
    if isinstance(holding, Select):
        first = rows if holding.indices[0] is None else holding.indices[0][rows]
        return Select((first, *holding.indices[1:]))
    raise ValueError("a Mask holding is sent whole; it cannot be narrowed to rows")


def coverage(holding: Holding, full: tuple[int, ...]) -> torch.Tensor:
    """Bool tensor of shape `full`: the elements the holding covers."""
    if isinstance(holding, Mask):
        return torch.from_numpy(holding.mask.copy())
    covered = torch.zeros(full, dtype=torch.bool)
    covered[_index(holding, full)] = True
    return covered


def scatter_add(target: torch.Tensor, holding: Holding, values: torch.Tensor | float) -> None:
    """target[held elements] += values (a block of the holding's shape, or a scalar), in place."""
    if isinstance(holding, Mask):
        mask = torch.from_numpy(holding.mask)
        target[mask] += values[mask] if isinstance(values, torch.Tensor) else values
        return
    target[_index(holding, tuple(target.shape))] += values
