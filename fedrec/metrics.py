"""Full-ranking top-K metrics: Recall, Precision, NDCG, HR (hit rate) and MRR at several K.

Definitions follow PAPERS.md §3: every item is ranked (no sampled negatives), items in `exclude` (a user's training
items for CF) are removed from the ranking, and each metric is averaged over the evaluated examples.
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

DEFAULT_KS = (5, 10, 20)
METRIC_NAMES = ("recall", "precision", "ndcg", "hr", "mrr")


def _pad(rows: Sequence[np.ndarray], fill: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged id lists -> (padded [B, L] long tensor, bool mask)."""
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), max(width, 1)), fill, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    ids = torch.from_numpy(out)
    return ids, ids != fill


def mask_excluded(scores: torch.Tensor, exclude: Sequence[np.ndarray] | None) -> torch.Tensor:
    """Set excluded items to -inf in place (they can then never enter a top-K list)."""
    if exclude is not None and any(len(e) for e in exclude):
        ids, valid = _pad(exclude, fill=-1)
        rows = torch.arange(len(exclude)).unsqueeze(1).expand_as(ids)
        scores[rows[valid], ids[valid]] = float("-inf")
    return scores


def _single_target_hits(scores: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """[B, k]: probability that the target sits at rank 1..k when ties are ordered uniformly at random."""
    target_scores = scores.gather(1, targets.unsqueeze(1))
    first = (scores > target_scores).sum(dim=1, keepdim=True) + 1           # best rank the target can take
    block = (scores == target_scores).sum(dim=1, keepdim=True)              # the target and the items tied with it
    ranks = torch.arange(1, k + 1).unsqueeze(0)
    return ((ranks >= first) & (ranks < first + block)).float() / block


def batch_metrics(scores: torch.Tensor, targets: Sequence[np.ndarray], exclude: Sequence[np.ndarray] | None = None,
                  ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Sums (not means) of every metric over the batch; `scores` [B, N] is modified (exclusions set to -inf)."""
    scores = mask_excluded(scores.float(), exclude)
    n_targets = torch.tensor([len(t) for t in targets], dtype=torch.float32)
    single = bool((n_targets == 1).all())
    if single:
        expected = _single_target_hits(scores, torch.tensor([int(t[0]) for t in targets]), max(ks))
        hits_at = lambda k: expected[:, :k]  # noqa: E731
    else:
        top = scores.topk(max(ks), dim=1).indices
        padded, valid = _pad(targets, fill=-1)
        in_targets = ((top.unsqueeze(2) == padded.unsqueeze(1)) & valid.unsqueeze(1)).any(dim=2).float()
        hits_at = lambda k: in_targets[:, :k]  # noqa: E731
    sums: dict[str, float] = {}
    for k in ks:
        hits = hits_at(k)
        discount = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float32))
        idcg = torch.cumsum(discount, 0)[(n_targets.clamp(max=k) - 1).long()]
        n_hits = hits.sum(dim=1)
        sums[f"recall@{k}"] = float((n_hits / n_targets).sum())
        sums[f"precision@{k}"] = float((n_hits / k).sum())
        sums[f"ndcg@{k}"] = float(((hits * discount).sum(dim=1) / idcg).sum())
        if single:  # one target: hit probability and expected reciprocal rank
            sums[f"hr@{k}"] = float(n_hits.sum())
            sums[f"mrr@{k}"] = float((hits / torch.arange(1, k + 1)).sum())
        else:
            first_hit = torch.where(hits.any(dim=1), hits.argmax(dim=1).float() + 1, torch.inf)
            sums[f"hr@{k}"] = float((n_hits > 0).float().sum())
            sums[f"mrr@{k}"] = float((1.0 / first_hit).sum())
    return sums


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
