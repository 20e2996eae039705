"""Federated MF with device-sized item tables, without Flower: the maths both apps call.

Server side (`FederatedMF`): the global item table at the widest width and each device tier's width (the widest
`full` table its budget holds); sampling, validation and aggregation are `SharedModel`'s.
Client side (`train_device`, `evaluate_device`): one user's local round and full-ranking evaluation against the slice
of the table the device holds; the user vector is private and kept in the device's `DeviceStates` (Flower keeps it
in `Context.state`).
"""
from __future__ import annotations

import numpy as np
import torch

from fedrec.data.dataset import EvalSet, Split
from fedrec.embeddings import FullEmbedding
from fedrec.experiment.scenario import RunSettings, Scenario
from fedrec.federation.device_state import DeviceStates
from fedrec.federation.shared_model import DeviceTask, DeviceUpdate, SharedModel, Tier
from fedrec.metrics import batch_metrics
from fedrec.train.local import train_mf_client


def tiers_for(scenario: Scenario, n_items: int) -> list[Tier]:
    """Each profile's width: the widest full table its budget holds (BudgetError names the minimum)."""
    return [Tier(i, p, FullEmbedding.for_budget(int(p.budget_bytes), n_items, scenario.run.max_dim))
            for i, p in enumerate(scenario.devices.profiles)]


def initial_user_vector(run: RunSettings, user: int, width: int) -> torch.Tensor:
    """A user's starting private vector, reproducible from the seed without any server involvement."""
    generator = torch.Generator().manual_seed(run.seed * 1_000_003 + user)
    return torch.randn(width, generator=generator) * run.init_std


class FederatedMF(SharedModel):
    """The item table at the widest width; a device holds all rows and its tier's leading columns."""

    sparse = frozenset({"items"})

    def __init__(self, split: Split, scenario: Scenario):
        generator = torch.Generator().manual_seed(scenario.run.seed)
        items = torch.randn(split.n_items, scenario.run.max_dim, generator=generator) * scenario.run.init_std
        super().__init__(split, scenario, {"items": items}, tiers_for(scenario, split.n_items))

    @property
    def items(self) -> torch.Tensor:
        return self.shared["items"]

    @property
    def widths(self) -> list[int]:
        return sorted({t.width for t in self.tiers})

    def held_shapes(self, tier: Tier) -> dict[str, tuple[int, ...]]:
        return {"items": (self.split.n_items, tier.width)}

    def task_for(self, user: int, purpose: str) -> DeviceTask:
        tier = self.tier_of(user)
        return DeviceTask(self.held(tier), {}, {"widths": [w for w in self.widths if w <= tier.width]})

    def device_items(self, tier: Tier) -> FullEmbedding:
        items = FullEmbedding(tier.spec)
        items.load_payload({"weight": self.items[:, :tier.width].contiguous()})
        return items


def _user_vector(states: DeviceStates, run: RunSettings, user: int, width: int, round_: int) -> np.ndarray:
    stored = states.get(user, round_)
    return initial_user_vector(run, user, width).numpy() if stored is None or len(stored) != width else stored


def train_device(split: Split, scenario: Scenario, user: int, task: DeviceTask, round_: int,
                 states: DeviceStates) -> DeviceUpdate:
    """One user's local round from its private vector as of the previous round; the new vector is stored."""
    run, items = scenario.run, task.shared["items"]
    rng = np.random.default_rng([run.seed, round_, user])
    positives = np.concatenate(split.user_sequences(user))
    update = train_mf_client(items, _user_vector(states, run, user, items.shape[1], round_ - 1), positives,
                             task.settings["widths"], run.local_epochs, run.lr, run.l2, rng)
    states.put(user, round_, update.user.astype(np.float32))
    return DeviceUpdate({"items": update.item_delta.astype(np.float32)}, {"items": update.rows.astype(np.int64)},
                        update.n_examples, update.loss)


def evaluate_device(split: Split, scenario: Scenario, user: int, task: DeviceTask, data: EvalSet, round_: int,
                    states: DeviceStates) -> dict[str, float]:
    """Metric sums of this user's examples in `data` (usually one), ranked on the device's own table."""
    rows = np.flatnonzero(data.users == user)
    if not len(rows):
        return {}
    items = torch.from_numpy(task.shared["items"])
    user_vector = torch.from_numpy(_user_vector(states, scenario.run, user, items.shape[1], round_))
    examples = data.subset(rows)
    scores = (user_vector @ items.T).expand(len(rows), -1).clone()
    return batch_metrics(scores, examples.targets, examples.exclude) | {"examples": float(len(rows))}
