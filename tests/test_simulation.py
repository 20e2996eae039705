"""Federated simulation: scenario validation, the coordinator (in process), the Flower wire codec and strategy."""
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, Message, MessageType, Metadata, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from fedrec.data.registry import load_dataset
from fedrec.device import DeviceRun
from fedrec.embeddings.holdings import Prefix
from fedrec.errors import BudgetError, ConfigError
from fedrec.experiment import scenario as scenario_file
from fedrec.experiment import wire
from fedrec.experiment.runner import check_ray_address, simulate
from fedrec.federation.aggregation import ClientUpdate, aggregate
from fedrec.federation.coordinator import TIMINGS, Coordinator
from fedrec.federation.inprocess import InProcessTransport
from fedrec.federation.messages import EvalReply, EvalTask, TrainReply, TrainTask

ITEMS = "items.weight"

SMALL = Path(__file__).resolve().parents[1] / "simulations" / "small.toml"


def small(**overrides: str) -> scenario_file.Scenario:
    base = {"run.rounds": "3", "run.clients_per_round": "20", "run.eval_every": "3"}
    return scenario_file.load(SMALL, base | overrides)


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def coordinator_for(split, scenario):
    return Coordinator(split, scenario.run, scenario.devices, scenario.model_config(), log=lambda m: None)


def transport_for(split, scenario, cls=InProcessTransport, device_dir=None):
    return cls(split, DeviceRun(scenario.run, scenario.model_config()), device_dir)


def run_inprocess(split, scenario):
    coordinator = coordinator_for(split, scenario)
    coordinator.run_rounds(transport_for(split, scenario))
    return coordinator


def test_unknown_keys_list_the_valid_ones():
    with pytest.raises(ConfigError, match=r"--set run.roundz: unknown key\(s\) \['roundz'\]; valid keys: .*'rounds'"):
        scenario_file.load(SMALL, {"run.roundz": "3"})
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['modle'\]"):
        scenario_file.load(SMALL, {"modle.dim": "3"})
    with pytest.raises(ConfigError, match=r"--set model.dimm: unknown key\(s\) \['dimm'\]; valid keys: .*'dim'"):
        scenario_file.load(SMALL, {"model.dimm": "3"})


def test_budget_that_fits_nothing_names_the_minimum(synthetic, tmp_path):
    scenario = small(**{"devices.low.budget_bytes": "100"})
    with pytest.raises(BudgetError, match=f"minimum \\(width 1\\) is {synthetic.n_items * 4} B"):
        simulate(scenario, tmp_path, engine="inprocess")


def test_unreachable_ray_address_is_a_clear_error():
    with pytest.raises(ConfigError, match="cannot reach a Ray cluster at 127.0.0.1:9"):
        check_ray_address("127.0.0.1:9", timeout=2.0)


def test_tiers_hold_their_budget_and_learn(synthetic, tmp_path):
    summary = simulate(small(**{"run.rounds": "20", "run.eval_every": "20", "run.clients_per_round": "50"}),
                       tmp_path, engine="inprocess")
    for name, tier in summary["tiers"].items():
        assert tier["bytes_on_device"] <= tier["budget_bytes"]
        assert_artifact_holds(tmp_path / "items" / f"{name}.fedrec", tier["bytes_on_device"])
        assert tier["bytes_down"] > 0 and tier["bytes_up"] > 0
    assert summary["overall"]["recall@20"] > 0.12  # random ranking gives about 0.04 on 460 items
    for t in [*summary["tiers"].values(), summary["overall"]]:  # users counted, a bootstrap interval around each
        low, high = t["recall@20_interval"]
        assert t["users"] > 0 and low <= t["recall@20"] <= high and high - low < 0.5
    assert sum(t["users"] for t in summary["tiers"].values()) == summary["overall"]["users"] == 200
    assert "Test split, round 20" in (tmp_path / "report.md").read_text()
    assert {"config.toml", "rounds.parquet", "clients.parquet", "summary.json", "report.md"} <= {
        p.name for p in tmp_path.iterdir()}
    assert scenario_file.load(tmp_path / "config.toml").run.rounds == 20
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"metrics_per_round.png", "bytes_per_tier.png"}


def assert_artifact_holds(path: Path, counted: int) -> None:
    """The exported on-device artifact's payload is exactly the bytes counted for the tier."""
    from fedrec.embeddings import artifact, load

    _, tensors, _ = artifact.read(path)
    assert sum(t.numel() * t.element_size() for t in tensors.values()) == counted == load(path).memory_bytes()


