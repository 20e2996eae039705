"""Federated SASRec with compositional codes: tier slicing, self-distillation, teacher signal, budgets, a full run."""
import numpy as np
import pytest
import torch

from fedrec.configs import resolve
from fedrec.data.registry import load_dataset
from fedrec.device import DeviceData, DeviceRun, DeviceStates
from fedrec.device.sasrec import build_device_model, local_loss
from fedrec.embeddings import EmbeddingSpec, artifact, load
from fedrec.errors import BudgetError, ConfigError
from fedrec.experiment import scenario as scenario_file
from fedrec.experiment.runner import simulate
from fedrec.federation.bodies.sasrec import body_views
from fedrec.federation.coordinator import TIMINGS, Coordinator, build_method
from fedrec.federation.inprocess import InProcessTransport
from fedrec.federation.strategy import HeteroAvg
from fedrec.models.sasrec import PrefixPairs
from fedrec.train.trainer import fit, save_run

# synthetic: 460 items; K = 16 codewords (4-bit codes): m codebooks x width w cost 230 m + 64 m w bytes
DEVICES = {"low": {"fraction": 0.5, "budget_bytes": 800},      # 1 codebook x 8:  742 B
           "mid": {"fraction": 0.3, "budget_bytes": 2_600},    # 2 x 16: 2,508 B
           "high": {"fraction": 0.2, "budget_bytes": 3_800}}   # 3 x 16: 3,762 B


def codes_scenario(**model) -> scenario_file.Scenario:
    run = {"dataset": "synthetic", "model": "sasrec", "method": "codes", "max_dim": 16, "rounds": 4,
           "clients_per_round": 30, "local_epochs": 1, "lr": 1e-2, "eval_every": 4}
    config = {"codebooks": 3, "codewords": 16, "batch_size": 64, "dropout": 0.0} | model
    return scenario_file.from_dict({"run": run, "devices": DEVICES, "model": config}, "test")


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def quiet(_message):
    pass


def FederatedCodes(split, scenario, log=quiet):  # noqa: N802  (the method of the (sasrec, codes) pair)
    return build_method(split, scenario.run, scenario.devices, scenario.model_config(), log)


def device_config(scenario):
    return scenario.model_config()


def codes_spec(m, width):
    return EmbeddingSpec("codes", 460, width, {"codebooks": m, "codewords": 16})


def train_device(split, scenario, user, task, round_, states):
    """One device's round through the device program, with only its own data."""
    from fedrec.federation.messages import TrainTask

    device = DeviceRun(scenario.run, scenario.model_config())
    train_task = TrainTask(user, 0, task.shared, task.private, task.settings, 0.0, task.static)
    return device.program.train(train_task, DeviceData.from_split(split, user), states, round_)


def coordinator_for(split, scenario):
    return Coordinator(split, scenario.run, scenario.devices, scenario.model_config(), log=quiet)


def transport_for(split, scenario):
    return InProcessTransport(split, DeviceRun(scenario.run, scenario.model_config()))


def test_budgets_map_to_codebook_prefix_and_width(synthetic):
    model = FederatedCodes(synthetic, codes_scenario(), quiet)
    assert [(t.spec.options["codebooks"], t.width) for t in model.tiers] == [(1, 8), (2, 16), (3, 16)]
    for tier in model.tiers:
        assert model.device_items(tier).memory_bytes() <= tier.profile.budget_bytes
    tight = scenario_file.load_dict(codes_scenario().to_dict(), {"devices.low.budget_bytes": "200"})
    with pytest.raises(BudgetError, match=r"minimum \(1 codebook, width 1\) is 294 B"):
        FederatedCodes(synthetic, tight, quiet)


def test_narrow_devices_hold_leading_slices_with_q_k_v_cut_alike(synthetic):
    model = FederatedCodes(synthetic, codes_scenario(), quiet)
    low = model.tiers[0]
    held = model.blocks(low)
    device = build_device_model(device_config(codes_scenario()), low.spec)
    for name, view in body_views(device).items():
        assert tuple(view.shape) == held[name].shape
    full = model.shared["blocks.0.attention.in_proj_weight"].reshape(3 * 16, 16)
    with torch.no_grad():
        for name, view in body_views(device).items():
            view.copy_(torch.from_numpy(held[name]))
    q, k, v = device.blocks[0].attention.in_proj_weight.detach().split(low.width)
    assert torch.equal(q, full[:8, :8]) and torch.equal(k, full[16:24, :8]) and torch.equal(v, full[32:40, :8])
    assert np.array_equal(held["items.codebooks"], model.shared["items.codebooks"][:1, :, :8].numpy())


