"""Bad input of every class gets one clear line (exit 2, no traceback) and nothing runs or is written."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fedrec.cli import main
from fedrec.data.registry import load_dataset
from fedrec.device import DeviceRun
from fedrec.errors import ConfigError
from fedrec.experiment import scenario as scenario_file
from fedrec.federation.coordinator import Coordinator
from fedrec.federation.inprocess import InProcessTransport
from fedrec.federation.messages import EvalReply, TrainReply
from fedrec.federation.settings import RUN_RULES

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "simulations" / "small.toml"
ITEMS = "items.weight"
QUICK = ["--set", "run.rounds=2", "--set", "run.eval_every=2", "--set", "run.clients_per_round=10",
         "--engine", "inprocess"]


def refused(capsys, argv, out: Path) -> str:
    """The CLI refuses `argv`: exit 2, one `fedrec: error:` line last on stderr, no traceback, no results."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("fedrec: error: ") and "Traceback" not in err, err
    assert not (out / "summary.json").exists()
    return lines[-1]


SIMULATE_VALUES = [
    ("devices.low.fraction", '"half"', "fraction = 'half' is not a number"),
    ("devices.low.budget_bytes", '"15 zB"', "budget_bytes = '15 zB' is not a size in bytes"),
    ("devices.low.budget_bytes", "-3", "budget_bytes = -3 is not a size"),
    ("devices.low.speed", "fast", "speed = 'fast' is not a number > 0"),
    ("devices.low.availability", "0", "availability = 0 is not a number > 0"),
    ("devices.low.failure_prob", "1", "failure_prob = 1 is not a number >= 0 and < 1"),
    ("devices.low.ram", "3", "unknown key(s) ['ram']"),
    ("run.lr", "nan", "lr = nan is not a number > 0"),
    ("run.lr", "-0.5", "lr = -0.5 is not a number > 0"),
    ("run.lr", "inf", "lr = inf is not a number > 0"),
    ("run.server_lr", "nan", "server_lr = nan"),
    ("run.init_std", "-1", "init_std = -1"),
    ("run.round_timeout", "-1", "round_timeout = -1"),
    ("run.l2", "-1", "l2 = -1 is not a number >= 0"),
    ("run.eval_every", "0", "eval_every = 0 is not an integer >= 1"),
    ("run.rounds", "2.5", "rounds = 2.5 is not an integer"),
    ("run.rounds", "true", "rounds = true is not an integer"),
    ("run.seed", "-1", "seed = -1 is not an integer >= 0"),
    ("run.max_dim", "0", "max_dim = 0"),
    ("run.clients_per_round", "0", "clients_per_round = 0"),
    ("run.dataset", "3", "dataset = 3 is not a string"),
    ("run.method", "lsh", "does not federate; supported pairs"),
    ("run.method", "stp_tt", "does not federate; supported pairs"),
    ("run.model", "pop", "does not federate; supported pairs"),
    ("model.l2", "-1", "l2 = -1 is not a number >= 0"),
    ("model.codebooks", "0", "codebooks = 0 is not an integer >= 1"),
    ("model.select_metric", "auc", "select_metric = 'auc' is not one of"),
    ("run.reference", '"/nonexistent/run"', "run.reference = '/nonexistent/run': no summary.json there"),
    ("run.rounds.x", "1", "run.rounds is a value, not a table"),
    ("devices.low", "1", "[devices.low] must be a table"),
    ("run", "1", "expected SECTION.KEY"),
]


@pytest.mark.parametrize("key,value,message", SIMULATE_VALUES)
def test_simulate_refuses_bad_values(key, value, message, tmp_path, capsys):
    out = tmp_path / "run"
    line = refused(capsys, ["simulate", str(SMALL), "--out", str(out), *QUICK, "--set", f"{key}={value}"], out)
    assert message in line
    if not any(m in message for m in ("table", "SECTION", "federate", "summary.json")):  # checked after parsing
        assert f"--set {key}" in line  # names where the value came from
    assert not out.exists()