def test_same_seed_same_metrics_and_failures_are_tolerated(synthetic):
    scenario = small(**{"devices.low.failure_prob": "0.5"})
    a, b = run_inprocess(synthetic, scenario), run_inprocess(synthetic, scenario)
    timeless = lambda rows: [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]  # noqa: E731
    assert timeless(a.history.rows) == timeless(b.history.rows)
    assert torch.equal(a.method.shared[ITEMS], b.method.shared[ITEMS])
    reasons = {d["reason"] for d in a.history.dropped}
    assert any(r.startswith("client failed") for r in reasons) and a.rounds_done == 3


class CorruptingTransport(InProcessTransport):
    """Turns the first reply of each round into a bad one (NaN, wrong width, bad rows in turn)."""

    def train(self, round_, tasks):
        replies = super().train(round_, tasks)
        good = next(i for i, r in enumerate(replies) if isinstance(r, TrainReply))
        r = replies[good]
        if round_ == 1:
            r.deltas[ITEMS][0, 0] = np.nan
        elif round_ == 2:
            r.deltas[ITEMS] = r.deltas[ITEMS][:, :1].copy()
        else:
            r.rows[ITEMS] = r.rows[ITEMS].copy()
            r.rows[ITEMS][0] = 10**9
        return replies


def test_bad_replies_are_dropped_and_logged(synthetic):
    scenario = small()
    coordinator = coordinator_for(synthetic, scenario)
    coordinator.run_rounds(transport_for(synthetic, scenario, CorruptingTransport))
    reasons = [d["reason"] for d in coordinator.history.dropped if not d["reason"].startswith("client failed")]
    assert len(reasons) == 3
    assert "non-finite" in reasons[0] and "shape" in reasons[1] and "distinct ids" in reasons[2]
    assert torch.isfinite(coordinator.method.shared[ITEMS]).all()


def test_one_tier_holding_everything_equals_flower_fedavg():
    torch.manual_seed(0)
    table = torch.randn(6, 4)
    client_tables = [table + torch.randn(6, 4) for _ in range(3)]
    counts = [5, 1, 9]

    def reply(arrays, n):
        metadata = Metadata(run_id=1, message_id="", src_node_id=1, dst_node_id=0, reply_to_message_id="x",
                            group_id="", created_at=time.time(), ttl=60.0, message_type=MessageType.TRAIN)
        content = RecordDict({"arrays": ArrayRecord({"items": Array(arrays.numpy())}),
                              "metrics": MetricRecord({"num-examples": n})})
        return Message(content, metadata=metadata)

    fedavg, _ = FedAvg().aggregate_train(1, [reply(t, n) for t, n in zip(client_tables, counts)])
    ours = aggregate({"items": table}, [ClientUpdate(float(n), {"items": t - table}, {"items": Prefix((6, 4))})
                                        for t, n in zip(client_tables, counts)])["items"]
    assert np.allclose(fedavg["items"].numpy(), ours.numpy(), atol=1e-5)


def test_wire_round_trip_keeps_tasks_and_replies():
    items = np.arange(24, dtype=np.float32).reshape(6, 4)
    private = {"teacher_rows": np.ones((2, 2), np.float32)}
    codes = np.arange(6, dtype=np.uint8)[:, None]
    tasks = [TrainTask(3, 0, {"items": items[:, :2]}, private, {"widths": [2]}, 0.1, {"codes": codes}),
             TrainTask(4, 1, {"items": items}, {}, {"widths": [2, 4]}, 0.0),
             TrainTask(5, 0, {"items": items[:, :2]}, {}, {"widths": [2]}, 0.0, {"codes": codes})]
    message = wire.pack_train(tasks, '{"x": 1}', 7)
    assert sorted(message["arrays"].keys()) == ["3.teacher_rows", "shared.0.items", "shared.1.items",
                                                "static.0.codes"]  # once per tier
    scenario_json, round_, back = wire.unpack_train(message)
    assert (scenario_json, round_) == ('{"x": 1}', 7)
    assert [(t.user, t.tier, t.settings, t.failure_prob) for t in back] == [
        (3, 0, {"widths": [2]}, 0.1), (4, 1, {"widths": [2, 4]}, 0.0), (5, 0, {"widths": [2]}, 0.0)]
    assert np.array_equal(back[0].shared["items"], items[:, :2]) and np.array_equal(back[1].shared["items"], items)
    assert list(back[0].private) == ["teacher_rows"] and back[1].private == {}
    assert np.array_equal(back[2].static["codes"], codes) and back[1].static == {}
    replies = [TrainReply(3, 0, {"items": np.ones((2, 2), np.float32)}, {"items": np.array([1, 5])}, 4, 0.5, 0.01)]
    got, failed = wire.unpack_train_replies(wire.pack_train_replies(replies, failed=[4]))
    assert failed == [4] and got[0].user == 3 and got[0].n_examples == 4
    assert np.array_equal(got[0].rows["items"], [1, 5]) and got[0].deltas["items"].shape == (2, 2)
    evals = wire.unpack_eval_replies(wire.pack_eval_replies([EvalReply(3, 0, {"hr@20": 1.0, "examples": 1.0}),
                                                             EvalReply(4, 1, {})]))
    assert evals[0].sums == {"hr@20": 1.0, "examples": 1.0} and evals[1].sums == {}
    eval_task = EvalTask(3, 0, {"items": items[:, :2]}, split="valid")
    _, _, eval_tasks = wire.unpack_evaluate(wire.pack_evaluate([eval_task], "{}", 2))
    assert eval_tasks[0].split == "valid" and eval_tasks[0].shared["items"].shape == (6, 2)


