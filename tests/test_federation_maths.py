import numpy as np
import pytest
import torch

from fedrec.embeddings import holdings
from fedrec.embeddings.holdings import Mask, Prefix, Rows, Select
from fedrec.errors import ConfigError
from fedrec.federation.aggregation import ClientUpdate, aggregate
from fedrec.federation.devices import DeviceMix, DeviceProfile
from fedrec.federation.ledger import CommunicationLedger, tensor_bytes
from fedrec.schema import in_file


def test_full_holders_reduce_to_fedavg():
    torch.manual_seed(0)
    shared = {"items": torch.randn(6, 4), "bias": torch.randn(6)}
    clients = [{k: v + torch.randn_like(v) for k, v in shared.items()} for _ in range(3)]
    weights = [3.0, 1.0, 6.0]
    whole = {k: Prefix(tuple(v.shape)) for k, v in shared.items()}
    updates = [ClientUpdate(w, {k: c[k] - shared[k] for k in shared}, whole) for w, c in zip(weights, clients)]
    new = aggregate(shared, updates)
    for k in shared:
        fedavg = sum(w * c[k] for w, c in zip(weights, clients)) / sum(weights)
        assert torch.allclose(new[k], fedavg, atol=1e-6)


def test_each_column_slice_is_averaged_over_its_holders_only():
    shared = {"items": torch.zeros(2, 4)}
    small = ClientUpdate(1.0, {"items": torch.full((2, 2), 2.0)}, {"items": Prefix((2, 2))})  # columns 0..1
    large = ClientUpdate(3.0, {"items": torch.full((2, 4), 6.0)}, {"items": Prefix((2, 4))})  # all four
    new = aggregate(shared, [small, large])["items"]
    assert torch.allclose(new[:, :2], torch.full((2, 2), (1 * 2 + 3 * 6) / 4))
    assert torch.allclose(new[:, 2:], torch.full((2, 2), 6.0))


def test_row_updates_touch_only_their_rows_and_unheld_elements_keep_values():
    shared = {"items": torch.arange(12.0).reshape(4, 3)}
    update = ClientUpdate(2.0, {"items": torch.ones(2, 2)}, {"items": Prefix((4, 2))},
                          rows={"items": torch.tensor([1, 3])})
    new = aggregate(shared, [update])["items"]
    expected = shared["items"].clone()
    expected[[1, 3], :2] += 1
    assert torch.equal(new, expected)


def test_mix_assigns_exact_proportions_deterministically():
    mix = DeviceMix((DeviceProfile("low", 1000), DeviceProfile("mid", 2000), DeviceProfile("high", 4000)),
                    (0.5, 0.3, 0.2))
    tiers = mix.assign(203, seed=7)
    assert np.bincount(tiers).tolist() == [101, 61, 41]  # quotas 101.5, 60.9, 40.6
    assert np.array_equal(tiers, mix.assign(203, seed=7))
    assert not np.array_equal(tiers, mix.assign(203, seed=8))


def test_device_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['ram'\].*valid keys"):
        DeviceMix.from_dict({"low": {"fraction": 1.0, "budget_bytes": 10, "ram": 3}}, in_file("mix.toml"))
    with pytest.raises(ConfigError, match="failure_prob"):
        DeviceProfile("x", 100, failure_prob=1.5)
    with pytest.raises(ConfigError, match="sum to 1"):
        DeviceMix((DeviceProfile("a", 1),), (0.5,))


def test_ledger_times_and_totals():
    slow = DeviceProfile("low", 100, speed=0.5, uplink_mbps=1.0, downlink_mbps=8.0)
    ledger = CommunicationLedger()
    ledger.record(1, 0, slow, bytes_down=1_000_000, bytes_up=125_000, compute_seconds=2.0)
    ledger.record(1, 1, DeviceProfile("high", 100), bytes_down=0, bytes_up=0, compute_seconds=1.0)
    assert ledger.round_seconds(1) == pytest.approx(2.0 / 0.5 + 1.0 + 1.0)
    assert ledger.totals_by_tier()["low"] == {"bytes_down": 1_000_000, "bytes_up": 125_000}
    assert tensor_bytes({"a": torch.zeros(3, 2), "b": torch.zeros(4, dtype=torch.int16)}) == 24 + 8


def test_sparse_row_replies_equal_dense_fedavg():
    torch.manual_seed(1)
    shared = {"items": torch.randn(5, 3)}
    dense_deltas = [torch.zeros(5, 3), torch.zeros(5, 3)]
    dense_deltas[0][[0, 2]] = torch.randn(2, 3)
    dense_deltas[1][[2, 4]] = torch.randn(2, 3)
    dense = [ClientUpdate(w, {"items": d}, {"items": Prefix((5, 3))}) for w, d in zip((2.0, 5.0), dense_deltas)]
    sparse = [ClientUpdate(w, {"items": d[r]}, {"items": Prefix((5, 3))}, rows={"items": r})
              for w, d, r in zip((2.0, 5.0), dense_deltas, (torch.tensor([0, 2]), torch.tensor([2, 4])))]
    assert torch.allclose(aggregate(shared, dense)["items"], aggregate(shared, sparse)["items"], atol=1e-6)