TRAIN_VALUES = [
    (["--model", "mf", "--epochs", "0"], "epochs = 0 is not an integer >= 1"),
    (["--model", "mf", "--set", "l2=-1"], "l2 = -1"),
    (["--model", "mf", "--set", "lr=nan"], "lr = nan"),
    (["--model", "mf", "--set", "dim=0"], "dim = 0"),
    (["--model", "mf", "--set", "batch_size=0"], "batch_size = 0"),
    (["--model", "mf", "--set", "eval_every=0"], "eval_every = 0"),
    (["--model", "mf", "--set", "select_metric=recall@7"], "select_metric = 'recall@7'"),
    (["--model", "mf", "--seed", "-1"], "--seed: seed = -1 is not an integer >= 0"),
    (["--model", "mf", "--embedding", "codes"], "model 'mf' trains a full table"),
    (["--model", "pop", "--embedding", "codes"], "model 'pop' trains a full table"),
    (["--model", "sasrec", "--embedding", "lsh"], "embedding = 'lsh' is not one of"),
    (["--model", "sasrec", "--set", "heads=3", "--set", "dim=64"], "heads = 3 does not divide dim = 64"),
    (["--model", "sasrec", "--set", "dropout=1.5"], "dropout = 1.5 is not a number >= 0 and < 1"),
    (["--model", "sasrec", "--set", "max_len=0"], "max_len = 0"),
    (["--model", "sasrec", "--set", "teacher_mix=0"], "teacher_mix = 0"),
    (["--model", "sasrec", "--set", "code_assignment=magic"], "code_assignment = 'magic'"),
]


