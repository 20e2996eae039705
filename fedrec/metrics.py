"""Full-ranking top-K metrics: Recall, Precision, NDCG, HR (hit rate) and MRR at several K.

Definitions follow docs/PAPERS.md §3: every item is ranked (no sampled negatives), items in `exclude` (a user's training
items for CF) are removed from the ranking except the example's own targets (a repeated interaction stays
rankable), and each metric is averaged over the evaluated examples.
For examples with exactly one target, metrics are their expectation under a uniformly random order of tied items:
the target is equally likely at every rank from 1 + (items scored strictly higher) to that + (other items scored the
same). Continuous scores rarely tie, but compressed tables do (items sharing a code share a score: 40,727 items on one
codebook of 256 codewords tie in blocks of ~160), and counting only strictly higher items would rank the target first
in its block, inflating HR and MRR. With several targets the top-K list decides (Recall/NDCG of §3.1).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from fedrec.data.dataset import EvalSet
from fedrec.ranking import DEFAULT_KS, METRIC_NAMES, metric_sums

__all__ = ["DEFAULT_KS", "METRIC_NAMES", "batch_metrics", "evaluate"]



def batch_metrics(scores: torch.Tensor, targets: Sequence[np.ndarray], exclude: Sequence[np.ndarray] | None = None,
                  ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Sums (not means) of every metric over the batch; `scores` [B, N] is modified (exclusions set to -inf)."""
    return metric_sums(scores.detach().float().numpy(), targets, exclude, ks)


def evaluate(score_fn: Callable[[EvalSet], torch.Tensor], data: EvalSet, ks: Sequence[int] = DEFAULT_KS,
             batch_size: int = 1024) -> dict[str, float]:
    """Mean metrics over `data`; `score_fn(batch)` returns scores [len(batch), n_items] for a slice of examples."""
    if len(data) == 0:
        return {}
    totals: dict[str, float] = {}
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = data.subset(np.arange(start, min(start + batch_size, len(data))))
            for name, value in batch_metrics(score_fn(batch), batch.targets, batch.exclude, ks).items():
                totals[name] = totals.get(name, 0.0) + value
    return {name: value / len(data) for name, value in totals.items()}
