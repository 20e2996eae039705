"""The device runtime: what every transport calls for one user's task (numpy only).

It draws simulated failures (deterministically, so a resumed run fails the same clients), runs the pair's device
program on the user's own data, times it, and applies the run's update mods to the reply.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedrec.device.data import DeviceData
from fedrec.device.mods import mods_for
from fedrec.device.programs import program_class
from fedrec.device.state import DeviceStates
from fedrec.federation.messages import EvalReply, EvalTask, HelpRequest, SimulatedFailure, TrainReply, TrainTask
from fedrec.federation.settings import RunSettings


@dataclass
class DeviceRun:
    """What a device knows of the run: its settings and the model's resolved config (no dataset)."""

    run: RunSettings
    config: dict[str, Any] = field(default_factory=dict)
    _program: Any = field(default=None, repr=False)

    @property
    def program(self) -> Any:
        if self._program is None:
            self._program = program_class(self.run.model, self.run.method)(self)
        return self._program


def fails(run: RunSettings, round_: int, user: int, probability: float) -> bool:
    """Deterministic failure draw, so a resumed run fails the same clients as the uninterrupted one."""
    return probability > 0 and np.random.default_rng([run.seed, round_, user, 7]).random() < probability


def handle_train(device: DeviceRun, task: TrainTask, data: DeviceData, states: DeviceStates,
                 round_: int) -> TrainReply:
    """One device's round: local training from its state as of the previous round; the new state is stored."""
    if fails(device.run, round_, task.user, task.failure_prob):
        raise SimulatedFailure(f"user {task.user} failed in round {round_}")
    started = time.perf_counter()
    update = device.program.train(task, data, states, round_)
    reply = TrainReply(task.user, task.tier, update.deltas, update.rows, update.n_examples, update.loss,
                       time.perf_counter() - started)
    for mod in mods_for(device.run):
        reply = mod(task, reply)
    return reply


def handle_evaluate(device: DeviceRun, task: EvalTask, data: DeviceData, states: DeviceStates,
                    round_: int) -> EvalReply:
    """Metric sums of the user's own examples of `task.split`, ranked on the device's own model."""
    if not len(data.examples(task.split)):
        return EvalReply(task.user, task.tier, {})
    return EvalReply(task.user, task.tier, device.program.evaluate(task, data, states, round_))


def handle_help(device: DeviceRun, data: DeviceData) -> HelpRequest:
    """The item ids this device asks the server's help for (none for most methods)."""
    ids = device.program.help_request(data)
    return HelpRequest(data.user, np.empty(0, dtype=np.int64) if ids is None else ids.astype(np.int64))