@pytest.mark.parametrize("args,message", TRAIN_VALUES)
def test_train_refuses_bad_values(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert message in refused(capsys, ["train", "--dataset", "synthetic", "--out", str(out), *args], out)


def ratings(tmp_path: Path, rows: list[tuple[int, int, int]]) -> Path:
    """A MovieLens ratings.dat folder of (user, item, time) rows."""
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ratings.dat").write_text("".join(f"{u}::{i}::5::{t}\n" for u, i, t in rows))
    return folder


DEGENERATE = [
    ("one item", [(u, 1, t) for u in range(5) for t in range(4)], "it needs 2 or more items"),
    ("no held-out examples", [(u, u + t, t) for u in range(5) for t in range(2)], "validation examples, test"),
    ("one interaction", [(1, 1, 1)], "it needs 2 or more items"),
]


@pytest.mark.parametrize("case,rows,message", DEGENERATE, ids=[d[0] for d in DEGENERATE])
@pytest.mark.parametrize("command", ["train", "simulate"])
def test_degenerate_datasets_are_refused_up_front(case, rows, message, command, tmp_path, capsys):
    data, out = ratings(tmp_path, rows), tmp_path / "run"
    if command == "train":
        argv = ["train", "--dataset", str(data), "--model", "mf", "--out", str(out)]
    else:
        argv = ["simulate", str(SMALL), "--out", str(out), "--set", f'run.dataset="{data}"', *QUICK]
    assert message in refused(capsys, argv, out)


def test_a_federation_where_no_user_can_train_is_refused(tmp_path, capsys):
    rows = [(u, i, 10 * u + t) for u in range(4) for t, i in enumerate([0, 1, 2, 0, 1])]  # trains on every item
    data, out = ratings(tmp_path, rows), tmp_path / "run"
    argv = ["simulate", str(SMALL), "--out", str(out), "--set", f'run.dataset="{data}"', *QUICK]
    assert "no user can train mf" in refused(capsys, argv, out)


def test_output_folders_are_checked_before_any_work(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out, message in ((a_file, "a file is in the way"), (a_file / "under", "cannot write there")):
        argv = ["simulate", str(SMALL), "--out", str(out), *QUICK]
        assert message in refused(capsys, argv, out if out.is_dir() else tmp_path / "none")
    assert a_file.read_text() == "x"


def test_scenario_that_is_not_utf8_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(SMALL.read_bytes().replace(b"# A small", b"# A sm\xe4ll"))
    assert "not UTF-8 text" in refused(capsys, ["simulate", str(bad), "--out", str(tmp_path / "r"), *QUICK],
                                       tmp_path / "r")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished two-round run of the default scenario."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["simulate", str(SMALL), "--out", str(out), *QUICK]) == 0
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(run, target)
    (target / "summary.json").unlink()
    return target


def test_a_finished_run_is_not_overwritten_without_overwrite(finished, tmp_path, capsys):
    before = (finished / "summary.json").read_text()
    assert main(["simulate", str(SMALL), "--out", str(finished), *QUICK]) == 2
    assert "holds a finished run" in capsys.readouterr().err
    assert (finished / "summary.json").read_text() == before
    target = tmp_path / "again"
    shutil.copytree(finished, target)
    assert main(["simulate", str(SMALL), "--out", str(target), "--overwrite", *QUICK]) == 0


def damage_truncate(run: Path) -> None:
    data = (run / "checkpoint.npz").read_bytes()
    (run / "checkpoint.npz").write_bytes(data[: len(data) // 2])


def damage_empty(run: Path) -> None:
    (run / "checkpoint.npz").write_bytes(b"")


def damage_foreign(run: Path) -> None:
    np.savez(run / "checkpoint.npz", weights=np.zeros(3))


def damage_no_devices(run: Path) -> None:
    shutil.rmtree(run / "devices")


def damage_nan_table(run: Path) -> None:
    with np.load(run / "checkpoint.npz") as stored:
        arrays = {k: stored[k] for k in stored.files}
    arrays["state.shared.items.weight"][:] = np.nan
    np.savez(run / "checkpoint.npz", **arrays)


RESUMES = [
    (damage_truncate, [], "not a readable fedrec checkpoint"),
    (damage_empty, [], "not a readable fedrec checkpoint"),
    (damage_foreign, [], "not a readable fedrec checkpoint"),
    (damage_no_devices, [], "devices not found"),
    (damage_nan_table, ["--set", "run.rounds=3"], "holds non-finite values"),
    (None, [], "nothing to resume: 2 of 2 rounds done"),
    (None, ["--set", "run.rounds=3", "--set", "run.seed=99"], "run.seed = 99 (checkpoint: 0) contradicts"),
    (None, ["--set", "run.rounds=3", "--set", "run.max_dim=16"], "run.max_dim = 16 (checkpoint: 32)"),
    (None, ["--set", "run.rounds=3", "--set", "devices.low.budget_bytes=9000"], "devices.low = "),
]


@pytest.mark.parametrize("damage,extra,message", RESUMES,
                         ids=[m.split(":")[0][:30] + (f"-{e[-1]}" if e else "") for _, e, m in RESUMES])
def test_resume_refuses_what_it_cannot_continue(damage, extra, message, finished, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    if damage:
        damage(run)
    before = sorted(p.name for p in run.iterdir())
    line = refused(capsys, ["simulate", "--resume", str(run), "--engine", "inprocess", *extra], run)
    assert message in line
    assert sorted(p.name for p in run.iterdir()) == before


def test_resume_goes_on_when_only_the_length_changes(finished, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    assert main(["simulate", "--resume", str(run), "--engine", "inprocess", "--set", "run.rounds=3"]) == 0
    assert json.loads((run / "summary.json").read_text())["rounds"] == 3


def test_a_damaged_device_state_file_names_the_device_and_round(finished, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    for state in (run / "devices").glob("user-*.npz"):
        state.write_bytes(b"garbage")
    line = refused(capsys, ["simulate", "--resume", str(run), "--engine", "inprocess", "--set", "run.rounds=3"], run)
    assert "device of user" in line and "its state as of round 2" in line and "/devices/user-" in line


@given(st.dictionaries(st.sampled_from(sorted(RUN_RULES)),
                       st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                                 st.text(max_size=6), st.booleans()), max_size=4))
def test_any_run_values_give_a_valid_scenario_or_a_config_error(values):
    try:
        scenario = scenario_file.load(SMALL, {f"run.{k}": json.dumps(v) if isinstance(v, str) else
                                                str(v).lower() if isinstance(v, bool) else repr(v)
                                                for k, v in values.items()})
    except ConfigError as err:
        assert "\n" not in str(err)
        return
    for key, rule in RUN_RULES.items():
        assert rule.admits(getattr(scenario.run, key)), key


class Overclaiming(InProcessTransport):
    """One reply per round claims too much: a huge delta, an unbounded example count, another user's identity;
    every evaluation round, one reply with an impossible metric sum and one naming a tier that does not exist."""

    def train(self, round_, tasks):
        replies = super().train(round_, tasks)
        reply = next(r for r in replies if isinstance(r, TrainReply))
        if round_ == 1:
            reply.deltas[ITEMS] = reply.deltas[ITEMS].copy()
            reply.deltas[ITEMS].flat[0] = 1e37
        elif round_ == 2:
            reply.n_examples = 10**15
        else:
            reply.user += 1
        return replies

    def evaluate(self, round_, tasks):
        replies = super().evaluate(round_, tasks)
        with_sums = [r for r in replies if isinstance(r, EvalReply) and r.sums]
        with_sums[0].sums = with_sums[0].sums | {"recall@20": 10000.0}
        with_sums[1].tier = 99
        return replies


def test_replies_that_claim_too_much_are_dropped_and_logged():
    split = load_dataset("synthetic")
    scenario = scenario_file.load(SMALL, {"run.rounds": "3", "run.eval_every": "3", "run.clients_per_round": "20"})
    coordinator = Coordinator(split, scenario.run, scenario.devices, scenario.model_config(), log=lambda m: None)
    coordinator.run_rounds(Overclaiming(split, DeviceRun(scenario.run, scenario.model_config()), None))
    reasons = [d["reason"] for d in coordinator.history.dropped if not d["reason"].startswith("client failed")]
    assert "exceeds" in reasons[0] and "n_examples must be a whole number" in reasons[1]
    assert "reply names user" in reasons[2]
    evaluation = [r for r in reasons if r.startswith("evaluation:")]
    assert any("recall@20 sum 10000.0 outside" in r for r in evaluation)
    assert any("tier 99" in r for r in evaluation)
    assert torch.isfinite(coordinator.method.shared[ITEMS]).all()
    evaluated = [row for row in coordinator.history.rows if row["tier"] != "all"]
    assert evaluated and all(0 <= row["recall@20"] <= 1 for row in evaluated)


def test_a_node_cannot_answer_for_users_of_another_node(monkeypatch):
    from types import SimpleNamespace

    from fedrec.experiment import wire
    from fedrec.federation.messages import TrainTask
    from server.transport import FlowerTransport

    def reply(user):
        return TrainReply(user, 0, {ITEMS: np.zeros((2, 2), np.float32)}, {}, 1, 0.0, 0.0)

    class Grid:
        """Node 10 (users 0, 1) also answers for user 2; node 11 (users 2, 3) answers for 3 only."""

        def push_messages(self, messages):
            self.sent = {f"m{m.metadata.dst_node_id}": m.metadata.dst_node_id for m in messages}
            return list(self.sent)

        def pull_messages(self, ids):
            answers = {10: [reply(0), reply(1), reply(2)], 11: [reply(3)]}
            return [SimpleNamespace(metadata=SimpleNamespace(src_node_id=self.sent[i], reply_to_message_id=i),
                                    has_error=lambda: False,
                                    content=wire.pack_train_replies(answers[self.sent[i]], failed=[])) for i in ids]

    monkeypatch.setattr("server.transport.Message", lambda content, dst_node_id, message_type: SimpleNamespace(
        metadata=SimpleNamespace(dst_node_id=dst_node_id), content=content))  # outside a Flower run
    transport = FlowerTransport(Grid(), "{}", {0: 10, 1: 11}, clients_per_node=2, timeout=5.0)
    tasks = [TrainTask(u, 0, {ITEMS: np.zeros((2, 2), np.float32)}) for u in range(4)]
    got = transport.train(1, tasks)
    assert [isinstance(r, TrainReply) for r in got] == [True, True, False, True]
    assert "missing from its node's reply" in str(got[2])


def test_a_user_of_every_item_is_dropped_not_a_hang(tmp_path):
    import pandas as pd

    from fedrec.experiment.runner import simulate

    every = [(0, i, i) for i in range(10)] + [(0, 0, 20), (0, 1, 21)]  # trains on all 10 items
    others = [(u, (u + 3 * t) % 10, t) for u in range(1, 12) for t in range(5)]
    data = ratings(tmp_path, every + others)
    scenario = scenario_file.load(SMALL, {"run.dataset": json.dumps(str(data)), "run.rounds": "3",
                                            "run.eval_every": "3", "run.clients_per_round": "12"})
    summary = simulate(scenario, tmp_path / "run", engine="inprocess", log=lambda m: None)
    dropped = pd.read_parquet(tmp_path / "run" / "dropped.parquet")
    assert any("user 0 has 10 of 10 items" in r for r in dropped.loc[dropped["client"] == 0, "reason"])
    assert summary["rounds"] == 3


def test_too_few_supernodes_is_named_with_the_fix_without_waiting_out_the_timeout():
    import threading

    from server.transport import discover_nodes

    class Grid:
        def get_node_ids(self):
            return [1, 2, 3]

    with pytest.raises(ConfigError, match='3 Flower nodes registered, the scenario needs 40.*"num-supernodes=40"'):
        discover_nodes(Grid(), expected=40, timeout=300.0, stop=threading.Event(), settle=0.3)


def test_a_flwr_run_config_typo_is_one_line_and_a_failed_run(capsys):
    from types import SimpleNamespace

    import server.app

    context = SimpleNamespace(run_config={"scenario": str(SMALL), "set": "run.roundz=3"})
    with pytest.raises(SystemExit) as stopped:
        server.app.main(None, context)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fedrec: error: --set run.roundz: unknown key(s) ['roundz']")
