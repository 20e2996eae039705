"""Full-ranking top-K metric sums in numpy (no torch): what a device computes on its own scores, and what
`fedrec.metrics` computes for the centralised trainer (one implementation for both).

Definitions follow docs/PAPERS.md §3 (see `fedrec.metrics`): excluded items never enter a top-K list; with exactly one
target, metrics are their expectation under a uniformly random order of tied items; with several targets the
top-K list decides.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_KS = (5, 10, 20)
METRIC_NAMES = ("recall", "precision", "ndcg", "hr", "mrr")
HEADLINE = ("recall@20", "ndcg@20", "hr@20", "mrr@20")  # what reports, summaries and the CLI show


def mask_excluded(scores: np.ndarray, exclude: Sequence[np.ndarray] | None,
                  targets: Sequence[np.ndarray]) -> np.ndarray:
    """Set excluded items to -inf in place (they can then never enter a top-K list). An example's own targets stay
    ranked even when they are also in its history (a repeat interaction): it is what the example asks for."""
    if exclude is not None:
        for row, items in enumerate(exclude):
            if len(items):
                items = np.asarray(items, dtype=np.int64)
                scores[row, items[~np.isin(items, targets[row])]] = -np.inf
    return scores


def _single_target_hits(scores: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """[B, k]: probability that the target sits at rank 1..k when ties are ordered uniformly at random."""
    target_scores = scores[np.arange(len(targets)), targets][:, None]
    first = (scores > target_scores).sum(axis=1, keepdims=True) + 1         # best rank the target can take
    block = (scores == target_scores).sum(axis=1, keepdims=True)            # the target and the items tied with it
    ranks = np.arange(1, k + 1)[None, :]
    return ((ranks >= first) & (ranks < first + block)).astype(np.float32) / block.astype(np.float32)


def _top_k_hits(scores: np.ndarray, targets: Sequence[np.ndarray], k: int) -> np.ndarray:
    """[B, k]: 1 where the item at rank r of the top-K list is a target."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    return np.stack([np.isin(row, t) for row, t in zip(top, targets)]).astype(np.float32)


def metric_sums(scores: np.ndarray, targets: Sequence[np.ndarray], exclude: Sequence[np.ndarray] | None = None,
                ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Sums (not means) of every metric over the batch; `scores` [B, N] is modified (exclusions set to -inf)."""
    scores = mask_excluded(np.asarray(scores, dtype=np.float32), exclude, targets)
    n_targets = np.array([len(t) for t in targets], dtype=np.float32)
    single = bool((n_targets == 1).all())
    if single:
        hits_all = _single_target_hits(scores, np.array([int(t[0]) for t in targets]), max(ks))
    else:
        hits_all = _top_k_hits(scores, targets, max(ks))
    sums: dict[str, float] = {}
    for k in ks:
        hits = hits_all[:, :k]
        discount = (1.0 / np.log2(np.arange(2, k + 2, dtype=np.float32))).astype(np.float32)
        idcg = np.cumsum(discount)[(np.minimum(n_targets, k) - 1).astype(np.int64)]
        n_hits = hits.sum(axis=1)
        sums[f"recall@{k}"] = float((n_hits / n_targets).sum())
        sums[f"precision@{k}"] = float((n_hits / k).sum())
        sums[f"ndcg@{k}"] = float(((hits * discount).sum(axis=1) / idcg).sum())
        if single:  # one target: hit probability and expected reciprocal rank
            sums[f"hr@{k}"] = float(n_hits.sum())
            sums[f"mrr@{k}"] = float((hits / np.arange(1, k + 1, dtype=np.float32)).sum())
        else:
            first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1).astype(np.float32) + 1, np.inf)
            sums[f"hr@{k}"] = float((n_hits > 0).astype(np.float32).sum())
            sums[f"mrr@{k}"] = float((1.0 / first_hit).sum())
    return sums
