"""Contracts every registered implementation keeps: each item representation (exact bytes, budgets, layouts) and
each federated (model, method) pair (two rounds, bad replies dropped, resume = uninterrupted, tasks without data)."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from fedrec.data.registry import load_dataset
from fedrec.device import DeviceRun
from fedrec.device.programs import PROGRAMS
from fedrec.embeddings import METHODS, EmbeddingSpec, build, load
from fedrec.embeddings import holdings as held
from fedrec.embeddings.artifact import payload_bytes
from fedrec.errors import BudgetError
from fedrec.experiment import rundir
from fedrec.experiment import scenario as scenario_file
from fedrec.experiment.runner import RunRequest, simulate
from fedrec.federation.coordinator import Coordinator, build_method
from fedrec.federation.inprocess import InProcessTransport
from fedrec.federation.messages import TrainReply
from fedrec.federation.method import supported

SMALL = Path(__file__).resolve().parents[1] / "simulations" / "small.toml"
N_ITEMS, MAX_DIM = 460, 32
SIZED = sorted(m for m in METHODS if m != "blend")  # blend is a centralised ablation with no budget sizing
BUDGETS = [3_000, 15_000, 60_000, 10**9]


def sized(method: str, budget: int) -> EmbeddingSpec:
    return METHODS[method].for_budget(budget, N_ITEMS, MAX_DIM)


@pytest.mark.parametrize("method", SIZED)
@pytest.mark.parametrize("budget", BUDGETS)
def test_every_embedding_stores_what_it_counts_within_its_budget(method, budget, tmp_path):
    try:
        spec = sized(method, budget)
    except BudgetError as err:
        assert err.minimum_bytes > budget
        return
    torch.manual_seed(0)
    items = build(spec)
    assert items.memory_bytes() <= budget
    path = items.export(tmp_path / "items.fedrec")
    assert payload_bytes(path) == items.memory_bytes()
    ids = torch.arange(N_ITEMS)
    assert torch.equal(load(path).lookup(ids), items.lookup(ids))


@pytest.mark.parametrize("method", SIZED)
@pytest.mark.parametrize("budget", BUDGETS[:-1])
def test_every_layout_cuts_the_global_tensors_to_the_device_ones(method, budget):
    try:
        device_spec = sized(method, budget)
    except BudgetError:
        return
    torch.manual_seed(0)
    whole = build(sized(method, BUDGETS[-1]))
    device = build(device_spec)
    layout = whole.layout(device_spec)
    assert set(layout) == set(device.shared_tensors()) == set(whole.shared_tensors())
    blocks = {}
    for name, tensor in whole.shared_tensors().items():
        held.check(layout[name], tuple(tensor.shape), name)
        assert held.shape(layout[name], tuple(tensor.shape)) == tuple(device.shared_tensors()[name].shape)
        blocks[name] = held.take(tensor.detach(), layout[name]).numpy()
    device.load_static(whole.static_arrays(device_spec))
    device.load_shared(blocks)  # the device's representation is the global one cut by its layout
    for name, tensor in device.shared_tensors().items():
        assert np.array_equal(tensor.detach().numpy(), blocks[name])


PAIRS = supported()


def pair_scenario(model: str, method: str, **extra: str) -> scenario_file.Scenario:
    sets = {"run.model": model, "run.method": method, "run.rounds": "2", "run.eval_every": "2",
            "run.clients_per_round": "12", "run.local_epochs": "1", "run.clients_per_node": "1"}
    if model == "sasrec":
        sets |= {"run.lr": "3e-3", "run.server_lr": "1.0", "model.heads": "1", "model.max_len": "20"}
    return scenario_file.load(SMALL, sets | extra)


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def transport_for(split, scenario, cls=InProcessTransport):
    return cls(split, DeviceRun(scenario.run, scenario.model_config()), None)


def test_every_model_and_item_representation_federates_with_a_device_program():
    assert {(m, e) for m in ("mf", "sasrec") for e in ("full", "codes", "tt")} <= set(PAIRS)
    assert set(PAIRS) == set(PROGRAMS)


class FirstReplyCorrupted(InProcessTransport):
    """The first good reply of each round carries a NaN in its first delta."""

    def train(self, round_, tasks):
        replies = super().train(round_, tasks)
        reply = next(r for r in replies if isinstance(r, TrainReply))
        first = sorted(reply.deltas)[0]
        reply.deltas[first] = reply.deltas[first].copy()
        reply.deltas[first].flat[0] = np.nan
        return replies


@pytest.mark.parametrize("model,method", PAIRS)
def test_every_pair_trains_drops_bad_replies_and_holds_its_budgets(model, method, synthetic):
    scenario = pair_scenario(model, method)
    coordinator = Coordinator(synthetic, scenario.run, scenario.devices, scenario.model_config(), log=lambda m: None)
    coordinator.run_rounds(transport_for(synthetic, scenario, FirstReplyCorrupted))
    reasons = [d["reason"] for d in coordinator.history.dropped if not d["reason"].startswith("client failed")]
    assert len(reasons) == 2 and all("non-finite" in r for r in reasons)
    assert all(torch.isfinite(t).all() for t in coordinator.method.shared.values())
    assert coordinator.rounds_done == 2
    for tier in coordinator.method.tiers:
        assert coordinator.method.device_items(tier).memory_bytes() <= tier.profile.budget_bytes
    metrics = coordinator.evaluate(2, transport_for(synthetic, scenario))
    assert all(np.isfinite(m["recall@20"]) for m in metrics.values())


class KilledAfterRoundOne(InProcessTransport):
    """Devices finish round 2 (and store their state), then the server dies before its checkpoint."""

    def train(self, round_, tasks):
        replies = super().train(round_, tasks)
        if round_ == 2:
            raise KeyboardInterrupt
        return replies


@pytest.mark.parametrize("model,method", PAIRS)
def test_every_pair_resumes_to_the_uninterrupted_run(model, method, synthetic, tmp_path):
    scenario = pair_scenario(model, method, **{"run.rounds": "3", "run.eval_every": "3",
                                               "devices.low.failure_prob": "0.2"})
    full = simulate(scenario, tmp_path / "full", engine="inprocess")
    out = tmp_path / "killed"
    rundir.start(out, scenario, resume=False)
    request = RunRequest(scenario, out, log=lambda m: None)
    with pytest.raises(KeyboardInterrupt):
        request.coordinator(synthetic).run_rounds(KilledAfterRoundOne(synthetic, request.device(), request.device_dir),
                                                  checkpoint=request.checkpoint)
    resumed = simulate(scenario_file.load(out / "config.toml"), out, engine="inprocess", resume=True)
    assert results(resumed) == results(full) and resumed["run"]["config"] == full["run"]["config"]


def results(summary: dict) -> dict:
    """A summary without its provenance (which holds wall seconds)."""
    return {k: v for k, v in summary.items() if k != "run"}


def scrambled(split):
    """The same users and items with every user's training data replaced by another user's."""
    order = np.random.default_rng(0).permutation(split.n_users)
    users = order[split.train_users]
    sequences = [split.train_sequences[u] for u in np.argsort(order)]
    return dataclasses.replace(split, train_users=users, train_sequences=sequences)


@pytest.mark.parametrize("model,method", PAIRS)
def test_every_task_is_built_without_reading_user_data(model, method, synthetic):
    scenario = pair_scenario(model, method)
    methods = [build_method(s, scenario.run, scenario.devices, scenario.model_config(), log=lambda m: None)
               for s in (synthetic, scrambled(synthetic))]
    for user in range(0, synthetic.n_users, 17):
        for purpose in ("train", "evaluate"):
            a, b = (m.task(user, purpose) for m in methods)
            assert a.settings == b.settings
            for part in ("shared", "static", "private"):
                left, right = getattr(a, part), getattr(b, part)
                assert left.keys() == right.keys() and all(np.array_equal(left[k], right[k]) for k in left)
