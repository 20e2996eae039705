import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fedrec.embeddings import EmbeddingSpec, FullEmbedding, build, load
from fedrec.embeddings.artifact import payload_bytes, read
from fedrec.errors import BudgetError, FedrecError


def test_exported_payload_equals_memory_bytes_and_round_trips(tmp_path):
    torch.manual_seed(0)
    table = build(EmbeddingSpec("full", n_items=37, dim=6))
    assert table.memory_bytes() == 37 * 6 * 4
    path = table.export(tmp_path / "items.fedrec")
    assert payload_bytes(path) == table.memory_bytes()
    again = load(path)
    assert torch.equal(again.weight, table.weight)
    spec, tensors, size = read(path)
    assert spec["method"] == "full" and size == table.memory_bytes() and set(tensors) == {"weight"}


def test_score_all_equals_lookup_dot_products():
    torch.manual_seed(0)
    table = build(EmbeddingSpec("full", n_items=10, dim=4))
    query = torch.randn(3, 4)
    expected = torch.stack([table.lookup(torch.arange(10)) @ q for q in query])
    assert torch.allclose(table.score_all(query), expected, atol=1e-6)


@given(budget=st.integers(min_value=400, max_value=10**7), n_items=st.integers(1, 100), max_dim=st.integers(1, 512))
def test_for_budget_is_the_largest_width_that_fits(budget, n_items, max_dim):
    try:
        spec = FullEmbedding.for_budget(budget, n_items, max_dim)
    except BudgetError as err:
        assert err.minimum_bytes == n_items * 4 > budget
        return
    used = build(spec).memory_bytes()
    assert used <= budget
    assert spec.dim == max_dim or n_items * (spec.dim + 1) * 4 > budget


def test_infeasible_budget_names_the_minimum():
    with pytest.raises(BudgetError, match="minimum .* 4000 B"):
        FullEmbedding.for_budget(3999, n_items=1000, max_dim=64)


def test_corrupt_artifact_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.fedrec"
    bad.write_bytes(b"not an artifact")
    with pytest.raises(FedrecError, match="not a fedrec embedding artifact"):
        load(bad)