def test_every_prefix_trains_and_the_longest_teaches_the_shorter(synthetic):
    model = FederatedCodes(synthetic, codes_scenario(), quiet)
    config = device_config(codes_scenario())
    device = build_device_model(config, codes_spec(3, 16))
    device.items.set_codes(model.items.codes)
    pairs = PrefixPairs([synthetic.train_sequences[0]], config["max_len"])
    batch = pairs.batch(np.arange(len(pairs)))
    with_prefixes = local_loss(device, batch, config, None)
    without = local_loss(device, batch, config | {"prefix_weight": 0.0}, None)
    assert with_prefixes > without  # the shorter prefixes' CE + KL terms are there
    without.backward()
    untouched = device.items.codebooks.grad.clone()
    device.zero_grad()
    (with_prefixes - without.detach()).backward()
    assert device.items.codebooks.grad[0].abs().sum() > 0 and untouched[2].abs().sum() > 0
    assert device.items.active == 3  # the device model is left at its full prefix
    twice = tuple(torch.cat([t, t]) for t in batch)  # every term is a per-example mean: batch size does not weigh
    assert torch.allclose(local_loss(device, twice, config, None), with_prefixes, rtol=1e-5)


def test_device_update_is_deterministic_and_covers_exactly_its_slices(synthetic):
    model = FederatedCodes(synthetic, codes_scenario(), quiet)
    task = model.task(5, "train")
    one = train_device(synthetic, codes_scenario(), 5, task, 1, DeviceStates())
    two = train_device(synthetic, codes_scenario(), 5, task, 1, DeviceStates())
    assert one.deltas.keys() == model.holdings(model.tier_of(5)).keys()
    assert all(np.array_equal(one.deltas[k], two.deltas[k]) for k in one.deltas)
    assert one.n_examples == len(synthetic.train_sequences[5]) - 1
    from fedrec.federation.messages import TrainReply
    reply = TrainReply(5, model.tier_of(5).index, one.deltas, one.rows, one.n_examples, one.loss, 0.0)
    strategy = HeteroAvg(model)
    update = strategy.validate(strategy.configure_train(1, [5])[0], reply)  # what the server accepts
    assert set(update.deltas) == set(one.deltas)


def test_sessions_grouped_into_pseudo_users_train_on_their_own_sessions():
    from fedrec.data.splits import group_sessions, session_split

    sessions = [[1, 2, 3], [2, 4], [5, 1, 2], [3, 3, 4, 5], [1, 5], [4, 2, 1], [2, 3]]
    split = session_split(sessions, [[1, 2], [4], [5, 3], [2]], [3, 5, 4, 1], "tiny", valid_fraction=2 / 7)
    grouped = group_sessions(split, 2)
    assert grouped.n_users == 3 and len(split.train_sequences) == 5  # sessions 0-4 train, 5-6 validate
    assert [len(grouped.user_sequences(u)) for u in range(3)] == [2, 2, 1]
    assert np.array_equal(grouped.user_sequences(1)[1], split.train_sequences[3])
    assert grouped.test.users.tolist() == [0, 0, 1, 2] and sorted(set(grouped.valid.users)) <= [0, 1, 2]
    pairs = PrefixPairs(grouped.user_sequences(0), max_len=50)
    assert len(pairs) == (3 - 1) + (2 - 1)  # every prefix pair of the device's own sessions
    with pytest.raises(ConfigError, match="applies to session datasets"):
        group_sessions(load_dataset("synthetic"), 2)


def test_codes_are_downloaded_once_per_device(synthetic):
    model = FederatedCodes(synthetic, codes_scenario(), quiet)
    task = model.task(7, "train")
    first, later = model.download_bytes(7, task), model.download_bytes(7, task)
    m = model.tier_of(7).spec.options["codebooks"]
    assert first - later == (synthetic.n_items * m * 4 + 7) // 8  # packed at 4 bits per code


