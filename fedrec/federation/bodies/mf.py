"""MF's body: one private vector per user, trained and kept on the device only (no shared tensors).

Its starting value is drawn from the run's seed (so it is no secret from the server, which knows the seed) with
torch's generator on the server, and sent in every task: the numpy-only device program cannot draw torch's numbers,
and a device that has not trained yet needs it to rank items.
"""
from __future__ import annotations

import numpy as np
import torch

from fedrec.federation.settings import RunSettings


def initial_user_vector(run: RunSettings, user: int, width: int) -> np.ndarray:
    """A user's starting private vector, reproducible from the seed."""
    generator = torch.Generator().manual_seed(run.seed * 1_000_003 + user)
    return (torch.randn(width, generator=generator) * run.init_std).numpy()
