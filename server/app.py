"""Flower ServerApp: runs the coordinator's rounds over the simulated nodes and writes the run directory."""
from __future__ import annotations

import json
import sys
import time

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedrec.data.registry import load_dataset
from fedrec.experiment import rundir
from fedrec.experiment.runner import RunRequest, take_request
from server.strategy import FlowerTransport, discover_nodes

app = ServerApp()


def _progress(request: RunRequest, started: float):
    def show(round_: int, row: dict) -> None:
        rounds = request.scenario.run.rounds
        eta = (time.perf_counter() - started) / round_ * (rounds - round_)
        request.log(f"round {round_}/{rounds}: {row['aggregated']}/{row['sampled']} clients aggregated, "
                    f"{row['dropped']} dropped, loss {row['loss']:.4f}, {row['wall_seconds']:.1f}s, ETA {eta:.0f}s")
    return show


@app.main()
def main(grid: Grid, context: Context) -> None:
    request = take_request(context)
    scenario = request.scenario
    split = load_dataset(scenario.run.dataset)
    coordinator = request.coordinator(split)
    per_node = scenario.run.clients_per_node
    nodes = discover_nodes(grid, expected=-(-split.n_users // per_node), timeout=scenario.run.round_timeout)
    run_json = json.dumps(scenario.to_dict() | {"device_dir": str(request.device_dir.resolve())})
    transport = FlowerTransport(grid, run_json, nodes, per_node, scenario.run.round_timeout)
    coordinator.run_rounds(transport, progress=_progress(request, time.perf_counter()), checkpoint=request.checkpoint)
    rundir.write(request.out, coordinator, scenario)


if __name__ == "__main__":
    sys.exit("run with `fedrec simulate SCENARIO.toml --out DIR` or `flwr run .`")