@pytest.fixture(scope="module")
def teacher_dir(synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    config = resolve("sasrec", "synthetic", overrides={"dim": 16, "inner": 16, "epochs": 3})
    save_run(fit(synthetic, "sasrec", config, log=quiet), out)
    return out


def test_teacher_gives_body_codes_and_rows_of_the_users_items_only(synthetic, teacher_dir):
    from fedrec.device import handle_help
    from fedrec.train.teacher import load_teacher

    scenario = codes_scenario(teacher=str(teacher_dir), code_epochs=5)
    model = FederatedCodes(synthetic, scenario, quiet)
    teacher = body_views(load_teacher(teacher_dir, synthetic))
    assert all(torch.equal(model.shared[name], view) for name, view in teacher.items())  # the server starts from it
    assert model.teacher_table is not None and model.teacher_table.shape == (synthetic.n_items, 16)
    assert model.wants_help(3) and model.task(3, "train").private == {}  # nothing until the device asks
    device = DeviceRun(scenario.run, scenario.model_config())
    model.receive_help_request(handle_help(device, DeviceData.from_split(synthetic, 3)))  # the device's own items
    assert not model.wants_help(3)
    task = model.task(3, "train")
    assert np.array_equal(task.private["teacher_ids"], np.unique(synthetic.train_sequences[3]))
    width = model.tier_of(3).width
    assert np.array_equal(task.private["teacher_rows"], model.teacher_table[task.private["teacher_ids"], :width])
    assert model.task(3, "evaluate").private == {}  # evaluation needs no teacher
    update = train_device(synthetic, scenario, 3, task, 1, DeviceStates())
    assert np.isfinite(update.loss)


def test_three_tier_run_writes_each_tier_artifact_at_its_counted_bytes(synthetic, tmp_path):
    summary = simulate(codes_scenario(), tmp_path, engine="inprocess", log=quiet)
    for name, tier in summary["tiers"].items():
        path = tmp_path / "items" / f"{name}.fedrec"
        _, tensors, _ = artifact.read(path)
        stored = sum(t.numel() * t.element_size() for t in tensors.values())
        assert stored == tier["bytes_on_device"] == load(path).memory_bytes() <= tier["budget_bytes"]
        assert tier["representation"]["method"] == "codes"


def overall(per_tier: dict[str, dict[str, float]], metric: str = "recall@20") -> float:
    return sum(t[metric] * t["examples"] for t in per_tier.values()) / sum(t["examples"] for t in per_tier.values())


def test_federated_rounds_lift_the_model_above_its_untrained_start(synthetic):
    scenario = scenario_file.load_dict(codes_scenario().to_dict(), {"run.rounds": "8", "run.clients_per_round": "50"})
    coordinator = coordinator_for(synthetic, scenario)
    transport = transport_for(synthetic, scenario)
    before = coordinator.evaluate(0, transport, "valid")
    coordinator.run_rounds(transport)
    after = coordinator.evaluate(8, transport, "valid")
    # untrained: random ranking (20 / 460 = 0.043, measured 0.043); after 8 rounds of 50 devices 0.060 measured
    assert overall(after) > overall(before) + 0.01


def test_same_seed_same_rounds_and_resume_state(synthetic, tmp_path):
    scenario = codes_scenario()
    runs = []
    for _ in range(2):
        coordinator = coordinator_for(synthetic, scenario)
        coordinator.run_rounds(transport_for(synthetic, scenario), checkpoint=tmp_path / "c.npz")
        runs.append(coordinator)
    timeless = lambda rows: [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]  # noqa: E731
    assert timeless(runs[0].history.rows) == timeless(runs[1].history.rows)
    restored = coordinator_for(synthetic, scenario)
    restored.restore(tmp_path / "c.npz")
    assert all(torch.equal(restored.method.shared[k], runs[1].method.shared[k]) for k in restored.method.shared)
    assert restored.method._has_static == runs[1].method._has_static


def test_flower_client_app_trains_codes_devices_like_direct_calls(synthetic, tmp_path):
    """Codes tasks of two tiers through the Flower wire and ClientApp give the direct call's deltas."""
    import json
    import time

    from flwr.app import Context, Message, MessageType, Metadata, RecordDict

    import clients.app as client_app
    from fedrec.experiment import wire
    scenario = codes_scenario()
    model = FederatedCodes(synthetic, scenario, quiet)
    users = [u for u in range(20) if model.tier_of(u).index in (0, 2)][:3]
    tasks = HeteroAvg(model).configure_train(1, users)
    run_json = json.dumps(scenario.to_dict() | {"device_dir": str(tmp_path)})
    metadata = Metadata(run_id=1, message_id="m", src_node_id=0, dst_node_id=1, reply_to_message_id="", group_id="",
                        created_at=time.time(), ttl=60.0, message_type=MessageType.TRAIN)
    context = Context(run_id=1, node_id=1, node_config={"partition-id": 0}, state=RecordDict(), run_config={})
    reply = client_app.train(Message(wire.pack_train(tasks, run_json, 1), metadata=metadata), context)
    replies, failed = wire.unpack_train_replies(reply.content)
    assert failed == [] and [r.user for r in replies] == users
    for task, got in zip(tasks, replies):
        direct = train_device(synthetic, scenario, task.user, task, 1, DeviceStates())
        assert got.deltas.keys() == direct.deltas.keys()
        assert all(np.array_equal(got.deltas[k], direct.deltas[k]) for k in got.deltas)
