"""Federated SASRec with compositional-code item embeddings (EODRec on devices of different sizes).

Server side (`FederatedCodes`): M codebooks [M, K, D] and the SASRec body at width D are shared; the items' codes are
fixed before round 1. With a teacher (the server's full model) the body starts from the teacher's and the codes and
codebooks are learned from its table; without one every item gets a random code and the body starts at random. A device's
budget picks the codebook prefix m and width w it holds (`CodesEmbedding.for_budget`, the most m*w): it gets
codebooks[:m, :, :w] and the body cut to width w (every weight's leading w rows/columns, attention's q/k/v blocks
each cut alike, as in HeteroFL), and the codes of its m codebooks once (the ledger counts their packed bytes on first
contact; the simulation resends them because simulated devices keep no files).

Client side (`train_device`, `evaluate_device`): SASRec on the user's own sequence, every prefix -> next item pair,
Adam from scratch each round. The loss is the cross-entropy at the device's full prefix, plus `prefix_weight` x the
mean over shorter prefixes j < m of their cross-entropy and the KL from the full prefix's (detached) softmax (the
device's largest configuration teaches its smaller ones). With a teacher, the server sends the teacher's rows of the
user's items and `mse_weight` pulls the device's item embeddings of each batch towards them (the teacher signal
restricted to the batch's items). The item memory budget counts the codes and codebooks (the exported artifact);
the body (attention, positions, readout) is the same for every method and is not part of it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fedrec.configs import Config
from fedrec.data.dataset import EvalSet, Split
from fedrec.embeddings import CodesEmbedding
from fedrec.embeddings.codes import code_bits
from fedrec.errors import ConfigError
from fedrec.experiment.scenario import Scenario
from fedrec.federation.device_state import DeviceStates
from fedrec.federation.shared_model import Arrays, DeviceTask, DeviceUpdate, SharedModel, Tier
from fedrec.metrics import batch_metrics
from fedrec.models import codes_from_teacher, copy_body, load_teacher, sasrec_from_config
from fedrec.models.sasrec import SASRec, PrefixPairs
from fedrec.train.kd import cross_entropy_and_kd

PACKED_PROJECTIONS = ("in_proj_weight", "in_proj_bias")  # q, k and v stacked: cut each block, not the stack


def device_config(scenario: Scenario) -> Config:
    """The model config with the scenario's widest width; the feed-forward is as wide as the model at every width."""
    if scenario.run.method != "codes":
        raise ConfigError(f"model = 'sasrec' is federated with method = 'codes', got method = {scenario.run.method!r}")
    return scenario.model_config() | {"dim": scenario.run.max_dim, "embedding": "codes"}


def tiers_for(scenario: Scenario, n_items: int) -> list[Tier]:
    """Each profile's (codebook prefix, width): the most codebook parameters within its budget."""
    config = device_config(scenario)
    tiers = []
    for i, profile in enumerate(scenario.devices.profiles):
        spec = CodesEmbedding.for_budget(int(profile.budget_bytes), n_items, scenario.run.max_dim,
                                         codebooks=config["codebooks"], codewords=config["codewords"])
        if spec.dim % config["heads"]:
            raise ConfigError(f"device {profile.name!r}: width {spec.dim} is not a multiple of heads = "
                              f"{config['heads']}; use heads = 1 or a budget giving a multiple")
        tiers.append(Tier(i, profile, spec))
    return tiers


def build_device_model(n_items: int, config: Config, codebooks: int, width: int) -> SASRec:
    """A SASRec with `codebooks` codebooks at `width` (its parameters are overwritten from the shared slices)."""
    return sasrec_from_config(config | {"dim": width, "inner": width, "codebooks": codebooks}, n_items)


def body_views(model: SASRec) -> dict[str, torch.Tensor]:
    """The body's parameters shaped so that a narrower model's are leading slices (q/k/v as a [3, ...] axis)."""
    views = {}
    for name, param in model.named_parameters():
        if name.startswith("items."):
            continue
        views[name] = param.reshape(3, -1, *param.shape[1:]) if name.endswith(PACKED_PROJECTIONS) else param
    return views


