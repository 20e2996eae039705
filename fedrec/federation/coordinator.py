"""The server's round loop, independent of how messages travel (Flower in a run, direct calls in tests).

Each round: sample users, drop the unavailable ones, send each device its tier's slice, validate every reply (a bad
or failed reply is logged and dropped, the round goes on), aggregate by holders, record traffic and simulated time,
and every `eval_every` rounds evaluate every user on its own device, reported per tier: validation metrics (for
choosing settings, `valid_*` columns) and test metrics.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from fedrec.data.dataset import Split
from fedrec.experiment.scenario import Scenario
from fedrec.federation.ledger import CommunicationLedger
from fedrec.federation.protocol import EvalReply, EvalTask, TrainReply, TrainTask
from fedrec.federation.shared_model import ReplyError, SharedModel, Tier
from fedrec.results import atomic_write

SHOWN = ("recall@20", "ndcg@20", "hr@20", "mrr@20")


TIMINGS = ("wall_seconds", "clients_seconds", "server_seconds")  # measured, so never equal between runs

class Transport(Protocol):
    def train(self, round_: int, tasks: Sequence[TrainTask]) -> list[TrainReply | Exception]: ...

    def evaluate(self, round_: int, tasks: Sequence[EvalTask]) -> list[EvalReply | Exception]: ...


@dataclass
class RoundLog:
    rows: list[dict] = field(default_factory=list)      # one per (round, tier)
    dropped: list[dict] = field(default_factory=list)   # replies not aggregated, with the reason


def tiers_for(split: Split, scenario: Scenario) -> list[Tier]:
    """Each device profile's item representation (raises BudgetError, with the minimum, if a budget fits none)."""
    if scenario.run.model == "sasrec":
        from fedrec.federation import fedcodes
        return fedcodes.tiers_for(scenario, split.n_items)
    from fedrec.federation import fedmf
    return fedmf.tiers_for(scenario, split.n_items)


def server_model(split: Split, scenario: Scenario, log: Callable[[str], None] = print) -> SharedModel:
    """The server side of the scenario's method: MF with full tables, or SASRec with compositional codes."""
    if scenario.run.model == "sasrec":
        from fedrec.federation.fedcodes import FederatedCodes
        return FederatedCodes(split, scenario, log)
    from fedrec.federation.fedmf import FederatedMF
    return FederatedMF(split, scenario)


