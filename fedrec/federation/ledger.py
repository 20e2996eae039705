"""Communication ledger: bytes each client downloads and uploads in each round, and simulated round time."""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch

from fedrec.federation.devices import DeviceProfile

COLUMNS = ("round", "client", "tier", "bytes_down", "bytes_up", "seconds")


def tensor_bytes(tensors: Mapping[str, torch.Tensor]) -> int:
    """Bytes of the raw tensor data (what travels; framing overhead is not counted)."""
    return sum(t.numel() * t.element_size() for t in tensors.values())


class CommunicationLedger:
    def __init__(self) -> None:
        self.rows: list[tuple] = []  # (round, client, tier, bytes_down, bytes_up, seconds)

    def record(self, round_: int, client: int, device: DeviceProfile, bytes_down: int, bytes_up: int,
               compute_seconds: float) -> None:
        """One client's round: its traffic, and its simulated time (compute at its speed + transfers)."""
        seconds = compute_seconds / device.speed + device.transfer_seconds(bytes_down, bytes_up)
        self.rows.append((round_, client, device.name, bytes_down, bytes_up, seconds))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def round_seconds(self, round_: int) -> float:
        """Simulated wall-clock of a round: its slowest client."""
        return max((r[5] for r in self.rows if r[0] == round_), default=0.0)

    def totals_by_tier(self) -> dict[str, dict[str, int]]:
        frame = self.frame()
        sums = frame.groupby("tier")[["bytes_down", "bytes_up"]].sum()
        return {tier: {k: int(v) for k, v in row.items()} for tier, row in sums.iterrows()}
