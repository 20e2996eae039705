"""Federated simulation costs on Flower's Ray engine (BENCHMARKS.md), each figure measured in this one run.

1. Per-client-round cost of fedrec's ClientApp against a no-op ClientApp (same ServerApp, same scenario, same
   machine, same run of this script): median seconds per training round at `--clients` clients per round, and the ratio.
2. Cohort mode: one round in which every user trains, all users simulated by `--nodes` nodes.

    python benchmarks/federated.py --scenario simulations/ml100k_mf.toml --clients 100 --rounds 6
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from fedrec.experiment import rundir, wire
from fedrec.experiment import scenario as scenario_file
from fedrec.experiment.runner import RunRequest
from server.simulation import run_ray

noop_app = ClientApp()


@noop_app.train()
def _noop_train(msg: Message, context: Context) -> Message:
    """Answers at once with no update: what Flower + Ray cost per client, with fedrec's message sizes."""
    return Message(wire.pack_train_replies([], failed=[]), reply_to=msg)


@noop_app.evaluate()
def _noop_evaluate(msg: Message, context: Context) -> Message:
    return Message(wire.pack_eval_replies([]), reply_to=msg)


@noop_app.query()
def _noop_query(msg: Message, context: Context) -> Message:
    from clients.app import query

    return query(msg, context)


def _round_seconds(out: Path) -> pd.DataFrame:
    """Wall seconds of the training-only rounds (total, waiting for clients, server work): the first round (actor
    start-up) and the last (evaluation) are left out."""
    rounds = pd.read_parquet(out / "rounds.parquet")
    return rounds.loc[rounds["tier"] == "all", ["wall_seconds", "clients_seconds", "server_seconds"]].iloc[1:-1]


def _run(scenario: scenario_file.Scenario, out: Path, client_app: ClientApp | None = None) -> pd.DataFrame:
    """One Ray-engine run of `scenario` with fedrec's ClientApp, or `client_app` in its place."""
    split = scenario.load_split()
    request = RunRequest(scenario, out, log=lambda message: None)
    rundir.start(out, scenario, resume=False)
    run_ray(request, split, client=client_app)
    return _round_seconds(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=Path("simulations/ml100k_mf.toml"))
    parser.add_argument("--clients", type=int, default=100, help="clients per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per run (the first and last are not timed)")
    parser.add_argument("--nodes", type=int, default=2, help="nodes for the cohort-mode full round")
    args = parser.parse_args()
    sets = {"run.rounds": str(args.rounds), "run.clients_per_round": str(args.clients),
            "run.eval_every": str(10**6)}
    base = scenario_file.load(args.scenario, sets)
    n_users = base.load_split().n_users
    with tempfile.TemporaryDirectory() as tmp:
        ours = _run(base, Path(tmp) / "ours")
        noop = _run(base, Path(tmp) / "noop", noop_app)
        cohort = scenario_file.load(args.scenario, sets | {
            "run.rounds": "3", "run.clients_per_round": str(n_users),
            "run.clients_per_node": str(-(-n_users // args.nodes))})
        full_round = _run(cohort, Path(tmp) / "cohort")
    ours_med, noop_med = ours.median(), noop.median()
    print(f"| {base.run.dataset} | {args.clients} clients/round | fedrec ClientApp {ours_med.wall_seconds:.2f} s/round"
          f" | no-op ClientApp {noop_med.wall_seconds:.2f} s/round | ratio "
          f"{ours_med.wall_seconds / noop_med.wall_seconds:.2f} |")
    for name, med in (("fedrec", ours_med), ("no-op", noop_med)):
        print(f"  {name}: {med.clients_seconds:.2f} s waiting for clients, {med.server_seconds:.2f} s server work")
    print(f"| cohort mode | all {n_users} users in one round on {args.nodes} nodes | "
          f"{full_round.wall_seconds.iloc[0]:.2f} s |")


if __name__ == "__main__":
    main()
