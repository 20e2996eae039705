"""SASRec's body cut to a device's width, as in HeteroFL: a narrower model's parameters are leading slices of the
wider one's, with attention's q, k and v (stacked in one tensor) each cut alike."""
from __future__ import annotations

import numpy as np
import torch

from fedrec.embeddings.holdings import Holding, Prefix
from fedrec.models.sasrec import SASRec

PACKED_PROJECTIONS = ("in_proj_weight", "in_proj_bias")  # q, k and v stacked: cut each block, not the stack


def body_views(model: SASRec) -> dict[str, torch.Tensor]:
    """The body's parameters shaped so that a narrower model's are leading slices (q/k/v as a [3, ...] axis)."""
    views = {}
    for name, param in model.named_parameters():
        if name.startswith("items."):
            continue
        views[name] = param.reshape(3, -1, *param.shape[1:]) if name.endswith(PACKED_PROJECTIONS) else param
    return views


def body_layout(device: SASRec) -> dict[str, Holding]:
    """What a device of `device`'s width holds of the global body (built on the meta device: shapes only)."""
    return {name: Prefix(tuple(view.shape)) for name, view in body_views(device).items()}


def load_body(model: SASRec, blocks: dict[str, np.ndarray]) -> None:
    with torch.no_grad():
        for name, view in body_views(model).items():
            view.copy_(torch.from_numpy(blocks[name]))