@pytest.mark.ray
def test_flower_ray_run_equals_the_inprocess_run(tmp_path):
    """End to end on Flower's Ray engine (cohort mode, 4 nodes): same seed, same metrics as direct calls."""
    import subprocess
    import sys

    sets = ["run.rounds=2", "run.eval_every=2", "run.clients_per_round=20", "run.clients_per_node=50",
            "devices.low.failure_prob=0.2"]
    command = [sys.executable, "-m", "fedrec.cli", "simulate", str(SMALL), "--out", str(tmp_path / "ray")]
    for s in sets:
        command += ["--set", s]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "RAY_USAGE_STATS_ENABLED": "0",
                               "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "round 2/2" in proc.stderr and "| overall |" in proc.stdout
    assert_same_as_inprocess(json.loads((tmp_path / "ray" / "summary.json").read_text()), sets, tmp_path / "local")


def assert_same_as_inprocess(summary: dict, sets: list[str], out: Path) -> None:
    """Per-tier metrics and bytes of `summary` equal an in-process run of the default scenario with `sets`."""
    local = simulate(scenario_file.load(SMALL, dict(s.split("=") for s in sets)), out, engine="inprocess")
    for tier, metrics in local["tiers"].items():
        for key in ("recall@20", "ndcg@20", "bytes_down", "bytes_up"):
            assert summary["tiers"][tier][key] == pytest.approx(metrics[key], abs=1e-6), (tier, key)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    from fedrec.cli import main

    (tmp_path / "config.toml").write_text(SMALL.read_text())
    assert main(["simulate", "--resume", str(tmp_path), "--engine", "inprocess"]) == 2
    assert "cannot resume" in capsys.readouterr().err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ray
def test_simulation_joins_an_existing_ray_cluster(tmp_path):
    """`--ray-address` runs through a cluster started with `ray start --head` on loopback, which is then stopped."""
    import os
    import subprocess
    import sys

    ray = Path(sys.executable).with_name("ray")
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "FLWR_TELEMETRY_ENABLED": "0"}
    start = [str(ray), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
             "--include-dashboard=false", "--disable-usage-stats"]
    subprocess.run(start, check=True, capture_output=True, timeout=120, env=env)
    try:
        command = [sys.executable, "-m", "fedrec.cli", "simulate", str(SMALL), "--out", str(tmp_path),
                   "--ray-address", f"127.0.0.1:{port}", "--set", "run.rounds=2", "--set", "run.eval_every=2",
                   "--set", "run.clients_per_node=50", "--set", "run.clients_per_round=20"]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads((tmp_path / "summary.json").read_text())["rounds"] == 2
    finally:
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, timeout=120, env=env)


