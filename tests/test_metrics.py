import math

import numpy as np
import pytest
import torch

from fedrec.data.dataset import EvalSet
from fedrec.metrics import batch_metrics, evaluate
from fedrec.ranking import metric_sums

A = np.array


def test_multi_target_topk_metrics_match_hand_computation():
    # after excluding item 0 the ranking is 3 (0.7), 2 (0.5), 4 (0.3), 1 (0.1); targets are {2, 4}
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.7, 0.3]])
    m = batch_metrics(scores, [A([2, 4])], exclude=[A([0])], ks=(2, 3))
    idcg2 = 1 + 1 / math.log2(3)
    assert m["recall@2"] == pytest.approx(0.5)
    assert m["precision@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx((1 / math.log2(3)) / idcg2)
    assert m["hr@2"] == 1 and m["mrr@2"] == pytest.approx(0.5)
    assert m["recall@3"] == pytest.approx(1.0)
    assert m["precision@3"] == pytest.approx(2 / 3)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(3) + 0.5) / idcg2)


def test_excluded_item_never_counts_even_when_top_scored():
    scores = torch.tensor([[5.0, 1.0, 0.0]])
    assert batch_metrics(scores.clone(), [A([1, 0])], exclude=None, ks=(1,))["precision@1"] == 1
    assert batch_metrics(scores.clone(), [A([1, 2])], exclude=[A([0])], ks=(1,))["recall@1"] == pytest.approx(0.5)


def test_single_target_metrics_are_expectations_over_random_tie_order():
    scores = torch.tensor([[0.2, 0.8, 0.8, 0.1], [0.2, 0.8, 0.8, 0.1], [0.5, 0.5, 0.5, 0.5]])
    m = batch_metrics(scores, [A([2]), A([3]), A([0])], ks=(1, 3, 5))
    # row 0: tied with item 1 -> rank 1 or 2, each with probability 1/2; row 1: rank 4; row 2: ranks 1-4 equally
    assert m["hr@1"] == pytest.approx(0.5 + 0.25) and m["mrr@1"] == pytest.approx(0.5 + 0.25)
    assert m["hr@3"] == pytest.approx(1 + 0.75)
    assert m["mrr@5"] == pytest.approx((1 + 1 / 2) / 2 + 1 / 4 + (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert m["ndcg@1"] == pytest.approx(0.75)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3)) / 2 + 1 / math.log2(5)
                                        + sum(1 / math.log2(r + 1) for r in range(1, 5)) / 4)
    assert m["recall@5"] == pytest.approx(3) and m["precision@5"] == pytest.approx(3 / 5)


def test_a_block_of_tied_items_does_not_put_the_target_first():
    scores = torch.zeros(1, 100)
    scores[0, :40] = 1.0  # the target (item 0) ties with 39 others at the top
    m = batch_metrics(scores, [A([0])], ks=(20,))
    assert m["hr@20"] == pytest.approx(0.5) and m["mrr@20"] < 0.1


def test_evaluate_averages_over_examples_across_batches():
    table = torch.tensor([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 3.0, 2.0]])
    data = EvalSet(users=A([0, 1, 2]), histories=[A([]), A([]), A([])], targets=[A([0]), A([0]), A([3])])
    m = evaluate(lambda batch: table[torch.from_numpy(batch.users)].clone(), data, ks=(1, 2), batch_size=2)
    assert m["hr@1"] == pytest.approx(1 / 3)
    assert m["hr@2"] == pytest.approx(2 / 3)
    assert m["mrr@2"] == pytest.approx((1 + 0 + 0.5) / 3)


def test_full_ranking_agrees_with_a_direct_numpy_implementation():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(20, 50)).astype(np.float32)
    targets = [rng.choice(50, size=rng.integers(1, 6), replace=False) for _ in range(20)]
    exclude = [np.setdiff1d(rng.choice(50, size=5, replace=False), t) for t in targets]
    got = batch_metrics(torch.from_numpy(scores.copy()), targets, exclude, ks=(10,))
    recall = ndcg = 0.0
    for s, t, e in zip(scores, targets, exclude):
        s = s.copy()
        s[e] = -np.inf
        top = np.argsort(-s)[:10]
        hits = np.isin(top, t)
        recall += hits.sum() / len(t)
        ndcg += (hits / np.log2(np.arange(2, 12))).sum() / (1 / np.log2(np.arange(2, 2 + min(len(t), 10)))).sum()
    assert got["recall@10"] == pytest.approx(recall, rel=1e-5)
    assert got["ndcg@10"] == pytest.approx(ndcg, rel=1e-5)


def test_a_target_that_is_also_in_the_history_stays_rankable():
    """A repeated interaction (the held-out item was seen before) is what the example asks for: not masked."""
    scores = np.array([[0.9, 0.1, 0.5, 0.3]], dtype=np.float32)
    repeat = metric_sums(scores.copy(), [np.array([0])], exclude=[np.array([0, 2])], ks=(1,))
    assert repeat["hr@1"] == 1.0  # item 2 is excluded, item 0 (the target) ranks first
    fresh = metric_sums(scores.copy(), [np.array([1])], exclude=[np.array([0, 2])], ks=(1, 2))
    assert fresh["hr@1"] == 0.0 and fresh["hr@2"] == 1.0  # behind item 3 once items 0 and 2 are excluded