def _load(model: SASRec, shared: Arrays) -> None:
    with torch.no_grad():
        model.items.codebooks.copy_(torch.from_numpy(shared["codebooks"]))
        for name, view in body_views(model).items():
            view.copy_(torch.from_numpy(shared[name]))


class FederatedCodes(SharedModel):
    def __init__(self, split: Split, scenario: Scenario, log: Callable[[str], None] = print):
        config = device_config(scenario)
        tiers = tiers_for(scenario, split.n_items)
        torch.manual_seed(scenario.run.seed)
        model = build_device_model(split.n_items, config, config["codebooks"], scenario.run.max_dim)
        self.teacher_table = None
        if config["teacher"]:
            self.teacher_table = self._from_teacher(model, Path(config["teacher"]), split, config, log)
        else:  # no teacher: each item a uniformly random code (a hashing baseline), fixed by the seed
            generator = torch.Generator().manual_seed(scenario.run.seed)
            model.items.set_codes(torch.randint(config["codewords"], model.items.codes.shape, generator=generator))
        self.codes = model.items.codes.numpy().astype(np.uint8 if config["codewords"] <= 256 else np.int32)
        shared = {"codebooks": model.items.codebooks.detach().clone()}
        shared |= {name: view.detach().clone() for name, view in body_views(model).items()}
        super().__init__(split, scenario, shared, tiers)
        self.config = config
        self._body_shapes = {tier.index: self._device_shapes(tier) for tier in tiers}
        self._has_codes: set[int] = set()

    @staticmethod
    def _from_teacher(model: SASRec, path: Path, split: Split, config: Config,
                      log: Callable[[str], None]) -> np.ndarray:
        """Start from the teacher (on the server, before round 1): its body, and codes and codebooks learned from its
        table; returns the table (the rows devices are pulled towards)."""
        teacher = load_teacher(path, split)
        table = teacher.items.table().detach()
        copy_body(model, teacher)
        codes_from_teacher(model.items, table, split, config, log)
        return table.numpy().astype(np.float32)

    def _device_shapes(self, tier: Tier) -> dict[str, tuple[int, ...]]:
        m, width = tier.spec.options["codebooks"], tier.width
        device = build_device_model(self.split.n_items, self.config, m, width)
        return {"codebooks": tuple(device.items.codebooks.shape)} | {
            name: tuple(view.shape) for name, view in body_views(device).items()}

    def held_shapes(self, tier: Tier) -> dict[str, tuple[int, ...]]:
        return self._body_shapes[tier.index]

    def task_for(self, user: int, purpose: str) -> DeviceTask:
        tier = self.tier_of(user)
        m = tier.spec.options["codebooks"]
        private: Arrays = {}
        if self.teacher_table is not None and purpose == "train":
            ids = np.unique(np.concatenate(self.split.user_sequences(user))).astype(np.int64)
            private = {"teacher_ids": ids, "teacher_rows": np.ascontiguousarray(self.teacher_table[ids, :tier.width])}
        shared = self.held(tier) | {"codes": np.ascontiguousarray(self.codes[:, :m])}
        return DeviceTask(shared, private, {"codebooks": m, "width": tier.width})

    def download_bytes(self, user: int, task: DeviceTask) -> int:
        """Shared slices and private arrays every round; the codes once per device, at their packed size."""
        moved = sum(a.nbytes for name, a in task.shared.items() if name != "codes")
        moved += sum(a.nbytes for a in task.private.values())
        if user not in self._has_codes:
            self._has_codes.add(user)
            moved += math.ceil(task.shared["codes"].size * code_bits(self.config["codewords"]) / 8)
        return moved

    def state(self) -> Arrays:
        return super().state() | {"has_codes": np.array(sorted(self._has_codes), dtype=np.int64)}

    def load_state(self, arrays: Arrays) -> None:
        super().load_state(arrays)
        self._has_codes = {int(u) for u in arrays["has_codes"]}

    def device_items(self, tier: Tier) -> CodesEmbedding:
        m, width = tier.spec.options["codebooks"], tier.width
        items = CodesEmbedding(tier.spec)
        items.set_codes(torch.from_numpy(self.codes[:, :m].astype(np.int64)))
        with torch.no_grad():
            items.codebooks.copy_(self.shared["codebooks"][:m, :, :width])
        return items


