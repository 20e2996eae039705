"""Federated MF with device-sized item tables, without Flower: the maths both apps call.

Server side (`FederatedMF`): the global item table at the widest width, each device tier's width (the widest `full`
table its budget holds), client sampling, reply validation and holder-weighted aggregation.
Client side (`train_client`, `evaluate_client`): one user's local round and full-ranking evaluation against the slice
of the table the device holds; the user vector is private and passed in/out by the caller (Flower keeps it in
`Context.state`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedrec.data.dataset import EvalSet, Split
from fedrec.embeddings import FullEmbedding
from fedrec.experiment.scenario import RunSettings, Scenario
from fedrec.federation.aggregation import ClientUpdate, aggregate
from fedrec.federation.devices import DeviceProfile
from fedrec.metrics import batch_metrics
from fedrec.train.local import LocalUpdate, train_mf_client


@dataclass(frozen=True)
class Tier:
    index: int
    profile: DeviceProfile
    width: int

    @property
    def name(self) -> str:
        return self.profile.name

    def bytes_on_device(self, n_items: int) -> int:
        return n_items * self.width * 4


class ReplyError(ValueError):
    """A client reply that must not be aggregated (wrong names, shapes, dtype or non-finite values)."""


def tiers_for(scenario: Scenario, n_items: int) -> list[Tier]:
    """Each profile's width: the widest full table its budget holds (BudgetError names the minimum)."""
    return [Tier(i, p, FullEmbedding.for_budget(int(p.budget_bytes), n_items, scenario.run.max_dim).dim)
            for i, p in enumerate(scenario.devices.profiles)]


def initial_user_vector(run: RunSettings, user: int, width: int) -> torch.Tensor:
    """A user's starting private vector, reproducible from the seed without any server involvement."""
    generator = torch.Generator().manual_seed(run.seed * 1_000_003 + user)
    return torch.randn(width, generator=generator) * run.init_std


class FederatedMF:
    def __init__(self, split: Split, scenario: Scenario):
        self.split, self.run = split, scenario.run
        generator = torch.Generator().manual_seed(self.run.seed)
        self.items = torch.randn(split.n_items, self.run.max_dim, generator=generator) * self.run.init_std
        self.tiers = tiers_for(scenario, split.n_items)
        self.client_tier = scenario.devices.assign(split.n_users, self.run.seed)

    def tier_of(self, user: int) -> Tier:
        return self.tiers[int(self.client_tier[user])]

    @property
    def widths(self) -> list[int]:
        return sorted({t.width for t in self.tiers})

    def sample(self, round_: int) -> np.ndarray:
        """Users taking part in `round_` (before availability/failures), reproducible from (seed, round)."""
        rng = np.random.default_rng([self.run.seed, round_])
        size = min(self.run.clients_per_round, self.split.n_users)
        return np.sort(rng.choice(self.split.n_users, size=size, replace=False))

    def download(self, user: int) -> torch.Tensor:
        """What the user's device holds of the shared table: all items, its tier's leading columns."""
        return self.items[:, :self.tier_of(user).width].contiguous()

    def validate(self, user: int, rows: np.ndarray, delta: np.ndarray, n_examples: float) -> ClientUpdate:
        """Check a reply against what this user may send; raises ReplyError with the reason."""
        width = self.tier_of(user).width
        if rows.dtype != np.int64 or rows.ndim != 1:
            raise ReplyError(f"rows must be a 1-d int64 array, got {rows.dtype} {rows.shape}")
        if delta.dtype != np.float32 or delta.shape != (len(rows), width):
            raise ReplyError(f"delta must be float32 of shape {(len(rows), width)}, got {delta.dtype} {delta.shape}")
        if len(rows) and (rows.min() < 0 or rows.max() >= self.split.n_items or len(np.unique(rows)) != len(rows)):
            raise ReplyError("rows must be distinct item ids within the catalogue")
        if not np.isfinite(delta).all():
            raise ReplyError("delta holds non-finite values")
        if not n_examples > 0:
            raise ReplyError(f"n_examples must be positive, got {n_examples}")
        return ClientUpdate(float(n_examples), {"items": torch.from_numpy(delta)}, rows={"items": torch.from_numpy(rows)})

    def apply(self, updates: list[ClientUpdate]) -> None:
        """Holder-weighted mean of the deltas, scaled by the server step (FedAvg: every client holds all, step 1)."""
        if updates:
            self.items = aggregate({"items": self.items}, updates, self.run.server_lr)["items"]


def train_client(split: Split, run: RunSettings, user: int, items: torch.Tensor, user_vector: torch.Tensor,
                 widths: list[int], round_: int) -> LocalUpdate:
    rng = np.random.default_rng([run.seed, round_, user])
    return train_mf_client(items.numpy(), user_vector.numpy(), split.train_sequences[user], widths, run.local_epochs,
                           run.lr, run.l2, rng)


def evaluate_client(data: EvalSet, user: int, items: torch.Tensor, user_vector: torch.Tensor) -> dict[str, float]:
    """Metric sums of this user's examples in `data` (usually one), ranked on the device's own table."""
    rows = np.flatnonzero(data.users == user)
    if not len(rows):
        return {}
    examples = data.subset(rows)
    scores = (user_vector @ items.T).expand(len(rows), -1).clone()
    return batch_metrics(scores, examples.targets, examples.exclude) | {"examples": float(len(rows))}
