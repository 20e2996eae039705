"""Full-ranking top-K metrics: Recall, Precision, NDCG, HR (hit rate) and MRR at several K.

Definitions follow PAPERS.md §3: every item is ranked (no sampled negatives), items in `exclude` (a user's training
items for CF) are removed from the ranking, and each metric is averaged over the evaluated examples.
For examples with exactly one target the rank is exact: 1 + the number of items scored strictly higher, so ties
never favour the target by accident of sort order. With several targets the top-K list decides (Recall/NDCG of §3.1).
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


def _single_target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    target_scores = scores.gather(1, targets.unsqueeze(1))
    return (scores > target_scores).sum(dim=1) + 1


def batch_metrics(scores: torch.Tensor, targets: Sequence[np.ndarray], exclude: Sequence[np.ndarray] | None = None,
                  ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Sums (not means) of every metric over the batch; `scores` [B, N] is modified (exclusions set to -inf)."""
    scores = mask_excluded(scores.float(), exclude)
    n_targets = torch.tensor([len(t) for t in targets], dtype=torch.float32)
    if bool((n_targets == 1).all()):
        ranks = _single_target_ranks(scores, torch.tensor([int(t[0]) for t in targets]))
        hits_at = lambda k: (torch.arange(1, k + 1) == ranks.unsqueeze(1)).float()  # noqa: E731
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
        first_hit = torch.where(hits.any(dim=1), hits.argmax(dim=1).float() + 1, torch.inf)
        n_hits = hits.sum(dim=1)
        sums[f"recall@{k}"] = float((n_hits / n_targets).sum())
        sums[f"precision@{k}"] = float((n_hits / k).sum())
        sums[f"ndcg@{k}"] = float(((hits * discount).sum(dim=1) / idcg).sum())
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
