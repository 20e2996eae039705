"""Launching a scenario: the run request, and the engines that execute it.

`engine="inprocess"` runs the coordinator with direct calls and no Ray. Other engines are plugins found by name in
the `fedrec.engines` entry-point group: the Flower apps' package registers `ray` (`server.simulation:run_ray`, which
builds the ServerApp around this request and starts Flower's Ray-backed simulation), so nothing in `fedrec` imports
the apps and no module global hands a run over.
"""
from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedrec.configs import key_values
from fedrec.data.preflight import require_federation
from fedrec.errors import ConfigError, FedrecError
from fedrec.experiment import rundir
from fedrec.experiment import scenario as scenario_file
from fedrec.experiment.scenario import Scenario
from fedrec.ranking import HEADLINE
from fedrec.results import prepare_output


@dataclass
class RunRequest:
    scenario: Scenario
    out: Path
    log: Callable[[str], None]
    resume: bool = False
    stop: threading.Event = field(default_factory=threading.Event)  # set on Ctrl-C: the server stops waiting

    @property
    def device_dir(self) -> Path:
        """Where simulated devices keep their private state (what a resumed run reads back)."""
        return self.out / "devices"

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint.npz"

    def progress(self) -> Callable[[int, dict], None]:
        """A one-line report per round (clients aggregated and dropped, loss, ETA), started now."""
        started, rounds, first, latest = time.perf_counter(), self.scenario.run.rounds, 0, ""
        metric = f"valid_{HEADLINE[0]}"

        def show(round_: int, row: dict) -> None:
            nonlocal first, latest
            first = first or round_  # a resumed run starts later than round 1: the rate is over rounds run here
            eta = (time.perf_counter() - started) / (round_ - first + 1) * (rounds - round_)
            if metric in row:
                latest = f", {metric.replace('_', ' ')} {row[metric]:.4f} (round {round_})"
            self.log(f"round {round_}/{rounds}: {row['aggregated']}/{row['sampled']} clients aggregated, "
                     f"{row['dropped']} dropped, loss {row['loss']:.4f}{latest}, {row['wall_seconds']:.1f}s, "
                     f"ETA {eta:.0f}s")
        return show

    def device(self) -> Any:
        """What every simulated device knows of the run (settings and model config, no dataset)."""
        from fedrec.device import DeviceRun

        return DeviceRun(self.scenario.run, self.scenario.model_config())

    def coordinator(self, split: Any) -> Any:
        """The round loop for this run, restored from the checkpoint when resuming."""
        from fedrec.federation.coordinator import Coordinator

        scenario = self.scenario
        coordinator = Coordinator(split, scenario.run, scenario.devices, scenario.model_config(), log=self.log)
        if self.resume:
            for needed in (self.checkpoint, self.device_dir):
                if not needed.exists():
                    raise ConfigError(f"cannot resume: {needed} not found (was the run started with --out "
                                      f"{self.out}?)")
            coordinator.restore(self.checkpoint)
            if coordinator.rounds_done >= scenario.run.rounds:
                raise ConfigError(f"nothing to resume: {coordinator.rounds_done} of {scenario.run.rounds} rounds "
                                  f"done in {self.out}; give more with --set run.rounds=N")
        return coordinator


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def logged_to(path: Path, log: Callable[[str], None]) -> Callable[[str], None]:
    """`log`, and each message appended to the run's own log file (what a user reads after the terminal is gone)."""
    def both(message: str) -> None:
        log(message)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as file:
            file.write(message + "\n")
    return both


def request_from_run_config(config: dict[str, Any]) -> RunRequest:
    """The run `flwr run` names in its run config (keys scenario, out and set)."""
    if "scenario" not in config:
        raise ConfigError("no scenario: run `fedrec simulate SCENARIO.toml --out DIR`, or give run config "
                          "keys scenario=PATH and out=DIR to `flwr run`")
    overrides = key_values(str(config.get("set", "")).split(), "run config key `set`")
    scenario = scenario_file.load(Path(str(config["scenario"])), overrides)
    out = Path(str(config.get("out", "runs/flwr")))
    rundir.start(out, scenario, resume=False)
    return RunRequest(scenario, out, stderr)


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


def simulate(scenario: Scenario, out: Path, engine: str = "ray", log: Callable[[str], None] = stderr,
             resume: bool = False, overwrite: bool = False) -> dict:
    """Run `scenario` (or resume it from `out`), write its run directory to `out`, return the summary. A folder
    holding a run is refused unless `overwrite` (or `resume`)."""
    import json

    if not resume:
        prepare_output(out, overwrite)
    if scenario.run.reference and scenario.run.reference != rundir.CENTRALISED:
        rundir.reference(scenario.run.reference)  # refused before any work if unusable
    split = scenario.load_split()
    require_federation(split, scenario.run.model)
    request = RunRequest(scenario, out, logged_to(out / "run.log", log), resume)
    if engine == "inprocess":
        from fedrec.federation.inprocess import InProcessTransport

        coordinator = request.coordinator(split)  # a budget that fits nothing fails here, before anything is written
        rundir.start(out, scenario, resume, split, request.log)
        coordinator.run_rounds(InProcessTransport(split, request.device(), request.device_dir),
                               progress=request.progress(), checkpoint=request.checkpoint)
        return rundir.write(out, coordinator, scenario)
    run_engine = _engine(engine)
    from fedrec.federation.method import method_for
    run = scenario.run  # a pair that does not federate or a budget that fits nothing fails here, before Ray starts
    method_for(run.model, run.method).plan(run, scenario.model_config(), split.n_items, list(scenario.devices.profiles))
    if resume:
        request.coordinator(split)  # a checkpoint that cannot be resumed is refused before Ray starts
    rundir.start(out, scenario, resume, split, request.log)
    run_engine(request, split)
    if not (out / "summary.json").exists():
        raise FedrecError(f"the simulation ended without results in {out}; see the log above")
    return json.loads((out / "summary.json").read_text())


def _engine(name: str) -> Callable[[RunRequest, Any], None]:
    """A simulation engine registered in the `fedrec.engines` entry-point group."""
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group="fedrec.engines")}
    if name not in found:
        raise ConfigError(f"unknown engine {name!r}; expected 'inprocess' or one of {sorted(found)} (engines are "
                          f"registered by installed packages: reinstall fedrec with `pip install -e .`)")
    return found[name].load()
