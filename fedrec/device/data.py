"""One user's data as its device holds it: training sequences and its own held-out examples.

In simulation it is cut from the run's `Split`; on a real device it comes from a local file of the same shape.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedrec.data.dataset import EvalSet, Split
from fedrec.errors import DatasetError
from fedrec.federation.messages import DeviceFailure


@dataclass(frozen=True)
class DeviceData:
    user: int
    n_items: int
    train: list[np.ndarray]       # chronological training sequences (one for CF users, several for pseudo-users)
    valid: EvalSet                # this user's validation examples (often one, possibly none)
    test: EvalSet

    @classmethod
    def from_split(cls, split: Split, user: int) -> DeviceData:
        own = lambda data: data.subset(np.flatnonzero(data.users == user))  # noqa: E731
        return cls(user, split.n_items, split.user_sequences(user), own(split.valid), own(split.test))

    def examples(self, split: str) -> EvalSet:
        return self.valid if split == "valid" else self.test

    def positives(self) -> np.ndarray:
        """Every training interaction's item, in order."""
        return np.concatenate(self.train) if self.train else np.empty(0, dtype=np.int64)

    def contrastive_positives(self) -> np.ndarray:
        """The positives of a pairwise loss (BPR): refused (DeviceFailure) when there is none or no item outside."""
        positives = self.positives().astype(np.int64)
        if not len(positives) or len(np.unique(positives)) >= self.n_items:
            raise DeviceFailure(f"user {self.user} has {len(np.unique(positives))} of {self.n_items} items: no "
                                f"positive and negative to contrast")
        return positives

    def save(self, path: Path) -> None:
        """The device's data file (what a real device keeps locally)."""
        arrays = {"n_items": np.array(self.n_items), "user": np.array(self.user)}
        arrays |= {f"train.{i}": s for i, s in enumerate(self.train)}
        for name in ("valid", "test"):
            data = self.examples(name)
            arrays |= {f"{name}.{i}.history": h for i, h in enumerate(data.histories)}
            arrays |= {f"{name}.{i}.target": t for i, t in enumerate(data.targets)}
            if data.exclude is not None:
                arrays |= {f"{name}.{i}.exclude": e for i, e in enumerate(data.exclude)}
        with Path(path).open("wb") as out:
            np.savez(out, **arrays)

    @classmethod
    def load(cls, path: Path) -> DeviceData:
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {k: stored[k] for k in stored.files}
        except (OSError, ValueError) as err:
            raise DatasetError(f"{path}: not a fedrec device data file ({err})") from None
        if "n_items" not in arrays or "user" not in arrays:
            raise DatasetError(f"{path}: not a fedrec device data file (n_items and user are missing)")
        count = lambda prefix: len([k for k in arrays if k.startswith(prefix) and k.endswith(".target")])  # noqa: E731

        def examples(name: str) -> EvalSet:
            n = count(f"{name}.")
            exclude = [arrays[f"{name}.{i}.exclude"] for i in range(n)] if f"{name}.0.exclude" in arrays else None
            return EvalSet(np.full(n, int(arrays["user"]), dtype=np.int64),
                           [arrays[f"{name}.{i}.history"] for i in range(n)],
                           [arrays[f"{name}.{i}.target"] for i in range(n)], exclude)

        train = [arrays[f"train.{i}"] for i in range(len([k for k in arrays if k.startswith("train.")]))]
        return cls(int(arrays["user"]), int(arrays["n_items"]), train, examples("valid"), examples("test"))
