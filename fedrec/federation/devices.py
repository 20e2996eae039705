"""Device profiles and mixes: what each simulated client can store, how fast it computes and transfers.

A mix assigns profiles to clients in exact proportions (largest remainder), shuffled by the seed, so the same seed
always gives the same device for the same user.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from fedrec.errors import ConfigError

MBIT = 1e6


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    budget_bytes: int          # memory for the recommendation model's item representation
    speed: float = 1.0         # compute speed relative to the reference device
    uplink_mbps: float = 10.0
    downlink_mbps: float = 50.0
    availability: float = 1.0  # probability of taking part when sampled
    failure_prob: float = 0.0  # probability that a started round fails

    def __post_init__(self) -> None:
        checks = {"budget_bytes": self.budget_bytes > 0, "speed": self.speed > 0,
                  "uplink_mbps": self.uplink_mbps > 0, "downlink_mbps": self.downlink_mbps > 0,
                  "availability": 0 < self.availability <= 1, "failure_prob": 0 <= self.failure_prob < 1}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"device {self.name!r}: invalid {', '.join(f'{k} = {getattr(self, k)!r}' for k in bad)}"
                              " (budget, speed and bandwidths > 0; availability in (0, 1]; failure_prob in [0, 1))")

    def transfer_seconds(self, bytes_down: int, bytes_up: int) -> float:
        return bytes_down * 8 / (self.downlink_mbps * MBIT) + bytes_up * 8 / (self.uplink_mbps * MBIT)

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any], source: str) -> DeviceProfile:
        valid = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(data) - valid - {"fraction"})
        if unknown:
            raise ConfigError(f"{source} [devices.{name}]: unknown key(s) {unknown}; valid keys: {sorted(valid)}")
        if "budget_bytes" not in data:
            raise ConfigError(f"{source} [devices.{name}]: budget_bytes is required")
        values = {k: v for k, v in data.items() if k != "fraction"}
        values["budget_bytes"] = int(values["budget_bytes"])  # TOML writes 2e4 as a float
        return cls(name=name, **values)


@dataclass(frozen=True)
class DeviceMix:
    profiles: tuple[DeviceProfile, ...]
    fractions: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.profiles or len(self.profiles) != len(self.fractions):
            raise ConfigError("a device mix needs one fraction per profile and at least one profile")
        if any(f < 0 for f in self.fractions) or not np.isclose(sum(self.fractions), 1.0):
            raise ConfigError(f"device fractions must be >= 0 and sum to 1, got {list(self.fractions)}")

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.profiles]

    def assign(self, n_clients: int, seed: int) -> np.ndarray:
        """Profile index of each client: exact proportions (largest remainder), in a seed-shuffled order."""
        quotas = np.asarray(self.fractions) * n_clients
        counts = np.floor(quotas).astype(int)
        remainder_order = np.argsort(-(quotas - counts), kind="stable")
        counts[remainder_order[:n_clients - counts.sum()]] += 1
        tiers = np.repeat(np.arange(len(self.profiles)), counts)
        return np.random.default_rng(seed).permutation(tiers)

    @classmethod
    def from_dict(cls, devices: dict[str, dict[str, Any]], source: str) -> DeviceMix:
        """From a scenario's `[devices.NAME]` tables, each with a `fraction`."""
        missing = [name for name, d in devices.items() if "fraction" not in d]
        if missing:
            raise ConfigError(f"{source}: devices {missing} need a fraction")
        return cls(tuple(DeviceProfile.from_dict(n, d, source) for n, d in devices.items()),
                   tuple(float(d["fraction"]) for d in devices.values()))
