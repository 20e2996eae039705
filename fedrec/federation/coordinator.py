"""The server's round loop, independent of how messages travel (Flower in a run, direct calls in tests).

Each round: sample users, drop the unavailable ones, send each device its tier's blocks (the round strategy's
tasks), validate every reply (a bad or failed reply is logged and dropped, the round goes on), aggregate by holders
(the strategy), record traffic and simulated time, and every `eval_every` rounds evaluate every user on its own
device, reported per tier: validation metrics (for choosing settings, `valid_*` columns) and test metrics.
"""
from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from fedrec.configs import Config
from fedrec.data.dataset import Split
from fedrec.errors import ConfigError
from fedrec.federation.devices import DeviceMix
from fedrec.federation.ledger import CommunicationLedger
from fedrec.federation.messages import EvalReply, EvalTask, HelpRequest, TrainReply, TrainTask
from fedrec.federation.method import FederatedMethod, method_for
from fedrec.federation.settings import RunSettings
from fedrec.federation.strategy import HeteroAvg, RoundStrategy
from fedrec.ranking import HEADLINE
from fedrec.results import atomic_write

TIMINGS = ("wall_seconds", "clients_seconds", "server_seconds")  # measured, so never equal between runs


class Transport(Protocol):
    def train(self, round_: int, tasks: Sequence[TrainTask]) -> list[TrainReply | Exception]: ...

    def evaluate(self, round_: int, tasks: Sequence[EvalTask]) -> list[EvalReply | Exception]: ...

    def help(self, round_: int, users: Sequence[int]) -> list[HelpRequest | Exception]: ...


CHECKPOINT_FORMAT = 2
# settings a resumed run may change: how long it goes on and how it runs, not what it computes
RESUMABLE_CHANGES = frozenset(("run", k) for k in ("rounds", "eval_every", "round_timeout", "num_cpus_per_client",
                                                  "ray_address", "clients_per_node", "reference"))


@dataclass
class RoundLog:
    rows: list[dict] = field(default_factory=list)      # one per (round, tier)
    dropped: list[dict] = field(default_factory=list)   # replies not aggregated, with the reason


def build_method(split: Split, run: RunSettings, devices: DeviceMix, config: Config,
                 log: Callable[[str], None] = print) -> FederatedMethod:
    """The server half of the run's (model, method) pair (raises BudgetError, with the minimum, if a budget fits
    none, and ConfigError for a pair that does not federate)."""
    return method_for(run.model, run.method)(split, run, devices, config, log)


