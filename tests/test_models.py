import numpy as np
import pytest
import torch

from fedrec.data.dataset import EvalSet
from fedrec.embeddings import EmbeddingSpec, FullEmbedding
from fedrec.models.mf import MF, NegativeSampler
from fedrec.models.sasrec import PrefixPairs, SASRec, pad_histories


def make_sasrec(n_items=30, dim=8, max_len=6, dropout=0.0, score_scale=0.0):
    torch.manual_seed(0)
    return SASRec(FullEmbedding(EmbeddingSpec("full", n_items, dim)), max_len=max_len, heads=2, dropout=dropout,
                  score_scale=score_scale).eval()


def test_prefix_pairs_cover_every_next_item_with_truncated_prefixes():
    seqs = [np.array([1, 2, 3, 4]), np.array([5, 6]), np.array([7])]
    pairs = PrefixPairs(seqs, max_len=2)
    assert len(pairs) == 3 + 1 + 0
    ids, mask, targets = pairs.batch(np.arange(len(pairs)))
    assert targets.tolist() == [2, 3, 4, 6]
    rows = [ids[r][mask[r]].tolist() for r in range(len(targets))]
    assert rows == [[1], [1, 2], [2, 3], [5]]


def test_bucketed_batches_cover_every_pair_once_with_little_padding():
    rng = np.random.default_rng(3)
    seqs = [np.arange(rng.integers(2, 40)) for _ in range(300)]
    pairs = PrefixPairs(seqs, max_len=50)
    batches = pairs.bucketed_batches(16, np.random.default_rng(0), pool=8)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(pairs)))
    assert all(len(b) <= 16 for b in batches) and len(batches) == -(-len(pairs) // 16)
    def width(rows):
        return pairs.lengths()[rows].max()

    plain = np.random.default_rng(0).permutation(len(pairs))
    plain_width = np.mean([width(plain[i:i + 16]) for i in range(0, len(plain), 16)])
    assert np.mean([width(b) for b in batches]) < 0.6 * plain_width
    again = pairs.bucketed_batches(16, np.random.default_rng(0), pool=8)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))


def test_normalised_scores_are_scaled_cosines():
    model = make_sasrec(score_scale=5.0)
    session = torch.randn(3, 8)
    table = model.items.lookup(torch.arange(30))
    assert torch.equal(model.items.table(), table)
    expected = 5.0 * torch.nn.functional.cosine_similarity(session[:, None, :], table[None, :, :], dim=2)
    assert torch.allclose(model.scores(session), expected, atol=1e-5)
    assert model.scores(session).abs().max() <= 5.0 + 1e-5
    plain = make_sasrec()
    assert torch.allclose(plain.scores(session), session @ table.T, atol=1e-6)


def test_hidden_state_at_a_position_ignores_later_items():
    model = make_sasrec()
    a = torch.tensor([[1, 2, 3, 4, 5]])
    b = torch.tensor([[1, 2, 3, 9, 8]])
    mask = torch.ones_like(a, dtype=torch.bool)
    with torch.no_grad():
        ha, hb = model.hidden_states(a, mask), model.hidden_states(b, mask)
    assert torch.allclose(ha[:, :3], hb[:, :3], atol=1e-6)
    assert not torch.allclose(ha[:, 3:], hb[:, 3:], atol=1e-3)


def test_scores_do_not_depend_on_padding_or_batch_neighbours():
    model = make_sasrec()
    short, long = np.array([3, 4]), np.array([1, 2, 3, 4, 5, 6, 7, 8])
    with torch.no_grad():
        alone = model.score(EvalSet(np.array([-1]), [short], [np.array([0])]))
        padded = model.score(EvalSet(np.array([-1, -1]), [short, long], [np.array([0]), np.array([0])]))
    assert torch.allclose(alone[0], padded[0], atol=1e-5)
    ids, mask = pad_histories([long], max_len=6)
    assert ids[0].tolist() == [3, 4, 5, 6, 7, 8] and bool(mask.all())


def test_sasrec_learns_a_deterministic_successor_rule():
    # item i is always followed by item (i + 1) mod n: a model that cannot use the sequence cannot fit this
    n = 12
    seqs = [np.arange(s, s + 6) % n for s in range(n)] * 4
    from fedrec.data.dataset import Split
    split = Split("succ", "session", len(seqs), n, np.zeros(0, dtype=np.int64), np.concatenate(seqs), seqs,
                  EvalSet(np.array([-1]), [np.array([0])], [np.array([1])]),
                  EvalSet(np.array([-1]), [np.array([0])], [np.array([1])]))
    model = make_sasrec(n_items=n, dim=16).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(80):
        for batch in model.batches(split, 32, rng):
            opt.zero_grad()
            model.loss(batch).backward()
            opt.step()
    model.eval()
    prefixes = [np.array([(s + k) % n for k in range(3)]) for s in range(n)]
    with torch.no_grad():
        predicted = model.score(EvalSet(np.full(n, -1), prefixes, [np.array([0])] * n)).argmax(1)
    accuracy = np.mean(predicted.numpy() == (np.arange(n) + 3) % n)
    assert accuracy >= 0.9


def test_negative_sampler_avoids_training_items():
    users = np.array([0, 0, 0, 1])
    items = np.array([0, 1, 2, 3])
    sampler = NegativeSampler(users, items, n_items=5, max_tries=50)
    negatives = sampler.sample(np.zeros(2000, dtype=np.int64), np.random.default_rng(0))
    assert set(negatives.tolist()) == {3, 4}


def test_mf_scores_through_the_item_interface():
    torch.manual_seed(0)
    items = FullEmbedding(EmbeddingSpec("full", 7, 4))
    model = MF(items, n_users=3)
    scores = model.score(EvalSet(np.array([2]), [np.array([])], [np.array([1])]))
    assert scores.shape == (1, 7)
    assert torch.allclose(scores[0], items.weight @ model.users.weight[2], atol=1e-6)


def test_bpr_loss_decreases_when_positive_outscores_negative():
    torch.manual_seed(0)
    model = MF(FullEmbedding(EmbeddingSpec("full", 4, 2)), n_users=1, l2=0.0)
    batch = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    with torch.no_grad():
        model.users.weight[:] = torch.tensor([[1.0, 0.0]])
        model.items.weight[1] = torch.tensor([2.0, 0.0])
        model.items.weight[2] = torch.tensor([-2.0, 0.0])
        good = float(model.loss(batch))
        model.items.weight[1], model.items.weight[2] = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 0.0])
        bad = float(model.loss(batch))
    assert good == pytest.approx(-np.log(1 / (1 + np.exp(-4))), rel=1e-5)
    assert bad > good


def test_reverse_positions_count_back_from_the_most_recent_item():
    torch.manual_seed(0)
    model = SASRec(FullEmbedding(EmbeddingSpec("full", 30, 8)), max_len=6, dropout=0.0, reverse_positions=True).eval()
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    positions = model._position_embeddings(mask)
    table = model.positions.weight
    assert torch.equal(positions[0, :3], table[[2, 1, 0]]) and torch.equal(positions[1], table[[3, 2, 1, 0]])
    # the most recent item gets the same position embedding whatever the prefix length
    assert torch.equal(positions[0, 2], positions[1, 3])
    short, long = np.array([3, 4]), np.array([1, 2, 3, 4])
    with torch.no_grad():
        alone = model.score(EvalSet(np.array([-1]), [short], [np.array([0])]))
        padded = model.score(EvalSet(np.array([-1, -1]), [short, long], [np.array([0]), np.array([0])]))
    assert torch.allclose(alone[0], padded[0], atol=1e-5)
