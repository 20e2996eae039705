"""What every federated method's server side shares: tiers, client sampling, reply validation, aggregation, state.

A method (`FederatedMF`, `FederatedCodes`) owns named shared tensors at full size and says, per tier, which leading
slice of each one a device holds (`held_shapes`) and what else it needs to train (`task_for`). Devices send deltas
of exactly those slices (optionally only some rows of a tensor, for names listed in `sparse`); everything here is
method-independent.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedrec.data.dataset import Split
from fedrec.embeddings import EmbeddingSpec, ItemEmbedding
from fedrec.experiment.scenario import Scenario
from fedrec.federation.aggregation import ClientUpdate, aggregate
from fedrec.federation.devices import DeviceProfile

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Tier:
    """A device profile and the item representation its devices hold (the largest one within its budget)."""

    index: int
    profile: DeviceProfile
    spec: EmbeddingSpec

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def width(self) -> int:
        return self.spec.dim


@dataclass
class DeviceTask:
    """What one device gets for a round: slices of the shared tensors, its own arrays, and plain settings."""

    shared: Arrays
    private: Arrays
    settings: dict[str, Any]


@dataclass
class DeviceUpdate:
    """A device's answer to a train task: deltas of the slices it holds (and the rows, for sparse tensors)."""

    deltas: Arrays
    rows: Arrays
    n_examples: int
    loss: float


class ReplyError(ValueError):
    """A client reply that must not be aggregated (wrong names, shapes, dtype or non-finite values)."""


class SharedModel(ABC):
    sparse: frozenset[str] = frozenset()  # shared tensors whose deltas come with the rows they cover

    def __init__(self, split: Split, scenario: Scenario, shared: dict[str, torch.Tensor], tiers: list[Tier]):
        self.split, self.scenario, self.run = split, scenario, scenario.run
        self.shared, self.tiers = shared, tiers
        self.client_tier = scenario.devices.assign(split.n_users, self.run.seed)
        self._held: dict[int, Arrays] = {}  # per tier, until the shared tensors change

    def tier_of(self, user: int) -> Tier:
        return self.tiers[int(self.client_tier[user])]

    def sample(self, round_: int) -> np.ndarray:
        """Users taking part in `round_` (before availability/failures), reproducible from (seed, round)."""
        rng = np.random.default_rng([self.run.seed, round_])
        size = min(self.run.clients_per_round, self.split.n_users)
        return np.sort(rng.choice(self.split.n_users, size=size, replace=False))

    @abstractmethod
    def held_shapes(self, tier: Tier) -> dict[str, tuple[int, ...]]:
        """Shape of the leading slice of each trainable shared tensor a device of `tier` holds."""

    @abstractmethod
    def task_for(self, user: int, purpose: str) -> DeviceTask:
        """The arrays and settings `user`'s device needs to train ("train") or to rank items ("evaluate")."""

    @abstractmethod
    def device_items(self, tier: Tier) -> ItemEmbedding:
        """The item representation a device of `tier` stores now (what it would export)."""

    def held(self, tier: Tier) -> Arrays:
        """The device's slices of the trainable shared tensors, as contiguous float32 arrays.

        One copy per tier serves every task of a round, so device code must treat them as read-only."""
        if tier.index not in self._held:
            self._held[tier.index] = {
                name: np.ascontiguousarray(self.shared[name][tuple(slice(0, n) for n in shape)].numpy())
                for name, shape in self.held_shapes(tier).items()}
        return self._held[tier.index]

    def download_bytes(self, user: int, task: DeviceTask) -> int:
        """Bytes the device downloads for `task` (methods with arrays a device caches count them once)."""
        return sum(a.nbytes for a in (*task.shared.values(), *task.private.values()))

    def validate(self, user: int, deltas: Arrays, rows: Arrays, n_examples: float) -> ClientUpdate:
        """Check a reply against what this user's device holds; raises ReplyError with the reason."""
        shapes = self.held_shapes(self.tier_of(user))
        if set(deltas) != set(shapes):
            raise ReplyError(f"deltas must be exactly {sorted(shapes)}, got {sorted(deltas)}")
        if set(rows) - self.sparse:
            raise ReplyError(f"rows may only be sent for {sorted(self.sparse)}, got {sorted(rows)}")
        for name, delta in deltas.items():
            expected = shapes[name]
            if name in rows:
                expected = (len(self._check_rows(name, rows[name], expected[0])), *expected[1:])
            if delta.dtype != np.float32 or delta.shape != expected:
                raise ReplyError(f"{name}: delta must be float32 of shape {expected}, got {delta.dtype} {delta.shape}")
            if not np.isfinite(delta).all():
                raise ReplyError(f"{name}: delta holds non-finite values")
        if not n_examples > 0:
            raise ReplyError(f"n_examples must be positive, got {n_examples}")
        return ClientUpdate(float(n_examples), {k: torch.from_numpy(v) for k, v in deltas.items()},
                            rows={k: torch.from_numpy(v) for k, v in rows.items()})

    @staticmethod
    def _check_rows(name: str, rows: np.ndarray, n_rows: int) -> np.ndarray:
        if rows.dtype != np.int64 or rows.ndim != 1:
            raise ReplyError(f"{name}: rows must be a 1-d int64 array, got {rows.dtype} {rows.shape}")
        if len(rows) and (rows.min() < 0 or rows.max() >= n_rows or len(np.unique(rows)) != len(rows)):
            raise ReplyError(f"{name}: rows must be distinct ids in [0, {n_rows})")
        return rows

    def apply(self, updates: list[ClientUpdate]) -> None:
        """Holder-weighted mean of the deltas, scaled by the server step (FedAvg: every client holds all, step 1)."""
        if updates:
            trained = {name for tier in self.tiers for name in self.held_shapes(tier)}
            self.shared |= aggregate({k: self.shared[k] for k in trained}, updates, self.run.server_lr)
            self._held.clear()

    def state(self) -> Arrays:
        """Everything the server must checkpoint to go on (by default the shared tensors)."""
        return {k: v.numpy() for k, v in self.shared.items()}

    def load_state(self, arrays: Arrays) -> None:
        self.shared = {k: torch.from_numpy(arrays[k].copy()) for k in self.shared}
        self._held.clear()

    def export_tiers(self, directory: Path) -> dict[str, int]:
        """Each tier's on-device item artifact `<tier>.fedrec`; returns its exact bytes (= its payload size)."""
        directory.mkdir(parents=True, exist_ok=True)
        sizes = {}
        for tier in self.tiers:
            items = self.device_items(tier)
            items.export(directory / f"{tier.name}.fedrec")
            sizes[tier.name] = items.memory_bytes()
        return sizes
