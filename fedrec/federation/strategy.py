"""The round strategy between the coordinator and a federated method: which tasks go out, what comes back in.

As Flower's `Strategy`: `configure_train` / `aggregate_train` / `configure_evaluate` / `aggregate_evaluate`, plus
`on_segment_end` for streaming runs. Cross-cutting concerns (DP, secure aggregation) wrap any strategy
(`fedrec.federation.wrappers`) instead of forking one. `HeteroAvg` validates every reply against what the device
holds and takes the holder-weighted mean of the deltas (FedAvg when every device holds everything).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fedrec.embeddings import holdings
from fedrec.federation.aggregation import ClientUpdate, aggregate
from fedrec.federation.messages import EvalReply, EvalTask, TrainReply, TrainTask
from fedrec.federation.method import FederatedMethod
from fedrec.ranking import METRIC_NAMES


class ReplyError(ValueError):
    """A client reply that must not be aggregated (wrong names, shapes, dtype or non-finite values)."""


@dataclass
class RoundResult:
    accepted: list[TrainReply] = field(default_factory=list)
    dropped: list[tuple[TrainTask, str]] = field(default_factory=list)  # (task, reason)


@dataclass
class EvalResult:
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # per tier name
    dropped: list[tuple[EvalTask, str]] = field(default_factory=list)
    per_user: dict[int, tuple[int, dict[str, float]]] = field(default_factory=dict)  # user -> (tier, sums)


# What a reply may claim. A device's example count weights its update, so it is bounded (no user of the datasets
# here has 10^4 examples); an embedding update beyond MAX_ABS_DELTA is no training step (legitimate ones are < 10).
MAX_EXAMPLES = 100_000
MAX_ABS_DELTA = 1e3


class RoundStrategy(ABC):
    method: FederatedMethod

    @abstractmethod
    def configure_train(self, round_: int, users: Sequence[int]) -> list[TrainTask]: ...

    @abstractmethod
    def aggregate_train(self, round_: int, tasks: Sequence[TrainTask],
                        replies: Sequence[TrainReply | Exception]) -> RoundResult: ...

    @abstractmethod
    def configure_evaluate(self, round_: int, users: Sequence[int], split: str) -> list[EvalTask]: ...

    @abstractmethod
    def aggregate_evaluate(self, round_: int, tasks: Sequence[EvalTask],
                           replies: Sequence[EvalReply | Exception]) -> EvalResult:
        ...

    def on_segment_end(self, segment: int) -> None:  # noqa: B027 (an optional hook, not an abstract one)
        """Between time segments of a streaming run (resizing, new users and items); nothing by default."""


class HeteroAvg(RoundStrategy):
    def __init__(self, method: FederatedMethod, server_lr: float = 1.0):
        self.method, self.server_lr = method, server_lr

    def configure_train(self, round_: int, users: Sequence[int]) -> list[TrainTask]:
        tasks = []
        for user in users:
            tier, task = self.method.tier_of(user), self.method.task(user, "train")
            tasks.append(TrainTask(user, tier.index, task.shared, task.private, task.settings,
                                   tier.profile.failure_prob, task.static))
        return tasks

    def validate(self, task: TrainTask, reply: TrainReply) -> ClientUpdate:
        """Check a reply against its task and what its user's device holds; raises ReplyError with the reason."""
        _check_identity(task, reply)
        layout = self.method.holdings(self.method.tier_of(reply.user))
        if set(reply.deltas) != set(layout):
            raise ReplyError(f"deltas must be exactly {sorted(layout)}, got {sorted(reply.deltas)}")
        if set(reply.rows) - self.method.sparse:
            raise ReplyError(f"rows may only be sent for {sorted(self.method.sparse)}, got {sorted(reply.rows)}")
        for name, delta in reply.deltas.items():
            expected = holdings.shape(layout[name], tuple(self.method.shared[name].shape))
            if name in reply.rows:
                expected = (len(_checked_rows(name, reply.rows[name], expected[0])), *expected[1:])
            if delta.dtype != np.float32 or delta.shape != expected:
                raise ReplyError(f"{name}: delta must be float32 of shape {expected}, got {delta.dtype} {delta.shape}")
            if not np.isfinite(delta).all():
                raise ReplyError(f"{name}: delta holds non-finite values")
            if delta.size and np.abs(delta).max() > MAX_ABS_DELTA:
                raise ReplyError(f"{name}: delta of magnitude {np.abs(delta).max():.3g} exceeds {MAX_ABS_DELTA:g}")
        _check_count("n_examples", reply.n_examples, 1)
        return ClientUpdate(float(reply.n_examples), {k: torch.from_numpy(v) for k, v in reply.deltas.items()},
                            dict(layout), rows={k: torch.from_numpy(v) for k, v in reply.rows.items()})

    def aggregate_train(self, round_: int, tasks: Sequence[TrainTask],
                        replies: Sequence[TrainReply | Exception]) -> RoundResult:
        result, updates = RoundResult(), []
        for task, reply in zip(tasks, replies):
            try:
                if isinstance(reply, Exception):
                    raise ReplyError(f"client failed: {reply}")
                updates.append(self.validate(task, reply))
            except ReplyError as err:
                result.dropped.append((task, str(err)))
                continue
            result.accepted.append(reply)
        if updates:
            trained = {name for tier in self.method.tiers for name in self.method.holdings(tier)}
            shared = self.method.shared
            self.method.apply(aggregate({k: shared[k] for k in trained}, updates, self.server_lr))
        return result

    def configure_evaluate(self, round_: int, users: Sequence[int], split: str) -> list[EvalTask]:
        tasks = []
        for user in users:
            task = self.method.task(user, "evaluate")
            tasks.append(EvalTask(user, self.method.tier_of(user).index, task.shared, task.private, task.settings,
                                  split, task.static))
        return tasks

    def aggregate_evaluate(self, round_: int, tasks: Sequence[EvalTask],
                           replies: Sequence[EvalReply | Exception]) -> EvalResult:
        """Per-tier mean metrics over the valid replies with examples (each metric sum bounded by its examples)."""
        result, sums = EvalResult(), {}
        for task, reply in zip(tasks, replies):
            try:
                if isinstance(reply, Exception):
                    raise ReplyError(f"client failed: {reply}")
                _check_identity(task, reply)
                _check_sums(reply.sums)
            except ReplyError as err:
                result.dropped.append((task, f"evaluation: {err}"))
                continue
            if reply.sums:
                result.per_user[reply.user] = (reply.tier, reply.sums)
                tier_sums = sums.setdefault(reply.tier, {})
                for k, v in reply.sums.items():
                    tier_sums[k] = tier_sums.get(k, 0.0) + v
        result.metrics = {self.method.tiers[t].name: {k: v / s["examples"] for k, v in s.items() if k != "examples"}
                          | {"examples": s["examples"]} for t, s in sorted(sums.items())}
        return result


