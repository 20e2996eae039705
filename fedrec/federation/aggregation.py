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

    Columns always form a prefix: `deltas[name].shape[1:]` is the held prefix of each trailing dimension. Without
    `rows[name]` the delta covers the leading rows densely. With it, the client holds every row of its column prefix
    but sends only the rows it touched (`rows[name]`); the rows it left alone count as zero deltas, which is what
    keeps the sparse exchange equal to FedAvg.
    """

    weight: float
    deltas: dict[str, torch.Tensor]
    rows: dict[str, torch.Tensor] = field(default_factory=dict)


def _held(current: torch.Tensor, delta: torch.Tensor, sparse: bool) -> tuple:
    rows = slice(0, current.shape[0] if sparse else delta.shape[0])
    return (rows, *(slice(0, n) for n in delta.shape[1:]))


def aggregate(shared: dict[str, torch.Tensor], updates: list[ClientUpdate],
              server_lr: float = 1.0) -> dict[str, torch.Tensor]:
    """New shared tensors: old + server_lr x the holder-weighted mean delta of every element (1.0 = FedAvg)."""
    result = {}
    for name, current in shared.items():
        total = torch.zeros_like(current, dtype=torch.float64)
        weight = torch.zeros_like(current, dtype=torch.float64)
        for update in updates:
            if name not in update.deltas:
                continue
            delta, rows = update.deltas[name], update.rows.get(name)
            held = _held(current, delta, sparse=rows is not None)
            weight[held] += update.weight
            touched = held if rows is None else (rows, *held[1:])
            total[touched] += update.weight * delta.to(torch.float64)
        mean = torch.where(weight > 0, total / weight.clamp(min=1e-300), torch.zeros_like(total))
        result[name] = (current.to(torch.float64) + server_lr * mean).to(current.dtype)
    return result
