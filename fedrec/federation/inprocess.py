"""A transport that runs every device's handler in this process: for tests and quick experiments without Ray.

Each device sees only its own `DeviceData`, cut from the run's split; update mods apply as on every transport.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fedrec.data.dataset import Split
from fedrec.device import DeviceData, DeviceRun, DeviceStates, handle_evaluate, handle_help, handle_train
from fedrec.federation.messages import DeviceFailure, EvalReply, EvalTask, HelpRequest, TrainReply, TrainTask


class InProcessTransport:
    def __init__(self, split: Split, device: DeviceRun, device_dir: Path | None = None):
        self.split, self.device = split, device
        self.states = DeviceStates(directory=device_dir)  # every device's private state

    def data(self, user: int) -> DeviceData:
        return DeviceData.from_split(self.split, user)

    def train(self, round_: int, tasks: Sequence[TrainTask]) -> list[TrainReply | Exception]:
        replies: list[TrainReply | Exception] = []
        for task in tasks:
            try:
                replies.append(handle_train(self.device, task, self.data(task.user), self.states, round_))
            except DeviceFailure as failure:
                replies.append(failure)
        return replies

    def evaluate(self, round_: int, tasks: Sequence[EvalTask]) -> list[EvalReply | Exception]:
        return [handle_evaluate(self.device, task, self.data(task.user), self.states, round_) for task in tasks]

    def help(self, round_: int, users: Sequence[int]) -> list[HelpRequest | Exception]:
        return [handle_help(self.device, self.data(user)) for user in users]