FULL = (5, 4)
KINDS = {"prefix": Prefix((3, 2)), "rows": Rows(np.array([4, 0, 2]), (3,)),
         "select": Select((np.array([1, 3]), np.array([0, 3]))), "mask": Mask(np.arange(20).reshape(FULL) % 3 == 0)}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_take_scatter_and_coverage_agree_for_every_holding(kind):
    holding = KINDS[kind]
    tensor = torch.arange(20.0).reshape(FULL)
    block = holdings.take(tensor, holding)
    assert tuple(block.shape) == holdings.shape(holding, FULL)
    covered = holdings.coverage(holding, FULL)
    back = torch.zeros(FULL)
    holdings.scatter_add(back, holding, block)
    assert torch.equal(back, tensor * covered)  # scatter puts every held element back where take found it
    counts = torch.zeros(FULL)
    holdings.scatter_add(counts, holding, 1.0)
    assert torch.equal(counts, covered.float())
    holdings.check(holding, FULL, kind)
    with pytest.raises(ValueError, match="does not fit"):
        holdings.check(holding, (2, 2, 2), kind)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_holder_weighted_mean_for_every_holding(kind):
    """Two clients, one holding the whole tensor, one a part: held elements average over both, the rest take the
    full holder's delta alone."""
    holding = KINDS[kind]
    shared = {"t": torch.zeros(FULL)}
    part = holdings.take(torch.full(FULL, 4.0), holding)
    updates = [ClientUpdate(1.0, {"t": torch.ones(FULL)}, {"t": Prefix(FULL)}),
               ClientUpdate(3.0, {"t": part}, {"t": holding})]
    new = aggregate(shared, updates)["t"]
    covered = holdings.coverage(holding, FULL)
    assert torch.allclose(new[covered], torch.full((int(covered.sum()),), (1 * 1 + 3 * 4) / 4))
    assert torch.equal(new[~covered], torch.ones(int((~covered).sum())))


@pytest.mark.parametrize("kind", ["prefix", "rows", "select"])
def test_row_sparse_reply_equals_its_dense_reply_for_every_holding(kind):
    holding = KINDS[kind]
    torch.manual_seed(2)
    dense = torch.zeros(holdings.shape(holding, FULL))
    touched = torch.tensor([0, 2]) if dense.shape[0] > 2 else torch.tensor([1])
    dense[touched] = torch.randn(len(touched), *dense.shape[1:])
    shared = {"t": torch.randn(FULL)}
    as_dense = aggregate(shared, [ClientUpdate(2.0, {"t": dense}, {"t": holding})])
    as_rows = aggregate(shared, [ClientUpdate(2.0, {"t": dense[touched]}, {"t": holding}, {"t": touched})])
    assert torch.allclose(as_dense["t"], as_rows["t"])


def per_client_reference(shared, updates):
    """The definition, client by client: every element's weighted delta sum over its holders' weights."""
    result = {}
    for name, current in shared.items():
        total = torch.zeros_like(current, dtype=torch.float64)
        weight = torch.zeros_like(total)
        for u in updates:
            held, rows = u.holdings[name], u.rows.get(name)
            holdings.scatter_add(weight, held, u.weight)
            touched = held if rows is None else holdings.rows_of(held, rows.numpy())
            holdings.scatter_add(total, touched, u.weight * u.deltas[name].to(torch.float64))
        mean = torch.where(weight > 0, total / weight.clamp(min=1e-300), torch.zeros_like(total))
        result[name] = (current.to(torch.float64) + 3.0 * mean).to(current.dtype)
    return result


def test_weights_summed_per_holding_give_the_per_client_result_bit_for_bit():
    """40 clients over every kind of holding (tiers share holding objects, prefixes are equal by value), some
    sending only touched rows: grouping the holder weights changes nothing."""
    rng = np.random.default_rng(4)
    shared = {"t": torch.from_numpy(rng.normal(size=FULL).astype(np.float32))}
    updates = []
    for i in range(40):
        kind = sorted(KINDS)[i % len(KINDS)]
        held = Prefix((3, 2)) if kind == "prefix" else KINDS[kind]  # a fresh but equal Prefix each time
        block = holdings.shape(held, FULL)
        delta = torch.from_numpy(rng.normal(size=block).astype(np.float32))
        weight = float(rng.integers(1, 200))
        if kind != "mask" and i % 2:
            touched = np.sort(rng.choice(block[0], size=max(1, block[0] // 2), replace=False))
            updates.append(ClientUpdate(weight, {"t": delta[touched]}, {"t": held}, {"t": torch.from_numpy(touched)}))
        else:
            updates.append(ClientUpdate(weight, {"t": delta}, {"t": held}))
    assert torch.equal(aggregate(shared, updates, 3.0)["t"], per_client_reference(shared, updates)["t"])
