"""The messages of a federated round as plain numpy data: a leaf every layer may import (no torch, no Flower).

The coordinator's strategy produces tasks, a transport delivers them (Flower messages in a run, direct calls in
tests), a device program answers. A device never receives another user's data and the server never reads a
device's: what it learns is what replies carry (deltas, example counts, losses and, for methods that ask for
per-item help, the item ids a device requests).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]
USER_INIT = "user_init"  # private array: the seed-drawn start of a private user vector (MF)


@dataclass
class TrainTask:
    user: int
    tier: int
    shared: Arrays                                          # the device's blocks of the shared tensors
    private: Arrays = field(default_factory=dict)           # arrays for this user only
    settings: dict[str, Any] = field(default_factory=dict)  # plain values the device program needs
    failure_prob: float = 0.0
    static: Arrays = field(default_factory=dict)            # arrays nobody trains (codes), stored once per device


@dataclass
class TrainReply:
    user: int
    tier: int
    deltas: Arrays               # float32 deltas of the held blocks
    rows: Arrays                 # int64 rows of a block the delta covers, for tensors sent row-sparse
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
    static: Arrays = field(default_factory=dict)


@dataclass
class EvalReply:
    user: int
    tier: int
    sums: dict[str, float] = field(default_factory=dict)


@dataclass
class HelpRequest:
    """A device's ask for per-item help (e.g. a teacher's rows): the item ids it wants, which the server then knows."""

    user: int
    ids: np.ndarray              # int64, ascending


class DeviceFailure(RuntimeError):
    """A device that cannot do its task this round (its own data cannot train the method); its reply is dropped,
    as a real device's would be, and the round goes on."""


class SimulatedFailure(DeviceFailure):
    """Raised by a device that fails this round (drawn from its profile's failure probability)."""