def _check_identity(task: TrainTask | EvalTask, reply: TrainReply | EvalReply) -> None:
    if (reply.user, reply.tier) != (task.user, task.tier):
        raise ReplyError(f"reply names user {reply.user} tier {reply.tier}; the task was user {task.user} tier "
                         f"{task.tier}")


def _check_count(name: str, value: float, low: int) -> None:
    if not (isinstance(value, int | float | np.integer | np.floating) and np.isfinite(value)
            and float(value).is_integer() and low <= value <= MAX_EXAMPLES):
        raise ReplyError(f"{name} must be a whole number in [{low}, {MAX_EXAMPLES}], got {value!r}")


def _check_sums(sums: dict[str, float]) -> None:
    """An evaluation reply's metric sums: known metrics, each in [0, examples] (every metric is at most 1 per
    example), over a bounded count of examples; an empty reply (no examples on the device) passes."""
    if not sums:
        return
    if "examples" not in sums:
        raise ReplyError("metric sums without their example count")
    _check_count("examples", sums["examples"], 1)
    for key, value in sums.items():
        if key != "examples" and key.partition("@")[0] not in METRIC_NAMES:
            raise ReplyError(f"unknown metric {key!r}")
        if not (np.isfinite(value) and 0 <= value <= sums["examples"]):
            raise ReplyError(f"{key} sum {value!r} outside [0, {sums['examples']}] for its examples")


def _checked_rows(name: str, rows: np.ndarray, n_rows: int) -> np.ndarray:
    if rows.dtype != np.int64 or rows.ndim != 1:
        raise ReplyError(f"{name}: rows must be a 1-d int64 array, got {rows.dtype} {rows.shape}")
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows or len(np.unique(rows)) != len(rows)):
        raise ReplyError(f"{name}: rows must be distinct ids in [0, {n_rows})")
    return rows
