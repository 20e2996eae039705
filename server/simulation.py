"""The `ray` engine of `fedrec simulate`: Flower's simulation engine on a Ray cluster, with fedrec's apps.

Registered in the `fedrec.engines` entry-point group (pyproject.toml), so fedrec finds it without importing the apps.
A change of Flower's entry point is a change here only.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from flwr.simulation import run_simulation

from clients.app import app as client_app
from fedrec.experiment.runner import RunRequest, check_ray_address
from server.app import server_app_for
from server.reaper import start_reaper


def backend_config(request: RunRequest) -> dict[str, dict[str, Any]]:
    run = request.scenario.run
    if run.ray_address:
        check_ray_address(run.ray_address)
        init_args: dict[str, Any] = {"address": run.ray_address}
    else:  # "local" always starts a fresh cluster, never silently joining a stray one
        init_args = {"address": "local", "num_cpus": os.cpu_count() or 1, "include_dashboard": False}
    return {"client_resources": {"num_cpus": run.num_cpus_per_client, "num_gpus": 0.0}, "init_args": init_args}


def _quiet_notices() -> None:
    """Drop the notices a user of fedrec cannot act on: Flower's deprecation block for `run_simulation` (its
    replacement, `flwr run`, is what README documents for SuperNodes; a simulation driven from Python has no other
    entry point) and Ray's FutureWarning about accelerator variables (no accelerators are used)."""
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    logging.getLogger("flwr").addFilter(lambda record: "deprecated" not in record.getMessage().lower())


def run_ray(request: RunRequest, split: Any, client: Any = None) -> None:
    """Simulate one Flower node per `clients_per_node` users (`client`: another ClientApp, for benchmarks)."""
    run = request.scenario.run
    n_nodes = -(-split.n_users // run.clients_per_node)
    _quiet_notices()
    where = f"joining the Ray cluster at {run.ray_address}" if run.ray_address else "starting a local Ray cluster"
    request.log(f"{where} for {n_nodes} Flower nodes ({run.clients_per_node} users each); start-up takes 15-30 s")
    reaper = None if run.ray_address else start_reaper()  # a joined cluster is not ours to stop
    try:
        run_simulation(server_app=server_app_for(request), client_app=client or client_app, num_supernodes=n_nodes,
                       backend_config=backend_config(request))
    except KeyboardInterrupt:
        request.stop.set()  # the ServerApp thread stops waiting, checkpoints nothing more and ends
        _shut_down_ray()
        raise
    finally:
        if reaper is not None:  # what Ray left behind goes now, and the watcher with it
            reaper.stdin.close()
            reaper.wait()


def _shut_down_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
