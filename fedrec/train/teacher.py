"""Models that start from a teacher: loading a saved SASRec, copying its body, fixing codes from its item table, and
the distilling wrapper the centralised trainer trains (`build_model`).

Kept in `train` because distillation is training: `models` holds the backbones and knows nothing of it.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from fedrec.configs import Config, resolve
from fedrec.data.dataset import Split
from fedrec.embeddings import CodesEmbedding, FullEmbedding, ItemEmbedding, TeacherBlend
from fedrec.errors import ConfigError
from fedrec.models import Recommender, SASRec, build_backbone, item_spec, sasrec_from_config
from fedrec.train.code_learning import cooccurrence_signal, learn_codes, random_codes
from fedrec.train.kd import Distiller


def build_model(name: str, split: Split, config: Config, log: Callable[[str], None] = print) -> Recommender:
    """A fresh backbone for `split`, sized by `config`; a SASRec with a `teacher` is wrapped to distil from it
    (torch's RNG must be seeded by the caller)."""
    if name != "sasrec" or not config["teacher"]:
        if name == "sasrec" and item_spec(config, split.n_items).method == "codes":
            raise ConfigError("embedding = 'codes' learns its codes from a teacher: give --set teacher=RUN_DIR "
                              "(a run directory of `fedrec train --model sasrec` with the full table)")
        return build_backbone(name, split, config)
    return distil(sasrec_from_config(config, split.n_items), load_teacher(Path(config["teacher"]), split), split,
                  config, log)


def items_from_teacher(items: ItemEmbedding, table: torch.Tensor, split: Split, config: Config,
                       log: Callable[[str], None]) -> None:
    """Start a representation from a teacher's item table: a full table copies it (width permitting), codes are
    learned from it; other methods keep their own start."""
    if isinstance(items, CodesEmbedding):
        codes_from_teacher(items, table, split, config, log)
    elif isinstance(items, FullEmbedding):
        with torch.no_grad():
            items.weight.copy_(table[:, :items.dim])


def load_sasrec(run_dir: Path, split: Split) -> SASRec:
    """The SASRec saved by `fedrec train --model sasrec` in `run_dir`: the model itself or, for a distilled run, its
    student (what was deployed)."""
    summary, weights = run_dir / "summary.json", run_dir / "model.pt"
    for path in (summary, weights):
        if not path.exists():
            raise ConfigError(f"{path} not found; expected a run directory written by `fedrec train --model sasrec`")
    saved = json.loads(summary.read_text())
    if saved.get("model") != "sasrec":
        raise ConfigError(f"{run_dir} is a {saved.get('model')!r} run, not a SASRec one")
    if saved["item_embedding"]["n_items"] != split.n_items:
        raise ConfigError(f"{run_dir} has {saved['item_embedding']['n_items']} items; this dataset has {split.n_items}")
    config = resolve("sasrec", split.name) | saved["config"]  # keys added since the run take defaults
    model = sasrec_from_config(config, split.n_items)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if any(key.startswith("student.") for key in state):
        state = {key.removeprefix("student."): v for key, v in state.items() if key.startswith("student.")}
    model.load_state_dict(state)
    return model


def load_teacher(run_dir: Path, split: Split) -> SASRec:
    """A full-table SASRec run, to teach a compact student."""
    summary = run_dir / "summary.json"
    if summary.exists() and json.loads(summary.read_text()).get("item_embedding", {}).get("method") != "full":
        raise ConfigError(f"teacher: {run_dir} is not a full-table SASRec run")
    return load_sasrec(run_dir, split)


def copy_body(student: SASRec, teacher: SASRec) -> None:
    """Every parameter but the item table, from `teacher` into `student` (same architecture and width)."""
    body = {k: v for k, v in teacher.state_dict().items() if not k.startswith("items.")}
    own = {k: tuple(v.shape) for k, v in student.state_dict().items() if not k.startswith("items.")}
    if own != {k: tuple(v.shape) for k, v in body.items()}:
        raise ConfigError(f"teacher has another architecture or width ({teacher.items.dim}) than the student "
                          f"({student.items.dim}): give the student the teacher's dim, inner, layers and heads")
    if student.score_scale != teacher.score_scale:  # a body trained for one scoring would be scored another way
        raise ConfigError(f"teacher scores with score_scale = {teacher.score_scale}, the student with "
                          f"{student.score_scale}: give the student --set score_scale={teacher.score_scale}")
    student.load_state_dict(body, strict=False)


def cluster_signal(split: Split, table: torch.Tensor, config: Config, seed: int) -> torch.Tensor:
    """What the clustered leading codebooks of random codes group items by (`cluster_signal`)."""
    if config["cluster_signal"] == "teacher":
        return table
    if config["cluster_signal"] == "cooccurrence":
        return cooccurrence_signal(split.train_sequences, split.n_items, seed=seed)
    raise ConfigError(f"cluster_signal = {config['cluster_signal']!r}; expected 'teacher' or 'cooccurrence'")


def codes_from_teacher(items: CodesEmbedding, table: torch.Tensor, split: Split, config: Config,
                       log: Callable[[str], None]) -> None:
    """Fix `items`' codes, and start its codebooks, from codes learned on a teacher's item table."""
    seed = int(torch.randint(2**31, ()).item())
    if config["code_assignment"] == "random":
        signal = cluster_signal(split, table.detach(), config, seed) if config["clustered_codebooks"] else None
        learned = random_codes(table.detach(), items.n_codebooks, items.n_codewords, seed=seed,
                               clustered=config["clustered_codebooks"], signal=signal)
    elif config["code_assignment"] == "learned":
        learned = learn_codes(table.detach(), items.n_codebooks, items.n_codewords, epochs=config["code_epochs"],
                              seed=seed, unique=config["unique_codes"], log=log)
    else:
        raise ConfigError(f"code_assignment = {config['code_assignment']!r}; expected 'learned' or 'random'")
    items.set_codes(learned.codes)
    with torch.no_grad():
        items.codebooks.copy_(learned.codebooks)


def distil(student: SASRec, teacher: SASRec, split: Split, config: Config, log: Callable[[str], None]) -> Recommender:
    if teacher.items.dim != student.items.dim:
        raise ConfigError(f"teacher width {teacher.items.dim} differs from the student's dim {student.items.dim}")
    own, table = student.items, teacher.items.table()
    if isinstance(own, TeacherBlend):
        own.set_teacher(table)
        own = own.inner
    if isinstance(own, CodesEmbedding):
        codes_from_teacher(own, table, split, config, log)
    if config["body_from_teacher"]:
        copy_body(student, teacher)
    return Distiller(student, teacher, split.item_popularity(), kd_weight=config["kd_weight"],
                     cl_weight=config["cl_weight"], mse_weight=config["mse_weight"],
                     hot_fraction=config["hot_fraction"], temperature=config["cl_temperature"],
                     prefix_weight=config["prefix_weight"])
