"""A transport that runs every device's handler in this process: for tests and quick experiments without Ray."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fedrec.data.dataset import Split
from fedrec.experiment.scenario import Scenario
from fedrec.federation.device_state import DeviceStates
from fedrec.federation.protocol import (EvalReply, EvalTask, SimulatedFailure, TrainReply, TrainTask, handle_evaluate,
                                        handle_train)


class InProcessTransport:
    def __init__(self, split: Split, scenario: Scenario, device_dir: Path | None = None):
        self.split, self.scenario = split, scenario
        self.states = DeviceStates(directory=device_dir)  # every device's private state

    def train(self, round_: int, tasks: Sequence[TrainTask]) -> list[TrainReply | Exception]:
        replies: list[TrainReply | Exception] = []
        for task in tasks:
            try:
                replies.append(handle_train(self.split, self.scenario, task, round_, self.states))
            except SimulatedFailure as failure:
                replies.append(failure)
        return replies

    def evaluate(self, round_: int, tasks: Sequence[EvalTask]) -> list[EvalReply | Exception]:
        return [handle_evaluate(self.split, self.scenario, task, round_, self.states) for task in tasks]