class Coordinator:
    def __init__(self, split: Split, run: RunSettings, devices: DeviceMix, config: Config,
                 log: Callable[[str], None] = print, strategy: RoundStrategy | None = None):
        self.split, self.run = split, run
        self.written_under = {"devices": {p.name: asdict(p) | {"fraction": f}
                                          for p, f in zip(devices.profiles, devices.fractions)},
                              "model": dict(config)}  # what a checkpoint must have been written under
        self.strategy = strategy or HeteroAvg(build_method(split, run, devices, config, log), run.server_lr)
        self.method = self.strategy.method
        self.ledger = CommunicationLedger()
        self.history = RoundLog()
        self.log = log
        self.rounds_done = 0
        self.last_test: dict[int, tuple[int, dict[str, float]]] = {}  # user -> (tier, metric sums), last test

    def sample(self, round_: int) -> np.ndarray:
        """Users taking part in `round_` (before availability/failures), reproducible from (seed, round)."""
        rng = np.random.default_rng([self.run.seed, round_])
        size = min(self.run.clients_per_round, self.split.n_users)
        return np.sort(rng.choice(self.split.n_users, size=size, replace=False))

    def _available(self, round_: int, users: np.ndarray) -> list[int]:
        rng = np.random.default_rng([self.run.seed, round_, 1])
        draws = rng.random(len(users))
        return [int(u) for u, d in zip(users, draws) if d < self.method.tier_of(int(u)).profile.availability]

    def _ask_help(self, round_: int, users: list[int], transport: Transport) -> None:
        """Devices new to a method that helps per item say which items they want help for (an upload)."""
        asking = [u for u in users if self.method.wants_help(u)]
        for user, request in zip(asking, transport.help(round_, asking) if asking else []):
            if isinstance(request, HelpRequest):
                self.method.receive_help_request(request)
                self.ledger.record(round_, user, self.method.tier_of(user).profile, 0, request.ids.nbytes, 0.0)

    def train_round(self, round_: int, transport: Transport) -> dict[str, float]:
        started = time.perf_counter()
        users = self._available(round_, self.sample(round_))
        self._ask_help(round_, users, transport)
        tasks = self.strategy.configure_train(round_, users)
        sent = time.perf_counter()
        replies = transport.train(round_, tasks)
        received = time.perf_counter()
        result = self.strategy.aggregate_train(round_, tasks, replies)
        for task, reason in result.dropped:
            self.history.dropped.append({"round": round_, "client": task.user, "reason": reason})
        accepted = {r.user: r for r in result.accepted}
        for task in tasks:
            profile = self.method.tiers[task.tier].profile
            down = self.method.download_bytes(task.user, task)
            reply = accepted.get(task.user)
            if reply is None:
                self.ledger.record(round_, task.user, profile, down, 0, 0.0)
                continue
            simulated_compute = reply.n_examples * self.run.local_epochs * self.run.seconds_per_example
            up = sum(a.nbytes for a in (*reply.deltas.values(), *reply.rows.values()))
            self.ledger.record(round_, task.user, profile, down, up, simulated_compute)
        self.rounds_done = round_
        losses = [r.loss for r in result.accepted]
        return {"sampled": len(users), "aggregated": len(accepted), "dropped": len(users) - len(accepted),
                "loss": float(np.mean(losses)) if losses else float("nan"),
                "simulated_seconds": self.ledger.round_seconds(round_),
                "clients_seconds": received - sent,  # wall time from sending the tasks to the last reply
                "server_seconds": (sent - started) + (time.perf_counter() - received)}

    def evaluate(self, round_: int, transport: Transport, split_name: str = "test") -> dict[str, dict[str, float]]:
        """Per-tier mean metrics over every user with an evaluation example, each ranked on its own device."""
        data = self.split.test if split_name == "test" else self.split.valid
        tasks = self.strategy.configure_evaluate(round_, np.unique(data.users).tolist(), split_name)
        result = self.strategy.aggregate_evaluate(round_, tasks, transport.evaluate(round_, tasks))
        for task, reason in result.dropped:
            self.history.dropped.append({"round": round_, "client": task.user, "reason": reason})
        if split_name == "test":
            self.last_test = result.per_user  # for intervals over users in the summary
        return result.metrics

    def checkpoint(self, path: Path) -> None:
        """Everything the server needs to go on after round `rounds_done`, in one atomically written file, with the
        settings it was written under (a resume must not contradict them)."""
        meta = {"format": CHECKPOINT_FORMAT, "run": asdict(self.run), **self.written_under,
                "rounds_done": self.rounds_done,
                "rows": self.history.rows, "dropped": self.history.dropped, "ledger": self.ledger.rows}
        state = {f"state.{k}": v for k, v in self.method.state().items()}
        atomic_write(path, lambda tmp: np.savez(tmp.open("wb"), meta=np.array(json.dumps(meta)), **state))

    def restore(self, path: Path) -> None:
        """Go on from a checkpoint; a damaged or foreign one, or one written under other settings, is refused."""
        try:
            with np.load(path, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                state = {k.removeprefix("state."): stored[k] for k in stored.files if k != "meta"}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise ConfigError(f"{path}: not a readable fedrec checkpoint ({type(err).__name__}: {err}); start the "
                              f"run again without --resume") from None
        if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"{path}: not a fedrec checkpoint of format {CHECKPOINT_FORMAT} (found "
                              f"{meta.get('format') if isinstance(meta, dict) else meta!r}); start the run again")
        now = {"run": asdict(self.run), **self.written_under}
        contradicting = {f"{table}.{k}": (v, now[table].get(k)) for table in now for k, v in meta[table].items()
                         if (table, k) not in RESUMABLE_CHANGES and now[table].get(k) != v}
        if contradicting:
            listed = ", ".join(f"{k} = {new!r} (checkpoint: {old!r})" for k, (old, new) in contradicting.items())
            raise ConfigError(f"{path}: {listed} contradicts the checkpoint; resume without that change, or start a "
                              f"new run")
        self.method.load_state(state, str(path))
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
                examples = sum(m["examples"] for m in valid.values())
                if examples:  # the overall validation figure the round line shows
                    row[f"valid_{HEADLINE[0]}"] = sum(m[HEADLINE[0]] * m["examples"] for m in valid.values()) / examples
                for tier, metrics in self.evaluate(round_, transport, "test").items():
                    selection = {f"valid_{k}": v for k, v in valid.get(tier, {}).items() if k in HEADLINE}
                    self.history.rows.append({"round": round_, "tier": tier, **metrics, **selection})
            row["wall_seconds"] = time.perf_counter() - started
            self.history.rows.append({"tier": "all", **row})
            if checkpoint is not None:
                self.checkpoint(checkpoint)
            if progress:
                progress(round_, row)
