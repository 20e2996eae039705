"""The federated-method interface: the server half of a (backbone, item representation) pair, and its registry.

A method owns the named shared tensors at full size and says, per device tier, what a device holds of each
(`layout`: a `Holding` per name), what else its task carries (static arrays such as codes, plain settings, per-user
help the device asked for) and which item representation a tier ends with (`device_items`). It never reads a
user's data to build a task. Sampling, validation and aggregation are the round strategy's; messages and transport
the coordinator's. Adding a method is a subclass (or a new item representation for an existing one) and a
`register` line in `fedrec.federation.registry`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedrec.configs import Config
from fedrec.data.dataset import Split
from fedrec.embeddings import EmbeddingSpec, ItemEmbedding, method_class
from fedrec.embeddings import holdings as held
from fedrec.embeddings.holdings import Holding
from fedrec.errors import ConfigError
from fedrec.federation.devices import DeviceMix, DeviceProfile
from fedrec.federation.messages import Arrays, HelpRequest
from fedrec.federation.settings import RunSettings

ITEMS = "items."  # shared tensors of the item representation are named items.<tensor>


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
    """What one device gets: blocks of the shared tensors, static arrays, its own arrays, plain settings."""

    shared: Arrays
    static: Arrays
    private: Arrays
    settings: dict[str, Any]


def item_options(method: str, config: Config) -> dict[str, Any]:
    """The size options of an item representation, from a model config's keys."""
    keys = {"codes": {"codebooks": "codebooks", "codewords": "codewords"}, "tt": {"rank": "tt_rank"}}
    return {option: config[key] for option, key in keys.get(method, {}).items()}


