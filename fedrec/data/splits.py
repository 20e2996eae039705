"""From raw logs/sessions to a `Split`: dense re-indexing, leave-last-out, the dataset's own split, time segments."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from fedrec.data.dataset import EvalSet, InteractionLog, Split
from fedrec.errors import ConfigError, DatasetError


def reindex(raw: np.ndarray, vocabulary: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Map raw ids to dense `0..n-1` ids; returns (dense ids, raw id of each dense id).

    With a `vocabulary` the order is the vocabulary's (used to keep a dataset's own numbering when it is dense).
    """
    vocab = np.unique(raw) if vocabulary is None else np.asarray(vocabulary)
    order = np.argsort(vocab, kind="stable")
    pos = np.searchsorted(vocab[order], raw)
    return order[pos].astype(np.int64), vocab


def _chronological_order(log: InteractionLog, users: np.ndarray) -> np.ndarray:
    """Order by (user, time, file position): ties keep file order so the split is deterministic."""
    position = np.arange(len(log))
    if log.timestamps is None:
        return np.lexsort((position, users))
    return np.lexsort((position, log.timestamps, users))


def _group_runs(sorted_users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and lengths of each user's run in a user-sorted array."""
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    lengths = np.diff(np.r_[starts, len(sorted_users)])
    return starts, lengths


def leave_last_out(log: InteractionLog, name: str, min_history: int = 3) -> Split:
    """Per user by time: last interaction = test, second last = validation, the rest = training.

    Users with fewer than `min_history` interactions keep everything in training and are not evaluated.
    """
    if len(log) == 0:
        raise DatasetError(f"{name}: no interactions to split")
    users, _ = reindex(log.users)
    items, item_ids = reindex(log.items)
    order = _chronological_order(log, users)
    users, items = users[order], items[order]
    starts, lengths = _group_runs(users)

    sequences, valid_rows, test_rows = [], [], []
    in_train = np.ones(len(items), dtype=bool)
    for start, length in zip(starts, lengths):
        seq = items[start:start + length]
        if length >= min_history:
            in_train[start + length - 2:start + length] = False
            valid_rows.append((users[start], seq[:-2], seq[-2]))
            test_rows.append((users[start], seq[:-1], seq[-1]))
            sequences.append(seq[:-2])
        else:
            sequences.append(seq)
    return Split(
        name=name, kind="cf", n_users=int(users.max()) + 1, n_items=len(item_ids),
        train_users=users[in_train], train_items=items[in_train], train_sequences=sequences,
        valid=_next_item_evalset(valid_rows), test=_next_item_evalset(test_rows), item_ids=item_ids,
        description="leave-last-out per user by time (valid = second last, test = last)",
    )


def _next_item_evalset(rows: list[tuple[int, np.ndarray, int]]) -> EvalSet:
    """(user, history, target) rows; the history is also excluded from the ranking (CF protocol)."""
    histories = [h for _, h, _ in rows]
    return EvalSet(users=np.array([u for u, _, _ in rows], dtype=np.int64), histories=histories,
                   targets=[np.array([t]) for _, _, t in rows], exclude=histories)


def _per_user_lists(users: np.ndarray, items: np.ndarray, n_users: int) -> list[np.ndarray]:
    """Items of each user in file order (stable), as a list indexed by dense user id."""
    order = np.argsort(users, kind="stable")
    counts = np.bincount(users, minlength=n_users)
    return np.split(items[order], np.cumsum(counts)[:-1])


def predefined_cf_split(train: InteractionLog, test: InteractionLog, name: str,
                        valid_fraction: float = 0.1, seed: int = 0) -> Split:
    """The dataset's own train/test split (e.g. LightGCN files) plus a per-user random validation hold-out.

    Validation takes `valid_fraction` of each user's training items (at least one when the user has two or more);
    the model trains on the rest. Test ranking excludes all of the user's training-file items.
    """
    all_users, user_ids = reindex(np.concatenate([train.users, test.users]))
    all_items, item_ids = reindex(np.concatenate([train.items, test.items]))
    n_train_rows = len(train)
    n_users = len(user_ids)
    train_lists = _per_user_lists(all_users[:n_train_rows], all_items[:n_train_rows], n_users)
    test_lists = _per_user_lists(all_users[n_train_rows:], all_items[n_train_rows:], n_users)

    rng = np.random.default_rng(seed)
    fit_users, fit_items, sequences = [], [], []
    valid_users, valid_hist, valid_targets = [], [], []
    for user, seen in enumerate(train_lists):
        n_valid = min(max(int(round(len(seen) * valid_fraction)), 1), len(seen) - 1) \
            if len(seen) > 1 and valid_fraction > 0 else 0
        held = np.zeros(len(seen), dtype=bool)
        held[rng.choice(len(seen), size=n_valid, replace=False)] = True
        keep = seen[~held]
        fit_users.append(np.full(len(keep), user, dtype=np.int64))
        fit_items.append(keep)
        sequences.append(keep)
        if n_valid:
            valid_users.append(user)
            valid_hist.append(keep)
            valid_targets.append(seen[held])
    test_users = [u for u in range(n_users) if len(test_lists[u])]
    return Split(
        name=name, kind="cf", n_users=n_users, n_items=len(item_ids),
        train_users=np.concatenate(fit_users), train_items=np.concatenate(fit_items), train_sequences=sequences,
        valid=EvalSet(np.array(valid_users, dtype=np.int64), valid_hist, valid_targets, exclude=valid_hist),
        test=EvalSet(np.array(test_users, dtype=np.int64), [train_lists[u] for u in test_users],
                     [test_lists[u] for u in test_users], exclude=[train_lists[u] for u in test_users]),
        item_ids=item_ids,
        description=f"dataset's own train/test split; validation = {valid_fraction:.0%} of each user's train items",
    )


def session_pairs(sessions: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Every prefix -> next item pair of each session, longest prefix first (the SR-GNN augmentation)."""
    prefixes, targets = [], []
    for s in sessions:
        for i in range(1, len(s)):
            prefixes.append(s[:-i])
            targets.append(s[-i])
    return prefixes, np.asarray(targets, dtype=np.int64)


def _pairs_evalset(prefixes: list[np.ndarray], targets: np.ndarray) -> EvalSet:
    return EvalSet(users=np.full(len(targets), -1, dtype=np.int64), histories=prefixes,
                   targets=[np.array([t]) for t in targets], exclude=None)


def _flatten(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """All items of `seqs` in one int64 array, and each sequence's length."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    return np.fromiter((i for s in seqs for i in s), dtype=np.int64, count=int(lengths.sum())), lengths


def _unflatten(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []


def session_split(train_sessions: Sequence[Sequence[int]], test_prefixes: Sequence[Sequence[int]],
                  test_targets: Sequence[int], name: str, valid_fraction: float = 0.1) -> Split:
    """Session data with its own test pairs; the most recent `valid_fraction` of training sessions is validation.

    Items are numbered densely in order of their raw ids; test items unseen in training are an error because
    the model cannot score them.
    """
    flat, lengths = _flatten(train_sessions)
    dense, item_ids = reindex(flat)
    test_flat, test_lengths = _flatten(test_prefixes)
    targets = np.asarray(test_targets, dtype=np.int64)
    unseen = np.setdiff1d(np.concatenate([targets, test_flat]), item_ids)
    if len(unseen):
        raise DatasetError(f"{name}: {len(unseen)} test item ids never occur in training (e.g. {unseen[:5].tolist()})")
    sessions = _unflatten(dense, lengths)
    n_valid = int(round(len(sessions) * valid_fraction))
    fit, held = sessions[:len(sessions) - n_valid], sessions[len(sessions) - n_valid:]
    fit_lengths = lengths[:len(fit)]
    return Split(
        name=name, kind="session", n_users=len(fit), n_items=len(item_ids),
        train_users=np.repeat(np.arange(len(fit)), fit_lengths),
        train_items=np.concatenate(fit) if fit else np.empty(0, dtype=np.int64),
        train_sequences=list(fit),
        valid=_pairs_evalset(*session_pairs(held)), valid_sessions=list(held),
        test=_pairs_evalset(_unflatten(reindex(test_flat, item_ids)[0], test_lengths), reindex(targets, item_ids)[0]),
        item_ids=item_ids,
        description=f"dataset's own test pairs; validation = most recent {valid_fraction:.0%} of training sessions",
    )


def group_sessions(split: Split, sessions_per_user: int) -> Split:
    """Session data as devices: every `sessions_per_user` consecutive training sessions (in the file's time order)
    are one pseudo-user, and the validation and test pairs are dealt to the pseudo-users in consecutive blocks of
    near-equal size, in order (a session's pairs may straddle two neighbours; each pair is ranked on its own).

    Session datasets carry no user ids, so this stands in for "one client = one user": a device sees a stretch of
    consecutive sessions, as a phone would over a period of use.
    """
    if split.kind != "session":
        raise ConfigError(f"{split.name}: sessions_per_user applies to session datasets; this one is {split.kind}")
    if sessions_per_user < 1:
        raise ConfigError(f"sessions_per_user must be >= 1, got {sessions_per_user}")
    owners = np.arange(len(split.train_sequences)) // sessions_per_user
    n_users = int(owners[-1]) + 1 if len(owners) else 0
    lengths = np.array([len(s) for s in split.train_sequences])

    def deal(examples: EvalSet) -> EvalSet:
        return replace(examples, users=np.arange(len(examples), dtype=np.int64) * n_users // max(len(examples), 1))

    return replace(split, n_users=n_users, train_users=np.repeat(owners, lengths), sequence_users=owners,
                   valid=deal(split.valid), test=deal(split.test),
                   description=f"{split.description}; pseudo-users of {sessions_per_user} consecutive sessions")


def time_segments(log: InteractionLog, n_segments: int) -> list[np.ndarray]:
    """Row indices of `n_segments` chronological segments of (near) equal interaction count.

    Sorted by (time, user, item) so that ties are deterministic.
    """
    if log.timestamps is None:
        raise DatasetError("time segments need timestamps; this dataset has none")
    if not 1 <= n_segments <= len(log):
        raise DatasetError(f"n_segments must be in 1..{len(log)}, got {n_segments}")
    order = np.lexsort((log.items, log.users, log.timestamps))
    return np.array_split(order, n_segments)
