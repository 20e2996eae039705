"""Flower ServerApp: runs the coordinator's rounds over the nodes and writes the run directory.

`fedrec simulate` builds one around its run request (`server_app_for`, used by `server.simulation`); `flwr run .`
loads the module-level `app`, which reads the run from its run config (keys scenario, out, set).
"""
from __future__ import annotations

import json
import sys

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedrec.errors import FedrecError
from fedrec.experiment import rundir
from fedrec.experiment.runner import RunRequest, request_from_run_config
from server.transport import FlowerTransport, discover_nodes


def serve(grid: Grid, request: RunRequest) -> None:
    scenario = request.scenario
    split = scenario.load_split()
    coordinator = request.coordinator(split)
    per_node = scenario.run.clients_per_node
    nodes = discover_nodes(grid, -(-split.n_users // per_node), scenario.run.round_timeout, request.stop)
    run_json = json.dumps(scenario.to_dict() | {"device_dir": str(request.device_dir.resolve())})
    transport = FlowerTransport(grid, run_json, nodes, per_node, scenario.run.round_timeout, request.stop)
    coordinator.run_rounds(transport, progress=request.progress(), checkpoint=request.checkpoint)
    rundir.write(request.out, coordinator, scenario)


def server_app_for(request: RunRequest) -> ServerApp:
    """A ServerApp that executes `request` (the run travels in the closure, not in a module global)."""
    server_app = ServerApp()
    server_app.main()(lambda grid, context: serve(grid, request))
    return server_app


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    try:
        serve(grid, request_from_run_config(dict(getattr(context, "run_config", {}) or {})))
    except FedrecError as err:  # a user error under `flwr run`: one line, and a failed run rather than a traceback
        print(f"fedrec: error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    sys.exit("run with `fedrec simulate SCENARIO.toml --out DIR` or `flwr run .`")
