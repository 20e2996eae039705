"""Device profiles and mixes: what each simulated client can store, how fast it computes and transfers.

A mix assigns profiles to clients in exact proportions (largest remainder), shuffled by the seed, so the same seed
always gives the same device for the same user.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fedrec.errors import ConfigError
from fedrec.schema import SIZE, Place, check, fraction, positive, table_of

MBIT = 1e6

DEVICE_RULES = {
    "budget_bytes": SIZE, "speed": positive(), "uplink_mbps": positive(), "downlink_mbps": positive(),
    "availability": fraction(open_low=True), "failure_prob": fraction(open_high=True), "fraction": fraction(),
}


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
        values = {k: getattr(self, k) for k in DEVICE_RULES if k != "fraction"}
        check(DEVICE_RULES, values, lambda key: f"device {self.name!r}")

    def transfer_seconds(self, bytes_down: int, bytes_up: int) -> float:
        return bytes_down * 8 / (self.downlink_mbps * MBIT) + bytes_up * 8 / (self.uplink_mbps * MBIT)

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any], place: Place) -> DeviceProfile:
        table = f"devices.{name}"
        if "budget_bytes" not in table_of(data, table, place):
            raise ConfigError(f"{place(table, 'budget_bytes')}: budget_bytes is required")
        values = check(DEVICE_RULES, data, lambda key: place(table, key))
        return cls(name=name, **{k: v for k, v in values.items() if k != "fraction"})


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
    def from_dict(cls, devices: dict[str, Any], place: Place) -> DeviceMix:
        """From a scenario's `[devices.NAME]` tables, each with a `fraction`."""
        profiles = [DeviceProfile.from_dict(n, d, place) for n, d in table_of(devices, "devices", place).items()]
        missing = [name for name, d in devices.items() if "fraction" not in d]
        if missing:
            raise ConfigError(f"{place('devices', 'fraction')}: devices {missing} need a fraction")
        return cls(tuple(profiles), tuple(float(d["fraction"]) for d in devices.values()))
