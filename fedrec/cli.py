"""The `fedrec` command. User errors print one line (`fedrec: error: ...`) and exit 2, without a traceback."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fedrec.configs import applied_sections, key_values, model_keys, model_names, parse_value, require_model, resolve
from fedrec.configs.rules import check_model_config
from fedrec.errors import ConfigError, FedrecError
from fedrec.ranking import HEADLINE as SUMMARY_KEYS
from fedrec.results import prepare_output
from fedrec.schema import check, count


def _columns(text: str | None) -> dict[str, str] | None:
    return None if text is None else key_values(text.split(","), "--columns")


def cmd_train(args: argparse.Namespace) -> int:
    from fedrec.data.registry import load_dataset
    from fedrec.train.trainer import fit, save_run

    require_model(args.model)
    out = Path(args.out)
    prepare_output(out, args.overwrite)
    check({"seed": count(0)}, {"seed": args.seed}, lambda key: "--seed")
    overrides = {k: parse_value(v) for k, v in key_values(args.set, "--set").items()}
    for key in ("epochs", "embedding", "teacher"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if "embedding" in overrides and "embedding" not in model_keys(args.model):
        raise ConfigError(f"--embedding {overrides['embedding']}: model {args.model!r} trains a full table "
                          f"centrally; compact item tables train with --model sasrec (federated MF takes them as "
                          f"run.method in a scenario)")
    started = time.perf_counter()
    split = load_dataset(args.dataset, seed=args.seed, columns=_columns(args.columns), min_rating=args.min_rating)
    config = resolve(args.model, split.name, args.config, overrides, kind=split.kind)
    check_model_config(args.model, config)
    print(f"{split.name}: {split.n_users} users, {split.n_items} items, {split.n_train} training interactions "
          f"({split.description}); loaded in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    print(f"config: {applied_sections(args.model, split.name, args.config, overrides, split.kind)}", file=sys.stderr)
    result = fit(split, args.model, config, seed=args.seed, log=lambda m: print(m, file=sys.stderr))
    save_run(result, out)
    test = result.summary["metrics"]["test"]
    print("test " + "  ".join(f"{k} {test[k]:.4f}" for k in SUMMARY_KEYS if k in test))
    print(f"best epoch {result.summary['best_epoch']}; run directory: {out}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from fedrec.experiment import scenario as scenario_file
    from fedrec.experiment.rundir import report
    from fedrec.experiment.runner import simulate

    overrides = key_values(args.set, "--set")
    for flag in ("ray_address", "seed", "rounds"):  # shortcuts for --set run.KEY=VALUE
        if getattr(args, flag) is not None:
            overrides[f"run.{flag}"] = str(getattr(args, flag))
    if args.resume:
        out = Path(args.resume)
        scenario = scenario_file.load(out / "config.toml", overrides)
    elif args.scenario and args.out:
        out = Path(args.out)
        scenario = scenario_file.load(args.scenario, overrides)
    else:
        raise ConfigError("simulate needs SCENARIO.toml --out DIR, or --resume DIR")
    try:
        summary = simulate(scenario, out, engine=args.engine, resume=bool(args.resume), overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(f"fedrec: interrupted; the last finished round is checkpointed: `fedrec simulate --resume {out}` "
              f"goes on from it", file=sys.stderr)
        return 130
    print(report(summary, scenario), end="")
    print(f"run directory: {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from fedrec.experiment.compare import plot, table

    runs = [Path(r) for r in args.runs]
    print(table(runs, args.metric), end="")
    if args.plot:
        print(f"plot: {plot(runs, Path(args.plot), args.metric)}")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    """Each scenario file with its first comment line (what it simulates)."""
    folder = args.folder or next((p for p in (Path("simulations"), Path(__file__).resolve().parents[1] / "simulations")
                                  if p.is_dir()), None)
    if folder is None or not Path(folder).is_dir():
        raise ConfigError(f"no scenario folder {folder or 'simulations/'}; give one: fedrec scenarios FOLDER")
    for path in sorted(Path(folder).glob("*.toml")):
        first = next((line.lstrip("# ").strip() for line in path.read_text(errors="replace").splitlines()
                      if line.startswith("#")), "")
        print(f"{str(path):<36} {first}")
    return 0


def cmd_fetch_data(args: argparse.Namespace) -> int:
    from fedrec.data.fetch import SOURCES, fetch
    from fedrec.data.registry import data_root

    root = Path(args.to) if args.to else (data_root() or Path("..") / "shared" / "data")
    folder = fetch(args.name, root)
    print(f"{args.name}: checked and written to {folder} ({SOURCES[args.name][1]})")
    if data_root() is None or folder.parent.resolve() != data_root():
        print(f"use it with: export FEDREC_DATA={folder.parent.resolve()}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from fedrec.data.registry import known_datasets, load_dataset

    header = f"{'name':<12} {'kind':<8} {'users':>8} {'items':>8} {'train':>10} {'valid':>8} {'test':>8}  location"
    print(header)
    for info in known_datasets():
        if not info.available:
            print(f"{info.name:<12} {'-':<8} {'':>8} {'':>8} {'':>10} {'':>8} {'':>8}  {info.location} (absent)")
            continue
        s = load_dataset(info.name).stats() if args.stats else {}
        cells = [s.get(k, "") for k in ("kind", "users", "items", "train_interactions", "valid_examples",
                                        "test_examples")]
        print(f"{info.name:<12} {cells[0]:<8} {cells[1]:>8} {cells[2]:>8} {cells[3]:>10} {cells[4]:>8} {cells[5]:>8}"
              f"  {info.location}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedrec", description="Federated on-device recommendation simulator.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model centrally with validation early stopping")
    train.add_argument("--dataset", required=True, help="a known dataset name (see `fedrec datasets`) or a path")
    train.add_argument("--model", required=True, help=f"one of {', '.join(model_names())}")
    train.add_argument("--out", required=True, help="run directory (summary.json, epochs.parquet, artifact)")
    train.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    train.add_argument("--epochs", type=int, help="maximum epochs (overrides the model config)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--embedding", help="item table: full, codes, tt or stp_tt (sasrec)")
    train.add_argument("--teacher", help="run directory of a full-table sasrec to learn codes from and distil")
    train.add_argument("--config", type=Path, help="TOML file of config keys (overrides model defaults)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config key")
    train.add_argument("--columns", help="CSV column mapping, e.g. user=uid,item=iid,timestamp=ts")
    train.add_argument("--min-rating", type=float, help="keep only ratings >= this value as interactions")
    train.set_defaults(run=cmd_train)

    simulate = sub.add_parser("simulate", help="run a federated simulation scenario (Flower on Ray)")
    simulate.add_argument("scenario", type=Path, nargs="?", help="scenario TOML file (see simulations/)")
    simulate.add_argument("--out", help="run directory")
    simulate.add_argument("--overwrite", action="store_true", help="replace a finished (or unfinished) run in --out")
    simulate.add_argument("--resume", metavar="DIR", help="continue a killed run from its run directory")
    simulate.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                          help="override a scenario key, e.g. run.rounds=5")
    simulate.add_argument("--ray-address", help="join an existing Ray cluster at HOST:PORT")
    simulate.add_argument("--seed", help="the run's seed (--set run.seed=N)")
    simulate.add_argument("--rounds", help="rounds to run (--set run.rounds=N)")
    simulate.add_argument("--engine", choices=("ray", "inprocess"), default="ray",
                          help="ray: Flower's simulation engine (default); inprocess: direct calls, no Ray")
    simulate.set_defaults(run=cmd_simulate)

    compare = sub.add_parser("compare", help="simulation runs side by side per tier (mean ± sd over seeds)")
    compare.add_argument("runs", nargs="+", help="run directories of `fedrec simulate`")
    compare.add_argument("--metric", default=SUMMARY_KEYS[0], choices=SUMMARY_KEYS)
    compare.add_argument("--plot", help="also write a PNG bar chart here")
    compare.set_defaults(run=cmd_compare)

    scenarios = sub.add_parser("scenarios", help="list the scenario files with what each simulates")
    scenarios.add_argument("folder", type=Path, nargs="?", help="a folder of scenario files (default simulations/)")
    scenarios.set_defaults(run=cmd_scenarios)

    fetch_data = sub.add_parser("fetch-data", help="download a known dataset from its public source, checked")
    fetch_data.add_argument("name", help="ml-100k, gowalla, tmall or diginetica")
    fetch_data.add_argument("--to", help="data root (default: $FEDREC_DATA, else ../shared/data)")
    fetch_data.set_defaults(run=cmd_fetch_data)

    datasets = sub.add_parser("datasets", help="list built-in and known datasets with their statistics")
    datasets.add_argument("--no-stats", dest="stats", action="store_false", help="list without loading")
    datasets.set_defaults(run=cmd_datasets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except FedrecError as err:
        print(f"fedrec: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fedrec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