def _device(split: Split, scenario: Scenario, task: DeviceTask) -> tuple[SASRec, Config]:
    config = device_config(scenario)
    model = build_device_model(split.n_items, config, task.settings["codebooks"], task.settings["width"])
    model.items.set_codes(torch.from_numpy(task.shared["codes"].astype(np.int64)))
    _load(model, task.shared)
    return model, config


def local_loss(model: SASRec, batch: tuple[torch.Tensor, ...], config: Config,
               teacher: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """CE at the device's full prefix + prefix self-distillation + (with a teacher) MSE to its rows of batch items."""
    ids, mask, targets = batch
    items = model.items
    full = items.n_codebooks
    logits = model.scores(model.encode(ids, mask))
    loss = F.cross_entropy(logits, targets)
    if full > 1 and config["prefix_weight"]:
        shorter = []
        try:
            for m in range(1, full):
                items.use_prefix(m)
                small = model.scores(model.encode(ids, mask))
                ce, kl = cross_entropy_and_kd(small, logits, targets)
                shorter.append(ce + kl / len(targets))  # KL per example, as the CE
        finally:
            items.use_prefix(full)
        loss = loss + config["prefix_weight"] * torch.stack(shorter).mean()
    if teacher is not None and config["mse_weight"]:
        teacher_ids, teacher_rows = teacher
        batch_items = torch.unique(torch.cat([ids[mask], targets]))
        rows = teacher_rows[torch.searchsorted(teacher_ids, batch_items)]
        loss = loss + config["mse_weight"] * F.mse_loss(items.lookup(batch_items), rows)
    return loss


def train_device(split: Split, scenario: Scenario, user: int, task: DeviceTask, round_: int,
                 states: DeviceStates) -> DeviceUpdate:
    """E local epochs over the user's own prefix -> next-item pairs; deltas of every held slice."""
    run = scenario.run
    model, config = _device(split, scenario, task)
    before = {name: t.detach().clone() for name, t in _trained(model).items()}
    rng = np.random.default_rng([run.seed, round_, user])
    torch.manual_seed(int(rng.integers(2**62)))  # dropout draws, reproducible per (seed, round, user)
    teacher = None
    if "teacher_ids" in task.private:
        teacher = (torch.from_numpy(task.private["teacher_ids"]), torch.from_numpy(task.private["teacher_rows"]))
    pairs = PrefixPairs(split.user_sequences(user), config["max_len"])
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
    deltas = {name: (t.detach() - before[name]).numpy().astype(np.float32) for name, t in _trained(model).items()}
    return DeviceUpdate(deltas, {}, len(pairs), float(np.mean(losses)) if losses else float("nan"))


def _trained(model: SASRec) -> dict[str, torch.Tensor]:
    return {"codebooks": model.items.codebooks} | body_views(model)


def evaluate_device(split: Split, scenario: Scenario, user: int, task: DeviceTask, data: EvalSet, round_: int,
                    states: DeviceStates) -> dict[str, float]:
    """Metric sums of this user's examples in `data`, every item ranked by the device's own model."""
    rows = np.flatnonzero(data.users == user)
    if not len(rows):
        return {}
    model, _ = _device(split, scenario, task)
    model.eval()
    examples = data.subset(rows)
    with torch.no_grad():
        scores = model.score(examples)
    return batch_metrics(scores, examples.targets, examples.exclude) | {"examples": float(len(rows))}

