"""Heterogeneous aggregation: each element of a shared tensor is averaged over the clients that hold it.

A client holds part of each shared tensor (a `Holding`: a prefix, some rows, a per-axis selection or a mask). Its
update is a delta over that part with a weight (its example count). The new value of every element is the old value
plus the weighted mean of the deltas of the clients that hold the element; elements nobody holds keep their value.
When every client holds everything this is exactly FedAvg.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fedrec.embeddings import holdings
from fedrec.embeddings.holdings import Holding


@dataclass
class ClientUpdate:
    """Deltas of the shared tensors one client trained, over the part of each it holds.

    `deltas[name]` is a block of `holdings[name]`'s shape. With `rows[name]` the client holds the whole holding but
    sends only those rows of its block (the rows it touched); the rows it left alone count as zero deltas, which is
    what keeps the sparse exchange equal to FedAvg.
    """

    weight: float
    deltas: dict[str, torch.Tensor]
    holdings: dict[str, Holding]
    rows: dict[str, torch.Tensor] = field(default_factory=dict)


def aggregate(shared: dict[str, torch.Tensor], updates: list[ClientUpdate],
              server_lr: float = 1.0) -> dict[str, torch.Tensor]:
    """New shared tensors: old + server_lr x the holder-weighted mean delta of every element (1.0 = FedAvg).

    Deltas are scattered over the rows each client sent; holder weights are summed per distinct holding first (the
    clients of one tier share theirs) and scattered once per holding, so a round costs rows touched plus tiers x
    tensor size, not clients x tensor size. Example counts are whole numbers, so the sums are exact in float64 and
    the result does not depend on the grouping."""
    result = {}
    for name, current in shared.items():
        total = torch.zeros_like(current, dtype=torch.float64)
        holders: dict[object, tuple[Holding, float]] = {}
        for update in updates:
            if name not in update.deltas:
                continue
            held, rows = update.holdings[name], update.rows.get(name)
            key = held if isinstance(held, holdings.Prefix) else id(held)  # equal prefixes, or the same object
            holders[key] = (held, holders.get(key, (held, 0.0))[1] + update.weight)
            touched = held if rows is None else holdings.rows_of(held, rows.numpy())
            holdings.scatter_add(total, touched, update.weight * update.deltas[name].to(torch.float64))
        weight = torch.zeros_like(total)
        for held, summed in holders.values():
            holdings.scatter_add(weight, held, summed)
        mean = torch.where(weight > 0, total / weight.clamp(min=1e-300), torch.zeros_like(total))
        result[name] = (current.to(torch.float64) + server_lr * mean).to(current.dtype)
    return result
