"""In-memory dataset containers shared by every loader, split, model and metric.

Two raw shapes come out of the loaders (an interaction log, or sessions with a test set of their own) and one
shape goes into training and evaluation: a `Split`. Item ids are dense `0..n_items-1` everywhere after loading;
the original ids are kept so that results can be mapped back.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

Kind = Literal["cf", "session"]


@dataclass(frozen=True)
class InteractionLog:
    """User-item interactions with original (raw) ids, as read from a file.

    `timestamps` is None when the source has none (e.g. LightGCN files); splits that need time then use file order.
    """

    users: np.ndarray  # raw user ids (any hashable dtype)
    items: np.ndarray  # raw item ids
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class EvalSet:
    """Evaluation examples: one row per (user or prefix) with its held-out targets.

    - `histories[e]`: chronological input items (the prefix for next-item models; the user's known items for CF).
    - `targets[e]`: held-out items (exactly one for next-item prediction).
    - `exclude[e]`: items removed from the ranking (the user's training items for CF); None means rank everything.
    - `users[e]`: dense user id, or -1 for anonymous sessions.
    """

    users: np.ndarray
    histories: list[np.ndarray]
    targets: list[np.ndarray]
    exclude: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, rows: np.ndarray) -> EvalSet:
        """The examples at `rows` (used to evaluate on a sample)."""
        pick = lambda seq: [seq[r] for r in rows]  # noqa: E731
        return EvalSet(
            users=self.users[rows],
            histories=pick(self.histories),
            targets=pick(self.targets),
            exclude=None if self.exclude is None else pick(self.exclude),
        )


@dataclass
class Split:
    """A dataset ready for training: dense ids, training data and validation/test examples.

    - `train_users`/`train_items`: training interactions (for sessions, user = session index).
    - `train_sequences`: chronological training sequences (per user for CF data, per session for session data),
      which sequential models expand into prefix -> next-item pairs.
    """

    name: str
    kind: Kind
    n_users: int
    n_items: int
    train_users: np.ndarray
    train_items: np.ndarray
    train_sequences: list[np.ndarray]
    valid: EvalSet
    test: EvalSet
    item_ids: np.ndarray = field(default_factory=lambda: np.empty(0))  # raw id of each dense item
    description: str = ""
    valid_sessions: list[np.ndarray] = field(default_factory=list)  # session data: the sessions validation came from
    sequence_users: np.ndarray | None = None  # owner of each training sequence, ascending; None: sequence i is user i

    def user_sequences(self, user: int) -> list[np.ndarray]:
        """The training sequences of `user`: its history (CF), or the sessions of a pseudo-user (grouped sessions)."""
        if self.sequence_users is None:
            return [self.train_sequences[user]]
        start, end = np.searchsorted(self.sequence_users, [user, user + 1])
        return self.train_sequences[start:end]

    @property
    def n_train(self) -> int:
        return len(self.train_items)

    def item_popularity(self) -> np.ndarray:
        """Training interaction count per item."""
        return np.bincount(self.train_items, minlength=self.n_items)

    def with_validation_in_training(self) -> Split:
        """The split to refit on once hyperparameters are chosen: validation data joins training, test is unchanged.

        CF: each user's validation items are appended to their sequence (they follow it in time for leave-last-out);
        sessions: the validation sessions become further training sessions.
        """
        if self.kind == "session":
            sequences = list(self.train_sequences) + list(self.valid_sessions)
        else:
            sequences = list(self.train_sequences)
            for user, targets in zip(self.valid.users, self.valid.targets):
                sequences[user] = np.concatenate([sequences[user], targets])
        lengths = [len(s) for s in sequences]
        return replace(self, n_users=max(self.n_users, len(sequences)), train_sequences=sequences,
                       train_users=np.repeat(np.arange(len(sequences)), lengths),
                       train_items=np.concatenate(sequences), valid_sessions=[], sequence_users=None)

    def stats(self) -> dict[str, int | str]:
        return {
            "name": self.name,
            "kind": self.kind,
            "users": self.n_users,
            "items": self.n_items,
            "train_interactions": self.n_train,
            "train_sequences": len(self.train_sequences),
            "valid_examples": len(self.valid),
            "test_examples": len(self.test),
        }
