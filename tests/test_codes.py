"""Compositional-code embeddings: composition, fast scoring, packed storage, budgets."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrec.embeddings import CodesEmbedding, EmbeddingSpec, build, load
from fedrec.embeddings.artifact import payload_bytes
from fedrec.embeddings.codes import codes_bytes, pack_codes, unpack_codes
from fedrec.errors import BudgetError


def make(n_items=50, dim=6, codebooks=3, codewords=16, seed=0):
    torch.manual_seed(seed)
    table = build(EmbeddingSpec("codes", n_items, dim, {"codebooks": codebooks, "codewords": codewords}))
    table.set_codes(torch.randint(0, codewords, (n_items, codebooks)))
    return table


def test_item_embedding_is_the_one_hot_codes_times_the_codebooks():
    table = make()
    one_hot = torch.nn.functional.one_hot(table.codes, 16).float()       # [N, M, K]
    expected = torch.einsum("nmk,mkd->nd", one_hot, table.codebooks)
    assert torch.allclose(table.lookup(torch.arange(50)), expected, atol=1e-6)
    assert torch.allclose(table.table(), expected, atol=1e-6)


def test_score_all_by_codeword_tables_equals_the_dense_product_for_every_prefix():
    table = make()
    query = torch.randn(4, 6)
    for m in (1, 2, 3):
        table.use_prefix(m)
        assert torch.allclose(table.score_all(query), query @ table.table().T, atol=1e-5)
    table.use_prefix(1)
    assert torch.allclose(table.table(), table.codebooks[0, table.codes[:, 0]])


def test_gradients_reach_only_the_selected_codewords():
    table = make()
    table.score_all(torch.randn(2, 6)).sum().backward()
    used = torch.zeros(3, 16, dtype=torch.bool)
    for m in range(3):
        used[m, table.codes[:, m].unique()] = True
    grad_norms = table.codebooks.grad.norm(dim=2)
    assert bool((grad_norms[~used] == 0).all()) and bool((grad_norms[used] > 0).all())


@given(st.integers(1, 12), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_bit_packing_round_trips(count, bits, seed):
    codes = np.random.default_rng(seed).integers(0, 2**bits, size=count)
    packed = pack_codes(codes, bits)
    assert packed.dtype == np.uint8 and len(packed) == math.ceil(count * bits / 8)
    assert np.array_equal(unpack_codes(packed, count, bits), codes)


def test_artifact_payload_is_memory_bytes_and_round_trips(tmp_path):
    table = make(n_items=37, codewords=256)
    assert table.memory_bytes() == 37 * 3 + 3 * 256 * 6 * 4 == codes_bytes(37, 3, 256, 6)
    path = table.export(tmp_path / "codes.fedrec")
    assert payload_bytes(path) == table.memory_bytes()
    again = load(path)
    assert torch.equal(again.codes, table.codes) and torch.equal(again.codebooks, table.codebooks)
    odd = make(n_items=37, codewords=12)  # 4 bits per code: 111 codes -> 56 bytes (rounded up)
    assert odd.memory_bytes() == math.ceil(37 * 3 * 4 / 8) + 3 * 12 * 6 * 4


@settings(max_examples=200)
@given(budget=st.integers(1, 10**6), n_items=st.integers(1, 5000), max_dim=st.integers(1, 256),
       codebooks=st.integers(1, 4), codewords=st.sampled_from([2, 16, 100, 256]))
def test_budget_mapping_never_exceeds_the_budget_and_is_maximal(budget, n_items, max_dim, codebooks, codewords):
    options = {"codebooks": codebooks, "codewords": codewords}
    try:
        spec = CodesEmbedding.for_budget(budget, n_items, max_dim, **options)
    except BudgetError as err:
        assert err.minimum_bytes == codes_bytes(n_items, 1, codewords, 1) > budget
        return
    m, d = spec.options["codebooks"], spec.dim
    assert codes_bytes(n_items, m, codewords, d) <= budget and 1 <= m <= codebooks and 1 <= d <= max_dim
    for other_m in range(1, codebooks + 1):
        for other_d in (max_dim, d + 1):
            if codes_bytes(n_items, other_m, codewords, min(other_d, max_dim)) <= budget:
                assert other_m * min(other_d, max_dim) <= m * d


def test_tiny_budget_names_the_minimum():
    with pytest.raises(BudgetError, match=r"minimum \(1 codebook, width 1\) is 2024 B"):
        CodesEmbedding.for_budget(2000, n_items=1000, max_dim=64, codebooks=3, codewords=256)


def test_codes_out_of_range_are_rejected():
    table = make()
    with pytest.raises(Exception, match=r"codes must lie in \[0, 16\)"):
        table.set_codes(torch.full((50, 3), 16))


@pytest.mark.parametrize("budget", [60_000, 150_000, 400_000])
def test_each_budget_tier_exports_an_artifact_within_budget_equal_to_memory_bytes(budget, tmp_path):
    spec = CodesEmbedding.for_budget(budget, n_items=1682, max_dim=64, codebooks=4, codewords=256)
    table = build(spec)
    table.set_codes(torch.randint(0, 256, (1682, spec.options["codebooks"])))
    path = table.export(tmp_path / f"tier-{budget}.fedrec")
    assert payload_bytes(path) == table.memory_bytes() <= budget
