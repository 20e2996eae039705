"""Full-ranking scoring speed of item representations (issue 4), every figure from this one run.

Scores all N items for a batch of session vectors with each method's `score_all` (codes: per-codebook score tables
then gather-and-sum; TT and STP-TT: rebuild the table from the cores, then one product; full: one product), on one
thread as on a phone, under torch.no_grad. Prints median milliseconds per call and the speed-ups of codes.

    python benchmarks/scoring.py --items 40727 --dim 128 --repeats 30
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from fedrec.embeddings import EmbeddingSpec, build

torch.set_num_threads(1)


def representations(n_items: int, dim: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    codes = build(EmbeddingSpec("codes", n_items, dim, {"codebooks": 3, "codewords": 256}))
    codes.set_codes(torch.randint(0, 256, (n_items, 3)))
    return {
        "full": build(EmbeddingSpec("full", n_items, dim)),
        "codes (M=3, K=256)": codes,
        "tt (3 cores, rank 16)": build(EmbeddingSpec("tt", n_items, dim, {"rank": 16})),
        "stp_tt (2 cores, R=60)": build(EmbeddingSpec("stp_tt", n_items, dim, {"rank": 60})),
    }


def median_ms(table: torch.nn.Module, batch: int, dim: int, repeats: int) -> float:
    query = torch.randn(batch, dim)
    times = []
    with torch.no_grad():
        table.score_all(query)  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            table.score_all(query)
            times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40_727)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    tables = representations(args.items, args.dim)
    print("| method | bytes | batch 1 (ms) | batch 100 (ms) |\n|---|---|---|---|")
    times = {}
    for name, table in tables.items():
        times[name] = [median_ms(table, b, args.dim, args.repeats) for b in (1, 100)]
        print(f"| {name} | {table.memory_bytes():,} | {times[name][0]:.3f} | {times[name][1]:.3f} |")
    codes = times["codes (M=3, K=256)"]
    for other in ("full", "tt (3 cores, rank 16)", "stp_tt (2 cores, R=60)"):
        ratios = [t / c for t, c in zip(times[other], codes)]
        print(f"codes vs {other}: {ratios[0]:.1f}x faster at batch 1, {ratios[1]:.1f}x at batch 100")


if __name__ == "__main__":
    main()
