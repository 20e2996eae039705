"""The SASRec device program for any item representation: SASRec on the user's own sequences (every prefix ->
next item pair), Adam from scratch each round.

The loss is the cross-entropy of the device's full configuration, plus `prefix_weight` x the mean over the item
representation's sub-configurations (codes: shorter codebook prefixes) of their cross-entropy and the KL from the
full configuration's detached softmax: the device's largest configuration teaches its smaller ones. With a teacher
the device asks the server for the teacher's rows of its own items (a help request: the server learns the item set,
written down in BENCHMARKS.md) and `mse_weight` pulls its item embeddings of each batch towards them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fedrec.configs import Config
from fedrec.device.data import DeviceData
from fedrec.device.programs import DeviceUpdate
from fedrec.device.state import DeviceStates
from fedrec.embeddings import EmbeddingSpec
from fedrec.federation.bodies.sasrec import body_views, load_body
from fedrec.federation.messages import Arrays, EvalTask, TrainTask
from fedrec.models import sasrec_with_items
from fedrec.models.sasrec import PrefixPairs, SASRec
from fedrec.ranking import metric_sums
from fedrec.train.kd import cross_entropy_and_kd

PREFIX = "items."


def build_device_model(config: Config, spec: EmbeddingSpec) -> SASRec:
    """A SASRec over `spec` with the body at the items' width (parameters are overwritten from the blocks)."""
    return sasrec_with_items(config | {"inner": spec.dim}, spec)


def trained(model: SASRec) -> dict[str, torch.Tensor]:
    """Every shared tensor of a device model by its federated name."""
    return {PREFIX + k: t for k, t in model.items.shared_tensors().items()} | body_views(model)


def load_blocks(model: SASRec, shared: Arrays, static: Arrays) -> None:
    model.items.load_static(static)
    model.items.load_shared({k.removeprefix(PREFIX): v for k, v in shared.items() if k.startswith(PREFIX)})
    load_body(model, {k: v for k, v in shared.items() if not k.startswith(PREFIX)})


def local_loss(model: SASRec, batch: tuple[torch.Tensor, ...], config: Config,
               teacher: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """CE of the full configuration + sub-configuration self-distillation + (with a teacher) MSE to its rows."""
    ids, mask, targets = batch
    items = model.items
    logits = model.scores(model.encode(ids, mask))
    loss = F.cross_entropy(logits, targets)
    subs = items.sub_configurations()
    if subs and config["prefix_weight"]:
        shorter = []
        for sub in subs:
            with items.configured(sub):
                small = model.scores(model.encode(ids, mask))
            ce, kl = cross_entropy_and_kd(small, logits, targets)
            shorter.append(ce + kl / len(targets))  # KL per example, as the CE
        loss = loss + config["prefix_weight"] * torch.stack(shorter).mean()
    if teacher is not None and config["mse_weight"]:
        teacher_ids, teacher_rows = teacher
        batch_items = torch.unique(torch.cat([ids[mask], targets]))
        rows = teacher_rows[torch.searchsorted(teacher_ids, batch_items)]
        loss = loss + config["mse_weight"] * F.mse_loss(items.lookup(batch_items), rows)
    return loss


class SASRecProgram:
    def __init__(self, device) -> None:
        self.run, self.config = device.run, device.config

    def _model(self, task: TrainTask | EvalTask) -> SASRec:
        model = build_device_model(self.config, EmbeddingSpec(**task.settings["items"]))
        load_blocks(model, task.shared, task.static)
        return model

    def train(self, task: TrainTask, data: DeviceData, states: DeviceStates, round_: int) -> DeviceUpdate:
        """E local epochs over the user's own prefix -> next-item pairs; deltas of every held block."""
        run, config = self.run, self.config
        model = self._model(task)
        before = {name: t.detach().clone() for name, t in trained(model).items()}
        rng = np.random.default_rng([run.seed, round_, task.user])
        torch.manual_seed(int(rng.integers(2**62)))  # dropout draws, reproducible per (seed, round, user)
        teacher = None
        if "teacher_ids" in task.private:
            teacher = (torch.from_numpy(task.private["teacher_ids"]), torch.from_numpy(task.private["teacher_rows"]))
        pairs = PrefixPairs(data.train, config["max_len"])
        optimizer = torch.optim.Adam(model.parameters(), lr=run.lr)
        model.train()
        losses = []
        for _ in range(run.local_epochs):
            for rows in pairs.bucketed_batches(config["batch_size"], rng):
                optimizer.zero_grad(set_to_none=True)
                loss = local_loss(model, pairs.batch(rows), config, teacher)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        deltas = {name: (t.detach() - before[name]).numpy().astype(np.float32) for name, t in trained(model).items()}
        return DeviceUpdate(deltas, {}, len(pairs), float(np.mean(losses)) if losses else float("nan"))

    def evaluate(self, task: EvalTask, data: DeviceData, states: DeviceStates, round_: int) -> dict[str, float]:
        """Metric sums of this user's examples, every item ranked by the device's own model."""
        model = self._model(task)
        model.eval()
        examples = data.examples(task.split)
        with torch.no_grad():
            scores = model.score(examples)
        return metric_sums(scores.numpy(), examples.targets, examples.exclude) | {"examples": float(len(examples))}

    def help_request(self, data: DeviceData) -> np.ndarray | None:
        """With a teacher, the device's own items (whose teacher rows it wants); otherwise nothing."""
        if not self.config.get("teacher"):
            return None
        return np.unique(np.concatenate(data.train)).astype(np.int64)
