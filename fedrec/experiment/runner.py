"""Launching a scenario: the one adapter between fedrec and Flower's simulation entry point.

`simulate` hands the scenario to the ServerApp (which runs in a thread of this process under `run_simulation`) and
starts the Ray-backed simulation; `engine="inprocess"` runs the same coordinator with direct calls and no Ray.
A change of Flower's entry point is a change here only.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedrec.configs import key_values
from fedrec.errors import ConfigError, FedrecError
from fedrec.experiment import rundir
from fedrec.experiment import scenario as scenario_file
from fedrec.experiment.scenario import Scenario


@dataclass
class RunRequest:
    scenario: Scenario
    out: Path
    log: Callable[[str], None]
    resume: bool = False

    @property
    def device_dir(self) -> Path:
        """Where simulated devices keep their private state (what a resumed run reads back)."""
        return self.out / "devices"

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint.npz"

    def progress(self) -> Callable[[int, dict], None]:
        """A one-line report per round (clients aggregated and dropped, loss, ETA), started now."""
        started, rounds, first = time.perf_counter(), self.scenario.run.rounds, 0

        def show(round_: int, row: dict) -> None:
            nonlocal first
            first = first or round_  # a resumed run starts later than round 1: the rate is over rounds run here
            eta = (time.perf_counter() - started) / (round_ - first + 1) * (rounds - round_)
            self.log(f"round {round_}/{rounds}: {row['aggregated']}/{row['sampled']} clients aggregated, "
                     f"{row['dropped']} dropped, loss {row['loss']:.4f}, {row['wall_seconds']:.1f}s, ETA {eta:.0f}s")
        return show

    def coordinator(self, split: Any) -> Any:
        """The round loop for this run, restored from the checkpoint when resuming."""
        from fedrec.federation.coordinator import Coordinator

        coordinator = Coordinator(split, self.scenario, log=self.log)
        if self.resume:
            if not self.checkpoint.exists():
                raise ConfigError(f"cannot resume: {self.checkpoint} not found (was the run started with --out "
                                  f"{self.out}?)")
            coordinator.restore(self.checkpoint)
        return coordinator


_pending: RunRequest | None = None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def take_request(context: Any) -> RunRequest:
    """The run the ServerApp should execute: handed over by `simulate`, or named in `flwr run`'s run config."""
    global _pending
    if _pending is not None:
        request, _pending = _pending, None
        return request
    config = getattr(context, "run_config", {}) or {}
    if "scenario" not in config:
        raise ConfigError("no scenario: run `fedrec simulate SCENARIO.toml --out DIR`, or give run config "
                          "keys scenario=PATH and out=DIR to `flwr run`")
    overrides = key_values(str(config.get("set", "")).split(), "run config key `set`")
    scenario = scenario_file.load(Path(str(config["scenario"])), overrides)
    out = Path(str(config.get("out", "runs/flwr")))
    rundir.start(out, scenario, resume=False)
    return RunRequest(scenario, out, _stderr)


def check_ray_address(address: str, timeout: float = 3.0) -> None:
    """Fail fast (seconds, not a hang) when a Ray head is not listening at host:port."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"ray_address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:6379")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(f"cannot reach a Ray cluster at {address} ({err.strerror or err}); start one with "
                          f"`ray start --head --node-ip-address={host} --port={port}` or drop ray_address") from None


def _backend_config(scenario: Scenario) -> dict[str, dict[str, Any]]:
    run = scenario.run
    if run.ray_address:
        check_ray_address(run.ray_address)
        init_args: dict[str, Any] = {"address": run.ray_address}
    else:  # "local" always starts a fresh cluster, never silently joining a stray one
        init_args = {"address": "local", "num_cpus": os.cpu_count() or 1, "include_dashboard": False}
    return {"client_resources": {"num_cpus": run.num_cpus_per_client, "num_gpus": 0.0}, "init_args": init_args}


def simulate(scenario: Scenario, out: Path, engine: str = "ray", log: Callable[[str], None] = _stderr,
             resume: bool = False) -> dict:
    """Run `scenario` (or resume it from `out`), write its run directory to `out`, return the summary."""
    import json

    split = scenario.load_split()
    request = RunRequest(scenario, out, log, resume)
    if engine == "inprocess":
        from fedrec.federation.inprocess import InProcessTransport

        coordinator = request.coordinator(split)  # a budget that fits nothing fails here, before anything is written
        rundir.start(out, scenario, resume)
        coordinator.run_rounds(InProcessTransport(split, scenario, request.device_dir),
                               progress=request.progress(), checkpoint=request.checkpoint)
        return rundir.write(out, coordinator, scenario)
    if engine != "ray":
        raise ConfigError(f"unknown engine {engine!r}; expected 'ray' or 'inprocess'")
    from flwr.simulation import run_simulation

    from fedrec.federation.coordinator import tiers_for
    tiers_for(split, scenario)  # a budget that fits nothing fails here, before any process starts
    rundir.start(out, scenario, resume)
    from clients.app import app as client_app
    from server.app import app as server_app

    global _pending
    _pending = request
    n_nodes = -(-split.n_users // scenario.run.clients_per_node)
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=n_nodes,
                   backend_config=_backend_config(scenario))
    if not (out / "summary.json").exists():
        raise FedrecError(f"the simulation ended without results in {out}; see the log above")
    return json.loads((out / "summary.json").read_text())
