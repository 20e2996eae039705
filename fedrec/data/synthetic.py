"""Synthetic interaction logs with the structure real recommendation data has, so that models have something to learn.

- item popularity follows a power law (Zipf), user activity is heavy-tailed (log-normal, at least 5 interactions);
- each user has a latent taste; an item is picked with probability ∝ popularity^a · exp(taste · item factor / T);
- a user's history is a series of sessions, and the taste drifts a little from one session to the next;
- items are released over time and only released items can be picked, so the catalogue grows.
Picks within a session are drawn without replacement from the items the user has not seen yet (no duplicates).
"""
from __future__ import annotations

import numpy as np

from fedrec.data.dataset import InteractionLog
from fedrec.errors import ConfigError

DAY = 86_400


def generate(n_users: int = 200, n_items: int = 500, mean_interactions: float = 30, dim: int = 8, seed: int = 0, *,
             zipf_exponent: float = 1.0, popularity_weight: float = 0.8, temperature: float = 0.2,
             mean_session_length: float = 5.0, drift: float = 0.15, new_item_fraction: float = 0.5,
             days: int = 365) -> InteractionLog:
    """A deterministic (by `seed`) log with integer timestamps in seconds; raw ids are `0..n-1`.

    Item ids are numbered in release order. `new_item_fraction` of the items are released during the first 80% of
    `days`, the rest exist from the start.
    """
    if n_items < 10 or n_users < 1:
        raise ConfigError(f"synthetic data needs n_items >= 10 and n_users >= 1, got {n_items} and {n_users}")
    rng = np.random.default_rng(seed)
    release = _release_times(rng, n_items, new_item_fraction, days * DAY)
    log_popularity = -zipf_exponent * np.log(rng.permutation(n_items) + 1.0)
    item_factors = rng.normal(size=(n_items, dim))
    base_logits = popularity_weight * log_popularity
    activity = _activity(rng, n_users, mean_interactions, max_interactions=n_items // 2)
    starts = rng.uniform(0, 0.75 * days * DAY, size=n_users)
    rows = [_user_history(rng, n, start, base_logits, item_factors, release, temperature, drift, mean_session_length)
            for n, start in zip(activity, starts)]
    users = np.repeat(np.arange(n_users), [len(items) for items, _ in rows])
    items = np.concatenate([items for items, _ in rows])
    times = np.concatenate([times for _, times in rows])
    order = np.argsort(times, kind="stable")
    return InteractionLog(users=users[order], items=items[order], timestamps=times[order])


def _release_times(rng: np.random.Generator, n_items: int, new_fraction: float, horizon: float) -> np.ndarray:
    """Sorted release times: the catalogue at time 0, then new items over the first 80% of the horizon."""
    n_new = int(round(n_items * new_fraction))
    return np.sort(np.r_[np.zeros(n_items - n_new), rng.uniform(0, 0.8 * horizon, size=n_new)])


def _activity(rng: np.random.Generator, n_users: int, mean: float, max_interactions: int) -> np.ndarray:
    """Heavy-tailed interaction counts (log-normal, sigma 1) with the given mean before clipping to [5, max]."""
    sigma = 1.0
    counts = rng.lognormal(np.log(mean) - sigma**2 / 2, sigma, size=n_users)
    return np.clip(np.round(counts), 5, max_interactions).astype(np.int64)


def _user_history(rng: np.random.Generator, n: int, start: float, base_logits: np.ndarray, item_factors: np.ndarray,
                  release: np.ndarray, temperature: float, drift: float, mean_session_length: float,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One user's items and strictly increasing timestamps, session by session."""
    taste = _unit(rng.normal(size=item_factors.shape[1]))
    seen = np.zeros(len(base_logits), dtype=bool)
    items, times, now = [], [], start
    while len(items) < n:
        taste = _unit(taste + drift * rng.normal(size=len(taste)))
        available = (release <= now) & ~seen
        if not available.any():  # everything released so far is seen: wait for the next release
            now = release[~seen].min()
            continue
        size = min(1 + rng.poisson(mean_session_length - 1), n - len(items), int(available.sum()))
        logits = np.where(available, base_logits + item_factors @ taste / temperature, -np.inf)
        picks = _top_k(logits + rng.gumbel(size=len(logits)), size)  # Gumbel top-k = sampling without replacement
        seen[picks] = True
        steps = 1 + np.floor(rng.exponential(120.0, size=len(picks)))  # seconds between clicks in a session
        items += picks.tolist()
        times += (now + np.cumsum(steps)).tolist()
        now = times[-1] + 1 + rng.exponential(2.0 * DAY)  # gap before the next session
    return np.asarray(items, dtype=np.int64), np.floor(np.asarray(times)).astype(np.int64)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, largest first."""
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return top[np.argsort(-scores[top], kind="stable")]


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)