class FederatedMethod(ABC):
    """Server half of a federated method: global items (+ body), tiers, layouts, tasks, state."""

    sparse: frozenset[str] = frozenset()  # shared tensors whose deltas may come with the rows they cover

    def __init__(self, split: Split, run: RunSettings, devices: DeviceMix, config: Config,
                 log: Callable[[str], None] = print):
        self.run, self.config, self.log = run, config, log
        self.n_users, self.n_items = split.n_users, split.n_items
        self.tiers = self.plan(run, config, split.n_items, list(devices.profiles))
        self.client_tier = devices.assign(split.n_users, run.seed)
        self.items, self.shared = self.initial_model(split)
        self._layouts = {tier.index: self._checked_layout(tier) for tier in self.tiers}
        self._blocks: dict[int, Arrays] = {}   # per tier, until the shared tensors change
        self._has_static: set[int] = set()      # devices that stored their static arrays
        self._help: dict[int, np.ndarray] = {}  # item ids each device asked help for

    # planning and layout
    @classmethod
    def plan(cls, run: RunSettings, config: Config, n_items: int, profiles: list[DeviceProfile]) -> list[Tier]:
        """Each profile's item representation: the largest within its budget (BudgetError names the minimum).
        A class method, so that a run can be checked before anything starts."""
        items, options = method_class(run.method), item_options(run.method, config)
        return [Tier(i, p, items.for_budget(int(p.budget_bytes), n_items, run.max_dim, **options))
                for i, p in enumerate(profiles)]

    def global_spec(self) -> EmbeddingSpec:
        """The server's item representation: the method's largest configuration at the widest width."""
        options = item_options(self.run.method, self.config)
        return EmbeddingSpec(self.run.method, self.n_items, self.run.max_dim, options)

    @abstractmethod
    def initial_model(self, split: Split) -> tuple[ItemEmbedding, dict[str, torch.Tensor]]:
        """The global item representation and every shared tensor by name (items.* and the body's)."""

    def layout(self, tier: Tier) -> dict[str, Holding]:
        """What a device of `tier` holds of each shared tensor: the item representation's own layout (+ body)."""
        return {ITEMS + k: h for k, h in self.items.layout(tier.spec).items()}

    def _checked_layout(self, tier: Tier) -> dict[str, Holding]:
        layout = self.layout(tier)
        for name, holding in layout.items():
            held.check(holding, tuple(self.shared[name].shape), name)
        return layout

    def holdings(self, tier: Tier) -> dict[str, Holding]:
        return self._layouts[tier.index]

    def tier_of(self, user: int) -> Tier:
        return self.tiers[int(self.client_tier[user])]

    # tasks
    def blocks(self, tier: Tier) -> Arrays:
        """The device's blocks of the shared tensors as contiguous float32 arrays (one copy per tier serves every
        task of a round, so device code must treat them as read-only)."""
        if tier.index not in self._blocks:
            self._blocks[tier.index] = {name: np.ascontiguousarray(held.take(self.shared[name], h).numpy())
                                        for name, h in self.holdings(tier).items()}
        return self._blocks[tier.index]

    def settings(self, tier: Tier) -> dict[str, Any]:
        """Plain values the device program needs (by default the spec of its item representation)."""
        return {"items": tier.spec.to_dict()}

    def private(self, user: int, tier: Tier, purpose: str) -> Arrays:
        """Arrays for this user only, from what the server holds or the device asked for (none by default)."""
        return {}

    def task(self, user: int, purpose: str) -> DeviceTask:
        """What `user`'s device needs to train ("train") or to rank items ("evaluate"); reads no user data."""
        tier = self.tier_of(user)
        return DeviceTask(self.blocks(tier), self.items.static_arrays(tier.spec), self.private(user, tier, purpose),
                          self.settings(tier))

    def wants_help(self, user: int) -> bool:
        """Whether `user`'s device must be asked which items it wants help for before it trains."""
        return False

    def receive_help_request(self, request: HelpRequest) -> None:
        self._help[request.user] = request.ids

    def download_bytes(self, user: int, task: DeviceTask) -> int:
        """Blocks and private arrays every round; static arrays once per device, at their stored size."""
        moved = sum(a.nbytes for a in (*task.shared.values(), *task.private.values()))
        if task.static and user not in self._has_static:
            self._has_static.add(user)
            moved += self.items.static_bytes(self.tier_of(user).spec)
        return moved

    # the server step and state
    def apply(self, new: dict[str, torch.Tensor]) -> None:
        self.shared |= new
        self._blocks.clear()
        self.items.load_shared({k.removeprefix(ITEMS): v.numpy() for k, v in self.shared.items()
                                if k.startswith(ITEMS)})

    def state(self) -> Arrays:
        """Everything the server must checkpoint to go on."""
        help_users = sorted(self._help)
        return {f"shared.{k}": v.numpy() for k, v in self.shared.items()} | {
            "has_static": np.array(sorted(self._has_static), dtype=np.int64),
            "help_users": np.array(help_users, dtype=np.int64)} | {
            f"help.{u}": self._help[u] for u in help_users}

    def load_state(self, arrays: Arrays, source: str = "checkpoint") -> None:
        """Go on from `state()`'s arrays; missing, misshapen or non-finite ones are refused."""
        missing = sorted(f"shared.{k}" for k in self.shared if f"shared.{k}" not in arrays)
        missing += [k for k in ("has_static", "help_users") if k not in arrays]
        missing += [f"help.{u}" for u in arrays.get("help_users", []) if f"help.{u}" not in arrays]
        if missing:
            raise ConfigError(f"{source} lacks {missing}: it was written by another method or version")
        for name, tensor in self.shared.items():
            stored = arrays[f"shared.{name}"]
            if stored.shape != tuple(tensor.shape):
                raise ConfigError(f"{source}: {name} has shape {stored.shape}, this run's is {tuple(tensor.shape)}: "
                                  f"it was written under other settings")
            if not np.isfinite(stored).all():
                raise ConfigError(f"{source}: {name} holds non-finite values (the run diverged before this "
                                  f"checkpoint); start again, e.g. with a smaller lr")
        self.apply({k: torch.from_numpy(arrays[f"shared.{k}"].copy()) for k in self.shared})
        self._has_static = {int(u) for u in arrays["has_static"]}
        self._help = {int(u): arrays[f"help.{u}"] for u in arrays["help_users"]}

    def device_items(self, tier: Tier) -> ItemEmbedding:
        """The item representation a device of `tier` stores now (what it would export)."""
        items = method_class(tier.spec.method)(tier.spec)
        items.load_static(self.items.static_arrays(tier.spec))
        items.load_shared({k.removeprefix(ITEMS): v for k, v in self.blocks(tier).items() if k.startswith(ITEMS)})
        return items

    def export_tiers(self, directory: Path) -> dict[str, int]:
        """Each tier's on-device item artifact `<tier>.fedrec`; returns its exact bytes (= its payload size)."""
        directory.mkdir(parents=True, exist_ok=True)
        sizes = {}
        for tier in self.tiers:
            items = self.device_items(tier)
            items.export(directory / f"{tier.name}.fedrec")
            sizes[tier.name] = items.memory_bytes()
        return sizes


MethodClass = type[FederatedMethod]
_REGISTRY: dict[tuple[str, str], MethodClass] = {}


def register(model: str, method: str, cls: MethodClass) -> None:
    _REGISTRY[(model, method)] = cls


def supported() -> list[tuple[str, str]]:
    from fedrec.federation import registry  # noqa: F401  (registers the pairs)

    return sorted(_REGISTRY)


def method_for(model: str, method: str) -> MethodClass:
    """The registered method of a pair; a clear error listing the supported pairs otherwise."""
    pairs = supported()
    if (model, method) not in pairs:
        listed = ", ".join(f"{m}/{e}" for m, e in pairs)
        raise ConfigError(f"model = {model!r} with method = {method!r} does not federate; supported pairs "
                          f"(model/method): {listed}")
    return _REGISTRY[(model, method)]
