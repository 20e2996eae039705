"""The messages of a federated round, as plain data, and the client-side handling of them (no Flower here).

The server's coordinator produces tasks, a transport delivers them (Flower messages in a real run, direct calls in
tests), and `handle_train`/`handle_evaluate` are what a device runs. Private user vectors live in `DeviceStates`
(Flower: serialised in `Context.state`, mirrored to the run's device folder so a killed run can resume).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from fedrec.data.dataset import Split
from fedrec.experiment.scenario import RunSettings
from fedrec.federation.device_state import DeviceStates
from fedrec.federation.fedmf import evaluate_client, initial_user_vector, train_client


@dataclass
class TrainTask:
    user: int
    tier: int
    items: np.ndarray            # the device's slice of the shared table [n_items, width], float32
    widths: list[int]            # nested widths to train (every tier width up to this device's)
    failure_prob: float = 0.0


@dataclass
class TrainReply:
    user: int
    tier: int
    rows: np.ndarray             # int64 item rows touched
    delta: np.ndarray            # float32 [len(rows), width]
    n_examples: int
    loss: float
    compute_seconds: float


@dataclass
class EvalTask:
    user: int
    tier: int
    items: np.ndarray
    split: str = "test"          # "valid" or "test"


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


def _user_vector(states: DeviceStates, run: RunSettings, user: int, width: int, round_: int) -> torch.Tensor:
    stored = states.get(user, round_)
    if stored is None or len(stored) != width:
        return initial_user_vector(run, user, width)
    return torch.from_numpy(stored)


def handle_train(split: Split, run: RunSettings, task: TrainTask, round_: int, states: DeviceStates) -> TrainReply:
    """One device's round: local training from its state as of the previous round; the new state is stored."""
    if fails(run, round_, task.user, task.failure_prob):
        raise SimulatedFailure(f"user {task.user} failed in round {round_}")
    started = time.perf_counter()
    items = torch.from_numpy(task.items)
    update = train_client(split, run, task.user, items,
                          _user_vector(states, run, task.user, items.shape[1], round_ - 1), task.widths, round_)
    states.put(task.user, round_, update.user.astype(np.float32))
    return TrainReply(task.user, task.tier, update.rows.astype(np.int64),
                      update.item_delta.astype(np.float32), update.n_examples, update.loss,
                      time.perf_counter() - started)


def handle_evaluate(split: Split, run: RunSettings, task: EvalTask, round_: int, states: DeviceStates) -> EvalReply:
    items = torch.from_numpy(task.items)
    data = split.valid if task.split == "valid" else split.test
    sums = evaluate_client(data, task.user, items, _user_vector(states, run, task.user, items.shape[1], round_))
    return EvalReply(task.user, task.tier, sums)
