"""Which device program runs a (model, method) pair: named by module path, imported only when a device needs it
(so that the numpy-only MF program runs where torch is not installed)."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Protocol

import numpy as np

from fedrec.device.data import DeviceData
from fedrec.device.state import DeviceStates
from fedrec.federation.messages import Arrays, EvalTask, TrainTask

PROGRAMS: dict[tuple[str, str], str] = {
    ("mf", "full"): "fedrec.device.mf:MFTableProgram",      # numpy only
    ("mf", "codes"): "fedrec.device.mf_torch:MFProgram",
    ("sasrec", "full"): "fedrec.device.sasrec:SASRecProgram",
    ("sasrec", "codes"): "fedrec.device.sasrec:SASRecProgram",
    ("mf", "tt"): "fedrec.device.mf_torch:MFProgram",
    ("sasrec", "tt"): "fedrec.device.sasrec:SASRecProgram",
}


@dataclass
class DeviceUpdate:
    """A program's answer to a train task: deltas of its blocks (and the rows covered, for row-sparse tensors)."""

    deltas: Arrays
    rows: Arrays
    n_examples: int
    loss: float


class DeviceProgram(Protocol):
    """A device's part of one federated method; built with the run's settings and model config."""

    def train(self, task: TrainTask, data: DeviceData, states: DeviceStates, round_: int) -> DeviceUpdate: ...

    def evaluate(self, task: EvalTask, data: DeviceData, states: DeviceStates, round_: int) -> dict[str, float]: ...

    def help_request(self, data: DeviceData) -> np.ndarray | None: ...


def program_class(model: str, method: str) -> type:
    if (model, method) not in PROGRAMS:
        raise KeyError(f"no device program for model = {model!r} with method = {method!r}; "
                       f"pairs with one: {sorted(PROGRAMS)}")
    module, _, name = PROGRAMS[(model, method)].partition(":")
    return getattr(import_module(module), name)
