"""Wrappers around any round strategy (as Flower's DP strategies wrap any `Strategy`): `StrategyWrapper` delegates
everything; a wrapper overrides the steps it changes (DP: clip and noise in `aggregate_train`, account ε)."""
from __future__ import annotations

from collections.abc import Sequence

from fedrec.federation.messages import EvalReply, EvalTask, TrainReply, TrainTask
from fedrec.federation.strategy import EvalResult, RoundResult, RoundStrategy


class StrategyWrapper(RoundStrategy):
    def __init__(self, inner: RoundStrategy):
        self.inner = inner
        self.method = inner.method

    def configure_train(self, round_: int, users: Sequence[int]) -> list[TrainTask]:
        return self.inner.configure_train(round_, users)

    def aggregate_train(self, round_: int, tasks: Sequence[TrainTask],
                        replies: Sequence[TrainReply | Exception]) -> RoundResult:
        return self.inner.aggregate_train(round_, tasks, replies)

    def configure_evaluate(self, round_: int, users: Sequence[int], split: str) -> list[EvalTask]:
        return self.inner.configure_evaluate(round_, users, split)

    def aggregate_evaluate(self, round_: int, tasks: Sequence[EvalTask],
                           replies: Sequence[EvalReply | Exception]) -> EvalResult:
        return self.inner.aggregate_evaluate(round_, tasks, replies)

    def on_segment_end(self, segment: int) -> None:
        self.inner.on_segment_end(segment)
