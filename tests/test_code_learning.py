"""Code learning from a teacher table: coarse-to-fine prefixes, determinism, hard codes."""
from collections import Counter

import numpy as np
import pytest
import torch

from fedrec.errors import ConfigError
from fedrec.train.code_learning import (
    CodeAutoencoder,
    cooccurrence_signal,
    fit_codebooks,
    learn_codes,
    prefix_errors,
    random_codes,
    unique_codes,
)


def clustered_table(n=600, dim=16, seed=0):
    """Two-level structure: 8 coarse centres, each with 6 sub-centres, plus noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(8, dim, generator=g) * 2.0
    fine = torch.randn(8, 6, dim, generator=g) * 0.6
    a, b = torch.randint(0, 8, (n,), generator=g), torch.randint(0, 6, (n,), generator=g)
    return coarse[a] + fine[a, b] + torch.randn(n, dim, generator=g) * 0.05


def test_more_codebooks_never_reconstruct_the_teacher_worse():
    table = clustered_table()
    learned = learn_codes(table, codebooks=3, codewords=16, epochs=150, batch_size=200, lr=1e-2)
    errors = learned.prefix_mse
    assert errors == prefix_errors(learned.codes, learned.codebooks, table)
    assert errors[0] >= errors[1] >= errors[2]
    variance = (table - table.mean(0)).pow(2).sum(-1).mean().item()
    assert errors[0] < 0.4 * variance and errors[2] < 0.5 * errors[0]  # coarse first, then refinement
    assert learned.codes.shape == (600, 3) and learned.codes.max() < 16
    assert len(set(map(tuple, learned.codes.tolist()))) >= 40  # 48 true clusters: no collapse onto a few codes


def test_same_seed_same_codes():
    table = clustered_table(n=100)
    a = learn_codes(table, 2, 8, epochs=5, batch_size=50, seed=3)
    b = learn_codes(table, 2, 8, epochs=5, batch_size=50, seed=3)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.codebooks, b.codebooks)


def test_straight_through_forward_is_hard_and_backward_reaches_the_encoder():
    torch.manual_seed(0)
    model = CodeAutoencoder(dim=4, codebooks=2, codewords=5)
    table = torch.randn(7, 4)
    loss = model.loss(table, temperature=0.3)
    loss.backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0 and model.decoder.grad.abs().sum() > 0
    one_hot = torch.nn.functional.gumbel_softmax(model.logits(table), tau=0.3, hard=True)
    assert torch.equal(one_hot.sum(-1), torch.ones(7, 2)) and set(one_hot.unique().tolist()) == {0.0, 1.0}


def test_twins_get_the_nearest_free_code_and_the_best_fitted_twin_keeps_its_own():
    codebooks = torch.tensor([[[0.0, 0.0], [10.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]])  # M = 2, K = 2, d = 2
    table = torch.tensor([[0.0, 0.1], [0.0, 0.9], [10.0, 0.0], [0.05, 0.0]])
    codes = torch.tensor([[0, 0], [0, 1], [1, 0], [0, 0]])
    fixed = unique_codes(codes, codebooks, table)
    assert len(set(map(tuple, fixed.tolist()))) == 4
    # items 0 and 3 share (0, 0): item 3 reconstructs better and keeps it; item 0's nearest free code is (1, 1)
    # ((0, 1) is item 1's), reached by moving its last two codewords
    assert fixed.tolist() == [[1, 1], [0, 1], [1, 0], [0, 0]]


def test_twins_move_their_last_codeword_first():
    table = clustered_table(n=200)
    learned = learn_codes(table, codebooks=2, codewords=32, epochs=0, batch_size=100)
    before = learned.codes
    assert len(set(map(tuple, before.tolist()))) < 200  # k-means leaves twins here
    after = learn_codes(table, codebooks=2, codewords=32, epochs=0, batch_size=100, unique=True)
    assert len(set(map(tuple, after.codes.tolist()))) == 200
    assert torch.equal(after.codes[:, 0], before[:, 0])  # the coarse codebook is untouched
    moved = (after.codes != before).any(1)
    assert 0 < moved.sum() < 200 and after.prefix_mse[0] == learned.prefix_mse[0]


def test_more_items_than_codes_is_a_clear_error():
    with pytest.raises(ConfigError, match="need more than 4\\^1 codes"):
        unique_codes(torch.zeros(5, 1, dtype=torch.int64), torch.zeros(1, 4, 2), torch.zeros(5, 2))


def test_codebooks_fitted_to_fixed_codes_recover_a_table_made_of_codewords():
    g = torch.Generator().manual_seed(0)
    truth, codes = torch.randn(3, 8, 4, generator=g), torch.randint(0, 8, (500, 3), generator=g)
    table = truth[torch.arange(3), codes].sum(-2)
    fitted = fit_codebooks(codes, table, codewords=8, iterations=30)
    assert prefix_errors(codes, fitted, table)[-1] < 1e-3 * table.pow(2).sum(1).mean()


def test_random_codes_are_distinct_seeded_and_fitted():
    table = clustered_table(n=400)
    a, b = random_codes(table, 2, 32, seed=5), random_codes(table, 2, 32, seed=5)
    assert torch.equal(a.codes, b.codes) and len(set(map(tuple, a.codes.tolist()))) == 400
    variance = (table - table.mean(0)).pow(2).sum(-1).mean().item()
    assert a.prefix_mse[-1] < variance  # codebooks fitted to the table, not left at zero
    with pytest.raises(ConfigError, match="need more than 4\\^2 distinct codes"):
        random_codes(table, 2, 4)


def test_hybrid_codes_cluster_their_first_codebook_and_randomise_the_rest():
    table = clustered_table(n=400)
    hybrid = random_codes(table, 3, 16, seed=2, clustered=1)
    assert len(set(map(tuple, hybrid.codes.tolist()))) == 400
    pure = random_codes(table, 3, 16, seed=2)
    assert hybrid.prefix_mse[0] < 0.5 * pure.prefix_mse[0]  # the k-means codebook carries the coarse structure
    with pytest.raises(ConfigError, match="clustered_codebooks = 3"):
        random_codes(table, 3, 16, clustered=3)


def test_cooccurrence_signal_groups_items_bought_together():
    rng = np.random.default_rng(0)
    groups = [np.arange(0, 30), np.arange(30, 60), np.arange(60, 90)]  # items only co-occur within their group
    sequences = [rng.choice(groups[rng.integers(3)], size=8) for _ in range(600)]
    signal = cooccurrence_signal(sequences, 90, dim=8, seed=1)
    assert signal.shape == (90, 8) and torch.allclose(signal.norm(dim=1), torch.ones(90), atol=1e-5)
    similarity = signal @ signal.T
    same = torch.tensor([[i // 30 == j // 30 for j in range(90)] for i in range(90)])
    assert similarity[same].mean() > 0.8 > 0.2 > similarity[~same].mean()
    assert torch.equal(signal, cooccurrence_signal(sequences, 90, dim=8, seed=1))
    with pytest.raises(ConfigError, match="no training sequence has two items"):
        cooccurrence_signal([np.array([3])], 90, dim=8)


def test_hybrid_codes_cluster_on_the_given_signal_not_the_table():
    table = torch.randn(90, 16)  # no structure in the table ...
    signal = torch.zeros(90, 3)
    signal[torch.arange(90), torch.arange(90) // 30] = 1.0  # ... three clear groups in the signal
    codes = random_codes(table, 3, 16, seed=4, clustered=1, signal=signal).codes
    assert len(set(map(tuple, codes.tolist()))) == 90
    for group in range(3):
        assert len(set(codes[group * 30:(group + 1) * 30, 0].tolist())) == 1


def test_an_over_full_cluster_keeps_its_nearest_items_and_the_rest_get_random_codes():
    signal = torch.zeros(80, 3)  # items 0..49 have no signal (never co-occur): one point, more than a cluster holds
    signal[50 + torch.arange(30), torch.arange(30) // 10] = 1.0  # items 50..79: three groups of ten
    learned = random_codes(torch.randn(80, 8), 2, 16, seed=3, clustered=1, signal=signal)
    codes = learned.codes
    assert len(set(map(tuple, codes.tolist()))) == 80
    for group in range(3):
        assert len(set(codes[50 + group * 10:60 + group * 10, 0].tolist())) == 1
    crowded = Counter(codes[:50, 0].tolist()).most_common(1)[0][1]
    assert crowded == 16  # as many as its random codes; a random code cannot land there, every tail is taken
    assert "34 items of over-full clusters random" in learned.source
