"""Update mods: functions a device applies to its update before sending it, on every transport (in-process and
Flower alike), as Flower's client mods wrap a ClientApp. Clipping here; local noise and obfuscation plug in the same
way.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fedrec.federation.messages import TrainReply, TrainTask
from fedrec.federation.settings import RunSettings

UpdateMod = Callable[[TrainTask, TrainReply], TrainReply]


def clip_update(max_norm: float) -> UpdateMod:
    """Scale the whole update (every delta together) to L2 norm at most `max_norm`."""

    def clip(task: TrainTask, reply: TrainReply) -> TrainReply:
        norm = float(np.sqrt(sum(float(np.square(d, dtype=np.float64).sum()) for d in reply.deltas.values())))
        if norm > max_norm:
            scale = np.float32(max_norm / norm)
            reply.deltas = {k: (d * scale).astype(np.float32) for k, d in reply.deltas.items()}
        return reply

    return clip


def mods_for(run: RunSettings) -> list[UpdateMod]:
    """The mods a run's settings ask for, in the order they apply."""
    return [clip_update(run.update_clip_norm)] if run.update_clip_norm > 0 else []