class Coordinator:
    def __init__(self, split: Split, scenario: Scenario, log: Callable[[str], None] = print):
        self.split, self.scenario, self.run = split, scenario, scenario.run
        self.model = server_model(split, scenario, log)
        self.ledger = CommunicationLedger()
        self.history = RoundLog()
        self.log = log
        self.rounds_done = 0

    def _available(self, round_: int, users: np.ndarray) -> list[int]:
        rng = np.random.default_rng([self.run.seed, round_, 1])
        draws = rng.random(len(users))
        return [int(u) for u, d in zip(users, draws) if d < self.model.tier_of(int(u)).profile.availability]

    def _train_tasks(self, users: list[int]) -> list[TrainTask]:
        tasks = []
        for user in users:
            tier, task = self.model.tier_of(user), self.model.task_for(user, "train")
            tasks.append(TrainTask(user, tier.index, task.shared, task.private, task.settings,
                                   tier.profile.failure_prob))
        return tasks

    def train_round(self, round_: int, transport: Transport) -> dict[str, float]:
        started = time.perf_counter()
        users = self._available(round_, self.model.sample(round_))
        tasks = self._train_tasks(users)
        sent = time.perf_counter()
        replies = transport.train(round_, tasks)
        received = time.perf_counter()
        updates, losses = [], []
        for task, reply in zip(tasks, replies):
            profile = self.model.tiers[task.tier].profile
            down = self.model.download_bytes(task.user, task.device_task)
            try:
                if isinstance(reply, Exception):
                    raise ReplyError(f"client failed: {reply}")
                update = self.model.validate(task.user, reply.deltas, reply.rows, reply.n_examples)
            except ReplyError as err:
                self.history.dropped.append({"round": round_, "client": task.user, "reason": str(err)})
                self.ledger.record(round_, task.user, profile, down, 0, 0.0)
                continue
            updates.append(update)
            losses.append(reply.loss)
            simulated_compute = reply.n_examples * self.run.local_epochs * self.run.seconds_per_example
            up = sum(a.nbytes for a in (*reply.deltas.values(), *reply.rows.values()))
            self.ledger.record(round_, task.user, profile, down, up, simulated_compute)
        self.model.apply(updates)
        self.rounds_done = round_
        return {"sampled": len(users), "aggregated": len(updates), "dropped": len(users) - len(updates),
                "loss": float(np.mean(losses)) if losses else float("nan"),
                "simulated_seconds": self.ledger.round_seconds(round_),
                "clients_seconds": received - sent,  # wall time from sending the tasks to the last reply
                "server_seconds": (sent - started) + (time.perf_counter() - received)}

    def evaluate(self, round_: int, transport: Transport, split_name: str = "test") -> dict[str, dict[str, float]]:
        """Per-tier mean metrics over every user with an evaluation example, each ranked on its own device."""
        data = self.split.test if split_name == "test" else self.split.valid
        tasks = []
        for user in np.unique(data.users).tolist():
            task = self.model.task_for(user, "evaluate")
            tasks.append(EvalTask(user, self.model.tier_of(user).index, task.shared, task.private, task.settings,
                                  split_name))
        sums: dict[int, dict[str, float]] = {}
        for reply in transport.evaluate(round_, tasks):
            if isinstance(reply, Exception) or not reply.sums:
                continue
            tier_sums = sums.setdefault(reply.tier, {})
            for k, v in reply.sums.items():
                tier_sums[k] = tier_sums.get(k, 0.0) + v
        return {self.model.tiers[t].name: {k: v / s["examples"] for k, v in s.items() if k != "examples"}
                | {"examples": s["examples"]} for t, s in sorted(sums.items())}

    def checkpoint(self, path: Path) -> None:
        """Everything the server needs to go on after round `rounds_done`, in one atomically written file."""
        meta = {"rounds_done": self.rounds_done, "rows": self.history.rows, "dropped": self.history.dropped,
                "ledger": self.ledger.rows}
        state = {f"state.{k}": v for k, v in self.model.state().items()}
        atomic_write(path, lambda tmp: np.savez(tmp.open("wb"), meta=np.array(json.dumps(meta)), **state))

    def restore(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            self.model.load_state({k.removeprefix("state."): stored[k] for k in stored.files if k != "meta"})
        self.rounds_done = meta["rounds_done"]
        self.history = RoundLog(meta["rows"], meta["dropped"])
        self.ledger.rows = [tuple(r) for r in meta["ledger"]]
        self.log(f"resumed after round {self.rounds_done}")

    def run_rounds(self, transport: Transport, progress: Callable[[int, dict], None] | None = None,
                   checkpoint: Path | None = None) -> None:
        """Rounds `rounds_done + 1 .. rounds`, checkpointing after each when a path is given."""
        for round_ in range(self.rounds_done + 1, self.run.rounds + 1):
            started = time.perf_counter()
            stats = self.train_round(round_, transport)
            row = {"round": round_, **stats}
            if round_ % self.run.eval_every == 0 or round_ == self.run.rounds:
                valid = self.evaluate(round_, transport, "valid")
                for tier, metrics in self.evaluate(round_, transport, "test").items():
                    selection = {f"valid_{k}": v for k, v in valid.get(tier, {}).items() if k in SHOWN}
                    self.history.rows.append({"round": round_, "tier": tier, **metrics, **selection})
            row["wall_seconds"] = time.perf_counter() - started
            self.history.rows.append({"tier": "all", **row})
            if checkpoint is not None:
                self.checkpoint(checkpoint)
            if progress:
                progress(round_, row)
