"""Flower ServerApp: runs the coordinator's rounds over the simulated nodes and writes the run directory."""
from __future__ import annotations

import json
import sys

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedrec.experiment import rundir
from fedrec.experiment.runner import take_request
from server.strategy import FlowerTransport, discover_nodes

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    request = take_request(context)
    scenario = request.scenario
    split = scenario.load_split()
    coordinator = request.coordinator(split)
    per_node = scenario.run.clients_per_node
    nodes = discover_nodes(grid, expected=-(-split.n_users // per_node), timeout=scenario.run.round_timeout)
    run_json = json.dumps(scenario.to_dict() | {"device_dir": str(request.device_dir.resolve())})
    transport = FlowerTransport(grid, run_json, nodes, per_node, scenario.run.round_timeout)
    coordinator.run_rounds(transport, progress=request.progress(), checkpoint=request.checkpoint)
    rundir.write(request.out, coordinator, scenario)


if __name__ == "__main__":
    sys.exit("run with `fedrec simulate SCENARIO.toml --out DIR` or `flwr run .`")
