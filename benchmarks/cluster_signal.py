"""Which signal gives a clustered codebook the structure new-item predictions need (BENCHMARKS.md, issue 4).

For every validation pair whose target is not in its session, checks whether the target shares its first-codebook
cluster (k-means, K = 256) with one of the session's last 10 items, for clusters on the teacher's item table and on
the co-occurrence signal; "chance" is the same cluster sizes with items shuffled.

    python benchmarks/cluster_signal.py --dataset tmall runs/bench/tmall-sasrec
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from repeats import repeat_rows

from fedrec.data.registry import load_dataset
from fedrec.train.code_learning import cooccurrence_signal, residual_kmeans
from fedrec.train.teacher import load_sasrec


def shares_cluster(clusters: np.ndarray, histories: list[np.ndarray], targets: list[np.ndarray]) -> float:
    return float(np.mean([np.isin(clusters[t], clusters[h[-10:]]).any() for h, t in zip(histories, targets)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tmall")
    parser.add_argument("--codewords", type=int, default=256)
    parser.add_argument("teacher", type=Path)
    args = parser.parse_args()
    split = load_dataset(args.dataset)
    new = np.flatnonzero(~repeat_rows(split.valid))
    histories, targets = [split.valid.histories[i] for i in new], [split.valid.targets[i] for i in new]
    signals = {"teacher table": load_sasrec(args.teacher, split).items.table().detach().float(),
               "co-occurrence (64 dims, window 5)": cooccurrence_signal(split.train_sequences, split.n_items)}
    print(f"{args.dataset} validation: {len(new)} new-item pairs\n\n| clusters on | target shares a cluster with a "
          f"recent session item | chance (shuffled clusters) |\n|---|---|---|")
    for name, signal in signals.items():
        codes, _ = residual_kmeans(signal, 1, args.codewords, 10, torch.Generator().manual_seed(0))
        clusters = codes[:, 0].numpy()
        shuffled = np.random.default_rng(0).permutation(clusters)
        print(f"| {name} | {shares_cluster(clusters, histories, targets):.3f} | "
              f"{shares_cluster(shuffled, histories, targets):.3f} |")


if __name__ == "__main__":
    main()
