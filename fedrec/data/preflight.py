"""Checks a split passes before anything trains on it: refusals that name what is missing, with the counts.

Without them a degenerate dataset fails far from its cause (a missing validation metric at the end of the first
epoch, or a federation whose every client is dropped round after round).
"""
from __future__ import annotations

import numpy as np

from fedrec.data.dataset import Split
from fedrec.errors import DatasetError


def _counts(split: Split) -> str:
    return (f"{split.n_users} users, {split.n_items} items, {split.n_train} training interactions, "
            f"{len(split.valid)} validation and {len(split.test)} test examples")


def require_trainable(split: Split) -> None:
    """Enough of everything to train, select on validation and report test: at least two items (a ranking),
    training interactions, and validation and test examples."""
    missing = [what for what, ok in (("2 or more items", split.n_items >= 2),
                                     ("training interactions", split.n_train > 0),
                                     ("validation examples", len(split.valid) > 0),
                                     ("test examples", len(split.test) > 0)) if not ok]
    if missing:
        hint = "; a leave-last-out split holds out items of users with 3 or more interactions"
        hint = hint if split.kind == "cf" else ""
        raise DatasetError(f"dataset {split.name!r} cannot be trained on: it needs {', '.join(missing)} "
                           f"({_counts(split)}){hint}")


def able_clients(split: Split, model: str) -> int:
    """Users whose device can train `model`: MF needs a positive and an item it has not seen (a negative); a
    sequential model needs a training sequence of two items (one prefix -> next item pair)."""
    if model == "sasrec":
        return sum(1 for u in range(split.n_users) if any(len(s) >= 2 for s in split.user_sequences(u)))
    seen = np.zeros(split.n_users, dtype=np.int64)
    pairs = np.unique(np.stack([split.train_users, split.train_items]), axis=1)
    np.add.at(seen, pairs[0], 1)
    return int(((seen > 0) & (seen < split.n_items)).sum())


def require_federation(split: Split, model: str) -> None:
    """A federation needs what training needs and at least one client able to train."""
    require_trainable(split)
    if able_clients(split, model) == 0:
        need = "a training sequence of 2 items" if model == "sasrec" else "an interaction and an unseen item"
        raise DatasetError(f"dataset {split.name!r}: no user can train {model} on its device ({_counts(split)}); "
                           f"{need} per user is the minimum")