@pytest.mark.slow
@pytest.mark.ray
def test_flwr_run_runs_the_apps_from_pyproject(tmp_path):
    """`flwr run .` (managed local SuperLink on free loopback ports, no dependency install) writes a run directory."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr"), "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
           "FLWR_LOCAL_CONTROL_API_PORT": str(_free_port()), "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(_free_port()),
           "FLWR_TELEMETRY_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "run"
    config = f"scenario='{SMALL}' out='{out}' set='run.rounds=2 run.eval_every=2'"
    try:
        proc = subprocess.run(["flwr", "run", ".", "--stream", "--run-config", config,
                               "--federation-config", "num-supernodes=40"],
                              cwd=SMALL.parents[1], capture_output=True, text=True, timeout=400, env=env)
        # `flwr run --stream` exits 0 even when the run fails: the run directory is the real check
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["rounds"] == 2 and set(summary["tiers"]) == {"low", "mid", "high"}
        assert scenario_file.load(out / "config.toml").run.rounds == 2
    finally:  # `flwr run` leaves its SuperLink running: stop the one started for this FLWR_HOME
        found = subprocess.run(["pgrep", "-f", f"flower-superlink.*{tmp_path}"], capture_output=True, text=True)
        for pid in found.stdout.split():
            os.kill(int(pid), signal.SIGTERM)


@pytest.mark.slow
@pytest.mark.ray
def test_resume_through_ray_after_kill_minus_nine_matches_the_uninterrupted_run(tmp_path):
    """SIGKILL the whole `fedrec simulate` process group (Ray included) after round 2; `--resume` finishes the run."""
    import os
    import signal
    import subprocess
    import sys

    sets = ["run.rounds=4", "run.eval_every=4", "run.clients_per_round=20", "run.clients_per_node=50",
            "devices.low.failure_prob=0.2"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "FLWR_TELEMETRY_ENABLED": "0"}
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "fedrec.cli", "simulate", str(SMALL), "--out", str(out)]
    for s in sets:
        command += ["--set", s]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True)
    try:
        for line in proc.stderr:
            if line.startswith("round 2/4"):
                break
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert not (out / "summary.json").exists() and (out / "checkpoint.npz").exists()
    resumed = subprocess.run([sys.executable, "-m", "fedrec.cli", "simulate", "--resume", str(out)],
                             capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "round 3/4" in resumed.stderr and "round 1/4" not in resumed.stderr
    assert_same_as_inprocess(json.loads((out / "summary.json").read_text()), sets, tmp_path / "full")


def test_cohort_node_replies_equal_one_node_per_user(synthetic, tmp_path):
    """K users in one ClientApp call give exactly the replies of K separate single-user nodes (same seed)."""
    from flwr.app import Context

    import clients.app as client_app

    scenario = small()
    strategy = coordinator_for(synthetic, scenario).strategy
    run_json = json.dumps(scenario.to_dict() | {"device_dir": str(tmp_path)})
    tasks = strategy.configure_train(1, [3, 4, 5, 6])

    def call(group, node):
        metadata = Metadata(run_id=1, message_id=f"m{node}", src_node_id=0, dst_node_id=node, reply_to_message_id="",
                            group_id="", created_at=time.time(), ttl=60.0, message_type=MessageType.TRAIN)
        context = Context(run_id=1, node_id=node, node_config={"partition-id": node}, state=RecordDict(),
                          run_config={})
        reply = client_app.train(Message(wire.pack_train(group, run_json, 1), metadata=metadata), context)
        return wire.unpack_train_replies(reply.content)[0]

    cohort = call(tasks, 0)
    single = [r for i, t in enumerate(tasks) for r in call([t], i + 1)]
    assert [r.user for r in cohort] == [r.user for r in single] == [3, 4, 5, 6]
    for a, b in zip(cohort, single):
        assert np.array_equal(a.rows[ITEMS], b.rows[ITEMS]) and a.loss == b.loss
        assert np.array_equal(a.deltas[ITEMS], b.deltas[ITEMS])


@pytest.mark.ray
def test_ctrl_c_stops_a_ray_run_within_seconds_and_the_resume_equals_the_uninterrupted_run(tmp_path):
    """One SIGINT during round 3: exit 130 in seconds, no Ray left behind, only whole rounds checkpointed."""
    import os
    import signal
    import subprocess
    import sys

    sets = ["run.rounds=12", "run.eval_every=12", "run.clients_per_round=20", "devices.low.failure_prob=0.2"]
    out = tmp_path / "ray"
    command = [sys.executable, "-m", "fedrec.cli", "simulate", str(SMALL), "--out", str(out)]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "FLWR_TELEMETRY_ENABLED": "0"}
    proc = subprocess.Popen([*command, *(a for s in sets for a in ("--set", s))], stderr=subprocess.PIPE, text=True,
                            env=env)
    for line in proc.stderr:
        if line.startswith("round 3/"):
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and "--resume" in rest, rest[-2000:]
    with np.load(out / "checkpoint.npz") as stored:
        done = json.loads(str(stored["meta"]))["rounds_done"]
    assert 3 <= done < 12 and not (out / "summary.json").exists()
    resumed = simulate(scenario_file.load(out / "config.toml"), out, engine="inprocess", resume=True)
    assert_same_as_inprocess(resumed, sets, tmp_path / "local")


@pytest.mark.ray
def test_ray_processes_end_soon_after_the_driver_is_killed(tmp_path):
    """SIGKILL only the `fedrec simulate` process: its reaper stops every Ray process it started within seconds."""
    import os
    import signal
    import subprocess
    import sys

    from server.reaper import alive, descendants

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "FLWR_TELEMETRY_ENABLED": "0"}
    command = [sys.executable, "-m", "fedrec.cli", "simulate", str(SMALL), "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True)
    started: set[tuple[int, int]] = set()
    try:
        for line in proc.stderr:
            if line.startswith("round 1/"):
                break
        started = descendants(proc.pid)
        names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid, _ in alive(started)}
        assert {"raylet", "gcs_server"} <= names, names
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while alive(started) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not alive(started), [Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid, _ in alive(started)]
    finally:
        proc.kill()
        for pid, _ in alive(started):
            os.kill(pid, signal.SIGKILL)
