"""The MF device program for any item representation (codes, TT, ...): BPR with autograd on the device's own
interactions, with the representation's sub-configurations trained alongside (self-distillation by nested losses).

The user vector is private (`fedrec.device.mf`), the item representation's shared tensors come as the device's
blocks of the global ones, and the reply holds the dense delta of every block.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fedrec.device.data import DeviceData
from fedrec.device.mf import user_vector
from fedrec.device.programs import DeviceUpdate
from fedrec.device.state import DeviceStates
from fedrec.embeddings import EmbeddingSpec, ItemEmbedding, build
from fedrec.federation.messages import EvalTask, TrainTask
from fedrec.ranking import metric_sums
from fedrec.train.local import sample_negatives

PREFIX = "items."


def device_items(task: TrainTask | EvalTask) -> ItemEmbedding:
    """The device's item representation, from its task: spec, static arrays (codes) and shared blocks."""
    items = build(EmbeddingSpec(**task.settings["items"]))
    items.load_static(task.static)
    items.load_shared({k.removeprefix(PREFIX): v for k, v in task.shared.items() if k.startswith(PREFIX)})
    return items


def bpr(user: torch.Tensor, items: ItemEmbedding, pos: torch.Tensor, neg: torch.Tensor, l2: float) -> torch.Tensor:
    p, n = items.lookup(pos), items.lookup(neg)
    loss = -F.logsigmoid(p @ user - n @ user).mean()
    return loss + l2 * (user.pow(2).sum() * len(pos) + p.pow(2).sum() + n.pow(2).sum()) / (2 * len(pos))


class MFProgram:
    def __init__(self, device) -> None:
        self.run, self.prefix_weight = device.run, float(device.config.get("prefix_weight", 0.0))

    def train(self, task: TrainTask, data: DeviceData, states: DeviceStates, round_: int) -> DeviceUpdate:
        run = self.run
        items = device_items(task)
        before = {k: t.detach().clone() for k, t in items.shared_tensors().items()}
        rng = np.random.default_rng([run.seed, round_, task.user])
        pos = data.contrastive_positives()
        negatives = sample_negatives(pos, items.n_items, run.local_epochs * len(pos), rng)
        user = torch.from_numpy(user_vector(states, task, round_ - 1).copy()).requires_grad_()
        optimizer = torch.optim.SGD([user, *items.shared_tensors().values()], lr=run.lr)
        positives, loss = torch.from_numpy(pos), torch.zeros(())
        for epoch in range(run.local_epochs):
            negative = torch.from_numpy(negatives[epoch * len(pos):(epoch + 1) * len(pos)])
            optimizer.zero_grad(set_to_none=True)
            loss = bpr(user, items, positives, negative, run.l2)
            subs = items.sub_configurations()
            if subs and self.prefix_weight:
                smaller = []
                for sub in subs:
                    with items.configured(sub):
                        smaller.append(bpr(user, items, positives, negative, run.l2))
                loss = loss + self.prefix_weight * torch.stack(smaller).mean()
            loss.backward()
            optimizer.step()
        states.put(task.user, round_, user.detach().numpy().astype(np.float32))
        deltas = {PREFIX + k: (t.detach() - before[k]).numpy().astype(np.float32)
                  for k, t in items.shared_tensors().items()}
        return DeviceUpdate(deltas, {}, len(pos), float(loss.item()))

    def evaluate(self, task: EvalTask, data: DeviceData, states: DeviceStates, round_: int) -> dict[str, float]:
        items = device_items(task)
        examples = data.examples(task.split)
        vector = torch.from_numpy(user_vector(states, task, round_))
        with torch.no_grad():
            scores = items.score_all(vector[None, :]).expand(len(examples), -1).numpy().copy()
        return metric_sums(scores, examples.targets, examples.exclude) | {"examples": float(len(examples))}

    def help_request(self, data: DeviceData) -> None:
        return None
