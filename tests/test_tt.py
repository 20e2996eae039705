"""Tensor-train tables: row lookup vs full reconstruction, the papers' parameter counts, budgets, artifacts."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrec.embeddings import EmbeddingSpec, STPTTEmbedding, TTEmbedding, build, load
from fedrec.embeddings.artifact import payload_bytes
from fedrec.embeddings.tt import balanced_factors, exact_factors, mixed_radix, stp_parameters, tt_parameters
from fedrec.errors import BudgetError, ConfigError


def test_tt_row_is_the_chain_product_of_core_slices():
    torch.manual_seed(0)
    table = build(EmbeddingSpec("tt", 60, 12, {"rows": [4, 4, 4], "cols": [2, 3, 2], "ranks": [3, 5]}))
    g1, g2, g3 = (c.detach() for c in table.cores)
    for item in (0, 17, 59):
        a, b, c = item // 16, (item // 4) % 4, item % 4
        expected = torch.einsum("xr,rys,sz->xyz", g1[0, a], g2[:, b], g3[:, c, :, 0]).reshape(-1)
        assert torch.allclose(table.lookup(torch.tensor(item)), expected, atol=1e-6)
    assert table.table().shape == (60, 12)


def test_stp_rows_equal_the_reinterleaved_group_products():
    torch.manual_seed(0)
    table = build(EmbeddingSpec("stp_tt", 50, 6, {"rows": [7, 8], "cols": [3, 2], "rank": 4}))
    full = table.table()
    ids = torch.tensor([[0, 49], [13, 8]])
    assert torch.allclose(table.lookup(ids), full[ids], atol=1e-6)
    # column c of the big matrix is G1[:, c % t :: t] @ G2[:, c // t]
    matrix = torch.zeros(7 * 3, 8 * 2)
    for c in range(16):
        matrix[:, c] = table.g1[:, c % 2::2] @ table.g2[:, c // 2]
    item = 13  # (i1, i2) = (1, 5): rows 3..5, columns 10..11
    assert torch.allclose(full[item], matrix[3:6, 10:12].reshape(-1), atol=1e-6)


@pytest.mark.parametrize("method", ["tt", "stp_tt"])
def test_score_all_gradients_and_artifact(method, tmp_path):
    torch.manual_seed(1)
    table = build(EmbeddingSpec(method, 40, 8, {"rank": 4}))
    query = torch.randn(3, 8)
    assert torch.allclose(table.score_all(query), query @ table.lookup(torch.arange(40)).T, atol=1e-5)
    table.score_all(query).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in table.parameters())
    path = table.export(tmp_path / "t.fedrec")
    assert payload_bytes(path) == table.memory_bytes() == sum(p.numel() for p in table.parameters()) * 4
    assert torch.allclose(load(path).table(), table.table())


def test_parameter_counts_match_the_papers_arithmetic():
    assert tt_parameters([35, 35, 34], [4, 8, 4], [16, 16]) == 76_096          # TT-Rec on Tmall, 68.5x
    assert stp_parameters(169, 241, 16, 8, 60, 2) == 191_160                  # OD-Rec on Tmall, 27.3x
    tmall = build(EmbeddingSpec("stp_tt", 40_727, 128, {"rows": [169, 241], "cols": [16, 8], "rank": 60}))
    assert tmall.memory_bytes() == 191_160 * 4


@given(st.integers(1, 100_000), st.integers(1, 4))
def test_balanced_factors_cover_n(n, parts):
    factors = balanced_factors(n, parts)
    assert len(factors) == parts and np.prod(factors) >= n
    assert np.prod(factors) < n * 2 ** parts or n < 2 ** parts


def test_exact_factors_and_digits():
    assert exact_factors(128, 2) == [16, 8] and exact_factors(128, 3) == [8, 4, 4] and exact_factors(7, 2) == [7, 1]
    digits = mixed_radix(torch.tensor([0, 5, 59]), [3, 4, 5])
    assert [d.tolist() for d in digits] == [[0, 0, 2], [0, 1, 3], [0, 0, 4]]


@settings(max_examples=50)
@given(budget=st.integers(100, 400_000), method=st.sampled_from(["tt", "stp_tt"]))
def test_budget_mapping_never_exceeds_the_budget(budget, method):
    cls = TTEmbedding if method == "tt" else STPTTEmbedding
    try:
        spec = cls.for_budget(budget, 1000, 16, rank=32)
    except BudgetError as err:
        assert err.minimum_bytes > budget
        return
    assert build(spec).memory_bytes() <= budget


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ConfigError, match="must multiply to >= 100 items"):
        build(EmbeddingSpec("tt", 100, 8, {"rows": [4, 4, 4], "cols": [2, 2, 2]}))
    with pytest.raises(ConfigError, match="multiples of t = 2"):
        build(EmbeddingSpec("stp_tt", 100, 8, {"rank": 5}))


def test_tt_whole_table_by_core_contraction_equals_row_lookups():
    torch.manual_seed(2)
    table = build(EmbeddingSpec("tt", 100, 24, {"rows": [5, 5, 5], "cols": [2, 3, 4], "ranks": [3, 2]}))
    assert torch.allclose(table.table(), table.lookup(torch.arange(100)), atol=1e-6)
