import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from fedrec.cli import main


def error_line(capsys, argv):
    """Run the CLI; assert a user error: exit 2 and exactly one line on stderr, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fedrec: error: "), err
    return err[0]


def train_args(dataset, tmp_path, *extra):
    return ["train", "--dataset", str(dataset), "--model", "mf", "--out", str(tmp_path / "run"), *extra]


def test_train_on_the_builtin_dataset_writes_a_run(tmp_path, capsys):
    assert main(train_args("synthetic", tmp_path, "--epochs", "3", "--seed", "1")) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert f"recall@20 {summary['metrics']['test']['recall@20']:.4f}" in out
    assert summary["seed"] == 1 and summary["epochs_run"] == 3


def test_missing_path(capsys, tmp_path):
    line = error_line(capsys, train_args(tmp_path / "nowhere", tmp_path))
    assert "nowhere" in line and "not a known name" in line


def test_unknown_dataset_name_lists_known_ones(capsys, tmp_path):
    line = error_line(capsys, train_args("movielens-1b", tmp_path))
    assert "synthetic" in line and "gowalla" in line


def test_malformed_line_names_file_and_line(capsys, tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.data").write_text("1\t1\t5\t100\n1\t2\t4\t101\nbroken line\n")
    line = error_line(capsys, train_args(folder, tmp_path))
    assert "u.data line 3" in line


def test_pickle_naming_a_global_is_refused(capsys, tmp_path):
    folder = tmp_path / "sessions"
    folder.mkdir()
    (folder / "all_train_seq.txt").write_bytes(pickle.dumps([[1, 2], [2, 3]], protocol=3))
    (folder / "test.txt").write_bytes(pickle.dumps(([[1]], [subprocess.getoutput]), protocol=3))
    line = error_line(capsys, train_args(folder, tmp_path))
    assert "test.txt" in line and "subprocess.getoutput" in line


def test_unknown_model_and_unknown_key(capsys, tmp_path):
    line = error_line(capsys, ["train", "--dataset", "synthetic", "--model", "ncf", "--out", str(tmp_path)])
    assert "'ncf'" in line and "sasrec" in line
    line = error_line(capsys, train_args("synthetic", tmp_path, "--set", "learning_rate=0.1"))
    assert "learning_rate" in line and "valid keys" in line and "lr" in line
    line = error_line(capsys, train_args("synthetic", tmp_path, "--set", "lr=fast"))
    assert "lr = 'fast' is not a number >= 0" in line


def test_datasets_lists_the_builtin_dataset(capsys):
    assert main(["datasets", "--no-stats"]) == 0
    out = capsys.readouterr().out
    assert "synthetic" in out and "built-in" in out and "tmall" in out


@pytest.mark.parametrize("argv", [["train", "--dataset", "nope", "--model", "mf", "--out", "x"]])
def test_console_entry_point_prints_no_traceback(argv):
    proc = subprocess.run([sys.executable, "-m", "fedrec.cli", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("fedrec: error:")


def test_embedding_flag_trains_a_compressed_table_and_codes_need_a_teacher(tmp_path, capsys):
    args = ["train", "--dataset", "synthetic", "--model", "sasrec", "--out", str(tmp_path / "tt"), "--epochs", "1",
            "--embedding", "stp_tt", "--set", "dim=16", "--set", "inner=16", "--set", "stp_rank=8"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "tt" / "summary.json").read_text())
    assert summary["item_embedding"]["method"] == "stp_tt" and summary["item_embedding"]["options"]["rank"] == 8
    capsys.readouterr()
    assert main(["train", "--dataset", "synthetic", "--model", "sasrec", "--out", str(tmp_path / "c"),
                 "--embedding", "codes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # the dataset line, then the one-line error
    assert err[-1].startswith("fedrec: error: ") and "--set teacher=RUN_DIR" in err[-1] and "Traceback" not in err


def test_a_known_dataset_given_by_path_keeps_its_name_and_tuned_settings(tmp_path, capsys):
    from fedrec.data.registry import load_dataset

    folder = tmp_path / "movielens-100k"  # the known dataset's folder name, anywhere
    folder.mkdir()
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t5\t{10 * u + i}\n" for u in range(1, 6) for i in range(1, 7)))
    assert load_dataset(str(folder)).name == "ml-100k"
    assert main(train_args(folder, tmp_path, "--epochs", "1")) == 0
    assert "config: mf.toml < mf.toml [dataset.ml-100k] < command line (epochs)" in capsys.readouterr().err


def test_scenarios_lists_every_scenario_file_with_its_purpose(capsys):
    assert main(["scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(list(Path("simulations").glob("*.toml")))
    assert any("default.toml" in line and "synthetic-3k" in line for line in lines)


def test_simulate_shortcuts_set_the_run_seed_and_rounds(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["simulate", "simulations/small.toml", "--out", str(out), "--engine", "inprocess", "--seed", "3",
                 "--rounds", "2", "--set", "run.eval_every=2", "--set", "run.clients_per_round=10"]) == 0
    config = (out / "config.toml").read_text()
    assert "seed = 3" in config and "rounds = 2" in config
    assert (out / "run.log").read_text().splitlines()[-1].startswith("round 2/2: ")  # the run's own log
    assert "valid recall@20" in capsys.readouterr().err  # the round line shows the latest evaluation


def test_summary_records_versions_config_and_wall_time(tmp_path):
    out = tmp_path / "run"
    assert main(["simulate", "simulations/small.toml", "--out", str(out), "--engine", "inprocess", "--rounds", "1",
                 "--set", "run.clients_per_round=5"]) == 0
    run = json.loads((out / "summary.json").read_text())["run"]
    assert set(run["versions"]) == {"fedrec", "flwr", "torch", "ray", "numpy"} and run["wall_seconds"] > 0
    assert run["config"]["run"]["rounds"] == 1 and "low" in run["config"]["devices"]


def test_compare_groups_runs_that_differ_only_in_their_seed(tmp_path, capsys):
    import statistics

    quick = ["--engine", "inprocess", "--set", "run.clients_per_round=10", "--set", "run.eval_every=1"]
    runs = {"a0": ("0", "1"), "a1": ("1", "1"), "b": ("0", "2")}
    for name, (seed, rounds) in runs.items():
        assert main(["simulate", "simulations/small.toml", "--out", str(tmp_path / name), "--seed", seed,
                     "--rounds", rounds, *quick]) == 0
    capsys.readouterr()
    assert main(["compare", *(str(tmp_path / n) for n in runs), "--plot", str(tmp_path / "c.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("| a0") or line.startswith("| b")]
    summaries = [json.loads((tmp_path / n / "summary.json").read_text()) for n in ("a0", "a1")]
    values = [s["overall"]["recall@20"] for s in summaries]
    assert len(rows) == 2 and "[0, 1]" in rows[0]
    assert rows[0].endswith(f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f} |")
    assert (tmp_path / "c.png").stat().st_size > 0


def test_session_data_nobody_tuned_for_gets_the_session_default(tmp_path):
    from fedrec.configs import applied_sections, resolve

    folder = tmp_path / "my-sessions"
    folder.mkdir()
    (folder / "all_train_seq.txt").write_bytes(pickle.dumps([[1, 2, 3], [2, 3]]))
    (folder / "test.txt").write_bytes(pickle.dumps(([[1], [2]], [2, 3])))
    assert resolve("sasrec", str(folder))["score_scale"] == 12.0  # [kind.session]
    assert resolve("sasrec", "tmall")["score_scale"] == 16.0 and resolve("sasrec", "ml-100k")["score_scale"] == 0.0
    assert applied_sections("sasrec", str(folder)) == "sasrec.toml < sasrec.toml [kind.session]"
    assert resolve("sasrec", "my-sessions", kind="session")["score_scale"] == 12.0  # the trainer passes the kind


def test_a_centralised_reference_joins_the_report(tmp_path, capsys):
    assert main(train_args("synthetic", tmp_path, "--epochs", "2")) == 0
    reference = json.loads((tmp_path / "run" / "summary.json").read_text())["metrics"]["test"]["recall@20"]
    out = tmp_path / "sim"
    assert main(["simulate", "simulations/small.toml", "--out", str(out), "--engine", "inprocess", "--rounds", "1",
                 "--set", "run.clients_per_round=5", "--set", f'run.reference="{tmp_path / "run"}"']) == 0
    assert f"Centralised reference (mf on synthetic, width 32, `{tmp_path / 'run'}`, test split): recall@20 " \
        f"{reference:.4f}" in (out / "report.md").read_text()


def test_a_run_trains_its_own_centralised_reference_once(tmp_path):
    out = tmp_path / "sim"
    argv = ["simulate", "simulations/small.toml", "--out", str(out), "--engine", "inprocess", "--rounds", "1",
            "--set", "run.clients_per_round=5", "--set", 'run.reference="centralised"', "--set", "model.epochs=2"]
    assert main(argv) == 0
    trained = json.loads((out / "reference" / "summary.json").read_text())
    assert trained["config"]["dim"] == 32 and trained["config"]["epochs"] == 2  # max_dim, the scenario's [model]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reference"]["recall@20"] == trained["metrics"]["test"]["recall@20"]
    assert "training the centralised reference" in (out / "run.log").read_text()
    stamp = (out / "reference" / "summary.json").stat().st_mtime_ns
    assert main(["simulate", "--resume", str(out), "--rounds", "2", "--engine", "inprocess"]) == 0
    assert (out / "reference" / "summary.json").stat().st_mtime_ns == stamp  # kept, not trained again
