"""Federated MF: the item representation is shared, each user's vector stays private on its device (MF's body,
`bodies.mf`: no shared tensors; its seed-drawn start travels in every task).

The full table starts at N(0, init_std) from the seed and is exchanged row-sparse (a device sends the rows it
touched); its devices train nested widths (every narrower tier width they contain). Other representations start
from their own init with random static arrays (codes) and train their own sub-configurations on the device.
"""
from __future__ import annotations

from typing import Any

import torch

from fedrec.data.dataset import Split
from fedrec.embeddings import ItemEmbedding, build
from fedrec.federation.bodies.mf import initial_user_vector
from fedrec.federation.messages import USER_INIT, Arrays
from fedrec.federation.method import ITEMS, FederatedMethod, Tier


class FederatedMF(FederatedMethod):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.run.method == "full":
            self.sparse = frozenset({ITEMS + "weight"})

    def initial_model(self, split: Split) -> tuple[ItemEmbedding, dict[str, torch.Tensor]]:
        spec = self.global_spec()
        generator = torch.Generator().manual_seed(self.run.seed)
        if spec.method == "full":  # the table itself, drawn from the seed's generator
            items = build(spec)
            with torch.no_grad():
                items.weight.copy_(torch.randn(spec.n_items, spec.dim, generator=generator) * self.run.init_std)
        else:
            torch.manual_seed(self.run.seed)
            items = build(spec, init_std=self.run.init_std)
            items.randomise_static(generator)
        return items, {ITEMS + k: t.detach().clone() for k, t in items.shared_tensors().items()}

    def settings(self, tier: Tier) -> dict[str, Any]:
        widths = sorted({t.width for t in self.tiers if t.width <= tier.width})
        return super().settings(tier) | ({"widths": widths} if tier.spec.method == "full" else {})

    def private(self, user: int, tier: Tier, purpose: str) -> Arrays:
        return {USER_INIT: initial_user_vector(self.run, user, tier.width)}
