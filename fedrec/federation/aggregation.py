"""Heterogeneous aggregation: each element of a shared tensor is averaged over the clients that hold it.

A client of a small device holds a leading slice of each shared tensor (a prefix of the columns, and possibly only
some rows). Its update is a delta over that slice with a weight (its example count). The new value of every element is
the old value plus the weighted mean of the deltas of the clients that hold the element; elements nobody holds keep
their value. When every client holds everything this is exactly FedAvg.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ClientUpdate:
    """Deltas of the shared tensors one client trained, over the leading slice it holds.

    `rows[name]` (optional) lists the row indices that `deltas[name]` covers; without it the delta covers the leading
    rows. Columns always form a prefix: `deltas[name].shape[1:]` is the held prefix of each trailing dimension.
    """

    weight: float
    deltas: dict[str, torch.Tensor]
    rows: dict[str, torch.Tensor] = field(default_factory=dict)


def _slices(delta: torch.Tensor, rows: torch.Tensor | None) -> tuple:
    lead = rows if rows is not None else slice(0, delta.shape[0])
    return (lead, *(slice(0, n) for n in delta.shape[1:]))


def aggregate(shared: dict[str, torch.Tensor], updates: list[ClientUpdate]) -> dict[str, torch.Tensor]:
    """New shared tensors after applying the holder-weighted mean delta of every element."""
    result = {}
    for name, current in shared.items():
        total = torch.zeros_like(current, dtype=torch.float64)
        weight = torch.zeros_like(current, dtype=torch.float64)
        for update in updates:
            if name not in update.deltas:
                continue
            delta = update.deltas[name]
            index = _slices(delta, update.rows.get(name))
            total[index] += update.weight * delta.to(torch.float64)
            weight[index] += update.weight
        held = weight > 0
        mean = torch.where(held, total / weight.clamp(min=1e-300), torch.zeros_like(total))
        result[name] = (current.to(torch.float64) + mean).to(current.dtype)
    return result
