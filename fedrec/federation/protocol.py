"""The messages of a federated round, as plain data, and the client-side handling of them (no Flower here).

The server's coordinator produces tasks, a transport delivers them (Flower messages in a real run, direct calls in
tests), and `handle_train`/`handle_evaluate` are what a device runs: they pick the method's device code by the
scenario's model (`mf`: `fedmf`, `sasrec`: `fedcodes`). Private state lives in `DeviceStates` (Flower: serialised in
`Context.state`, mirrored to the run's device folder so a killed run can resume).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedrec.data.dataset import Split
from fedrec.experiment.scenario import RunSettings, Scenario
from fedrec.federation.device_state import DeviceStates
from fedrec.federation.shared_model import Arrays, DeviceTask


@dataclass
class TrainTask:
    user: int
    tier: int
    shared: Arrays               # the device's slices of the shared tensors
    private: Arrays = field(default_factory=dict)     # arrays for this user only
    settings: dict[str, Any] = field(default_factory=dict)  # plain values the method's device code needs
    failure_prob: float = 0.0

    @property
    def device_task(self) -> DeviceTask:
        return DeviceTask(self.shared, self.private, self.settings)


@dataclass
class TrainReply:
    user: int
    tier: int
    deltas: Arrays               # float32 deltas of the held slices
    rows: Arrays                 # int64 rows covered, for sparse tensors
    n_examples: int
    loss: float
    compute_seconds: float


@dataclass
class EvalTask:
    user: int
    tier: int
    shared: Arrays
    private: Arrays = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    split: str = "test"          # "valid" or "test"

    @property
    def device_task(self) -> DeviceTask:
        return DeviceTask(self.shared, self.private, self.settings)


@dataclass
class EvalReply:
    user: int
    tier: int
    sums: dict[str, float] = field(default_factory=dict)


class SimulatedFailure(RuntimeError):
    """Raised by a device that fails this round (drawn from its profile's failure probability)."""


def fails(run: RunSettings, round_: int, user: int, probability: float) -> bool:
    """Deterministic failure draw, so a resumed run fails the same clients as the uninterrupted one."""
    return probability > 0 and np.random.default_rng([run.seed, round_, user, 7]).random() < probability


def _device_code(scenario: Scenario):
    if scenario.run.model == "sasrec":
        from fedrec.federation import fedcodes
        return fedcodes
    from fedrec.federation import fedmf
    return fedmf


def handle_train(split: Split, scenario: Scenario, task: TrainTask, round_: int, states: DeviceStates) -> TrainReply:
    """One device's round: local training from its state as of the previous round; the new state is stored."""
    if fails(scenario.run, round_, task.user, task.failure_prob):
        raise SimulatedFailure(f"user {task.user} failed in round {round_}")
    started = time.perf_counter()
    update = _device_code(scenario).train_device(split, scenario, task.user, task.device_task, round_, states)
    return TrainReply(task.user, task.tier, update.deltas, update.rows, update.n_examples, update.loss,
                      time.perf_counter() - started)


def handle_evaluate(split: Split, scenario: Scenario, task: EvalTask, round_: int,
                    states: DeviceStates) -> EvalReply:
    data = split.valid if task.split == "valid" else split.test
    sums = _device_code(scenario).evaluate_device(split, scenario, task.user, task.device_task, data, round_, states)
    return EvalReply(task.user, task.tier, sums)
