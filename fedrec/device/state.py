"""Private per-user state on a device: versioned by round, in memory and optionally on the device's disk.

A device keeps its last two versions (round, vector). After a crash the server resumes from its checkpoint of round
r, so a device that already stored round r+1 must answer with its round-r version; `as_of` picks it. The disk copy
(one small file per user, written atomically) is what survives a killed simulation.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from fedrec.errors import DatasetError
from fedrec.results import atomic_write

Versions = list[tuple[int, np.ndarray]]  # ascending rounds, at most two


def as_of(versions: Versions, round_: int) -> np.ndarray | None:
    """The newest version stored no later than `round_`."""
    eligible = [vector for stored, vector in versions if stored <= round_]
    return eligible[-1] if eligible else None


def push(versions: Versions, round_: int, vector: np.ndarray) -> Versions:
    """Store `vector` as of `round_`, replacing versions from that round on (a re-run round) and keeping two."""
    return ([(r, v) for r, v in versions if r < round_] + [(round_, vector)])[-2:]


class DeviceStates:
    """user -> versions, kept in memory, mirrored to `directory` when one is given."""

    def __init__(self, memory: dict[int, Versions] | None = None, directory: Path | None = None):
        self.memory = memory if memory is not None else {}
        self.directory = directory

    def _file(self, user: int) -> Path:
        assert self.directory is not None
        return self.directory / f"user-{user}.npz"

    def versions(self, user: int, round_: int | None = None) -> Versions:
        if user not in self.memory and self.directory is not None and self._file(user).exists():
            self.memory[user] = self._read(user, round_)
        return self.memory.get(user, [])

    def _read(self, user: int, round_: int | None) -> Versions:
        path = self._file(user)
        try:
            with np.load(path, allow_pickle=False) as stored:
                versions = [(int(r), stored[f"v{i}"]) for i, r in enumerate(stored["rounds"])]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            when = f" as of round {round_}" if round_ is not None else ""
            reason = str(err).split(". ")[0]
            raise DatasetError(f"device of user {user}: its state{when} ({path}) is damaged ({type(err).__name__}: "
                               f"{reason}); start the run again without --resume") from None
        return versions

    def get(self, user: int, round_: int) -> np.ndarray | None:
        return as_of(self.versions(user, round_), round_)

    def put(self, user: int, round_: int, vector: np.ndarray) -> None:
        versions = push(self.versions(user), round_, vector)
        self.memory[user] = versions
        if self.directory is not None:
            arrays = {"rounds": np.array([r for r, _ in versions])} | {f"v{i}": v for i, (_, v) in enumerate(versions)}
            atomic_write(self._file(user), lambda tmp: np.savez(tmp.open("wb"), **arrays))
