"""Server aggregation cost: holder weights summed per holding (fedrec's `aggregate`) against the per-client
definition (one weight scatter over the whole holding per client), on a Gowalla-sized item table.

    python benchmarks/aggregation.py [--items 40981] [--dim 64] [--clients 1000] [--rows 60] [--repeats 3]

Prints the median seconds of each and their ratio (same run, same inputs; results checked bit-identical).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from fedrec.embeddings import holdings
from fedrec.embeddings.holdings import Prefix
from fedrec.federation.aggregation import ClientUpdate, aggregate


def per_client(shared: dict[str, torch.Tensor], updates: list[ClientUpdate], server_lr: float) -> dict:
    result = {}
    for name, current in shared.items():
        total = torch.zeros_like(current, dtype=torch.float64)
        weight = torch.zeros_like(total)
        for u in updates:
            holdings.scatter_add(weight, u.holdings[name], u.weight)
            touched = holdings.rows_of(u.holdings[name], u.rows[name].numpy())
            holdings.scatter_add(total, touched, u.weight * u.deltas[name].to(torch.float64))
        mean = torch.where(weight > 0, total / weight.clamp(min=1e-300), torch.zeros_like(total))
        result[name] = (current.to(torch.float64) + server_lr * mean).to(current.dtype)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40981)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=60, help="item rows each client touches")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    shared = {"items": torch.from_numpy(rng.normal(size=(args.items, args.dim)).astype(np.float32))}
    tiers = [Prefix((args.items, w)) for w in (args.dim // 4, args.dim // 2, args.dim)]
    updates = []
    for i in range(args.clients):
        held = tiers[i % 3]
        rows = np.sort(rng.choice(args.items, size=args.rows, replace=False))
        delta = torch.from_numpy(rng.normal(size=(args.rows, held.shape[1])).astype(np.float32))
        updates.append(ClientUpdate(float(rng.integers(1, 100)), {"items": delta}, {"items": held},
                                    {"items": torch.from_numpy(rows)}))
    seconds = {}
    for label, run in (("per holding", aggregate), ("per client", per_client)):
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            out = run(shared, updates, 40.0)
            times.append(time.perf_counter() - started)
        seconds[label], seconds[label + " result"] = statistics.median(times), out["items"]
    assert torch.equal(seconds["per holding result"], seconds["per client result"])
    print(f"{args.clients} clients, {args.items} x {args.dim} table, {args.rows} rows each: per client "
          f"{seconds['per client']:.3f} s, per holding {seconds['per holding']:.3f} s, ratio "
          f"{seconds['per client'] / seconds['per holding']:.1f}x (bit-identical)")


if __name__ == "__main__":
    main()
