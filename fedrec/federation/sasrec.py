"""Federated SASRec with any item representation: the items and the body are shared, a device holds its tier's
item configuration and the body cut to the same width (HeteroFL, `bodies.sasrec`).

Without a teacher the model starts at random (codes: a uniformly random code per item, fixed by the seed). With one
(the server's full model, trained before round 1) the body starts from the teacher's and the item representation
from its table (codes learned from it, a full table copied); devices then ask for the teacher's rows of their own
items (a help request) and are pulled towards them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedrec.data.dataset import Split
from fedrec.embeddings import ItemEmbedding
from fedrec.embeddings.holdings import Holding
from fedrec.errors import ConfigError
from fedrec.federation.bodies.sasrec import body_layout, body_views
from fedrec.federation.messages import Arrays
from fedrec.federation.method import ITEMS, FederatedMethod, Tier
from fedrec.models import sasrec_with_items
from fedrec.train.teacher import copy_body, items_from_teacher, load_teacher


class FederatedSASRec(FederatedMethod):
    def __init__(self, *args: Any, **kwargs: Any):
        self.teacher_table: np.ndarray | None = None
        super().__init__(*args, **kwargs)

    def model_config(self, width: int) -> dict[str, Any]:
        """The model config at `width`: the feed-forward is as wide as the model at every width."""
        return self.config | {"dim": width, "inner": width}

    @classmethod
    def plan(cls, run, config, n_items, profiles):
        tiers = super().plan(run, config, n_items, profiles)
        for tier in tiers:
            if tier.width % config["heads"]:
                raise ConfigError(f"device {tier.name!r}: width {tier.width} is not a multiple of heads = "
                                  f"{config['heads']}; use heads = 1 or a budget giving a multiple")
        return tiers

    def initial_model(self, split: Split) -> tuple[ItemEmbedding, dict[str, torch.Tensor]]:
        torch.manual_seed(self.run.seed)
        model = sasrec_with_items(self.model_config(self.run.max_dim), self.global_spec())
        if self.config["teacher"]:
            teacher = load_teacher(Path(self.config["teacher"]), split)
            table = teacher.items.table().detach()
            copy_body(model, teacher)
            items_from_teacher(model.items, table, split, self.config, self.log)
            self.teacher_table = table.numpy().astype(np.float32)
        else:
            model.items.randomise_static(torch.Generator().manual_seed(self.run.seed))
        shared = {ITEMS + k: t.detach().clone() for k, t in model.items.shared_tensors().items()}
        return model.items, shared | {k: v.detach().clone() for k, v in body_views(model).items()}

    def layout(self, tier: Tier) -> dict[str, Holding]:
        with torch.device("meta"):  # shapes only
            device = sasrec_with_items(self.model_config(tier.width), tier.spec)
        return super().layout(tier) | body_layout(device)

    def wants_help(self, user: int) -> bool:
        return self.teacher_table is not None and user not in self._help

    def private(self, user: int, tier: Tier, purpose: str) -> Arrays:
        """The teacher's rows of the items the device asked for (training only)."""
        if self.teacher_table is None or purpose != "train" or user not in self._help:
            return {}
        ids = self._help[user]
        return {"teacher_ids": ids, "teacher_rows": np.ascontiguousarray(self.teacher_table[ids, :tier.width])}
