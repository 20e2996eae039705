"""Backbones by name; each builds its item table through the embedding interface."""
from __future__ import annotations

from fedrec.configs import Config
from fedrec.data.dataset import Split
from fedrec.embeddings import EmbeddingSpec, blend_spec, build
from fedrec.errors import ConfigError
from fedrec.models.base import Recommender
from fedrec.models.mf import MF
from fedrec.models.popularity import Popularity
from fedrec.models.sasrec import SASRec

MODELS = ("mf", "pop", "sasrec")


def item_spec(config: Config, n_items: int) -> EmbeddingSpec:
    """The item representation a config asks for (`embedding` and its size keys; `full` when absent), blended with
    the teacher's table when `teacher_mix` < 1."""
    method = config.get("embedding", "full")
    if method == "blend":
        raise ConfigError("embedding = 'blend' is set through teacher_mix: give the compact method (e.g. codes) and "
                          "--set teacher_mix=0.2")
    options = {"codes": lambda: {"codebooks": config["codebooks"], "codewords": config["codewords"]},
               "tt": lambda: {"rank": config["tt_rank"]},
               "stp_tt": lambda: {"rank": config["stp_rank"]}}.get(method, dict)()
    spec = EmbeddingSpec(method, n_items, int(config["dim"]), options)
    eta = float(config.get("teacher_mix", 1.0))
    if eta == 1.0:
        return spec
    if not config.get("teacher"):
        raise ConfigError(f"teacher_mix = {eta} mixes in a teacher's table: give --teacher RUN_DIR")
    return blend_spec(spec, eta)


def build_backbone(name: str, split: Split, config: Config) -> Recommender:
    """A fresh backbone for `split`, sized by `config`, without a teacher (torch's RNG must be seeded by the
    caller); `fedrec.train.teacher.build_model` adds distillation when the config names one."""
    spec = item_spec(config, split.n_items)
    if name == "mf":
        return MF(build(spec, init_std=config["init_std"]), split.n_users, l2=config["l2"], init_std=config["init_std"])
    if name == "sasrec":
        return sasrec_from_config(config, split.n_items)
    if name == "pop":
        return Popularity(build(spec), split.item_popularity())
    raise ConfigError(f"unknown model {name!r}; expected one of {list(MODELS)}")


def sasrec_from_config(config: Config, n_items: int) -> SASRec:
    """A freshly initialised SASRec over `n_items` items with the item representation `config` asks for."""
    return sasrec_with_items(config, item_spec(config, n_items))


def sasrec_with_items(config: Config, spec: EmbeddingSpec) -> SASRec:
    """A freshly initialised SASRec whose item representation is `spec` (its body as wide as the items)."""
    if spec.dim % config["heads"]:
        raise ConfigError(f"width {spec.dim} is not a multiple of heads = {config['heads']}; use heads = 1 or a "
                          f"width that is")
    items = build(spec, init_range=config["init_range"])
    return SASRec(items, max_len=config["max_len"], layers=config["layers"], heads=config["heads"],
                  inner=config["inner"], dropout=config["dropout"], init_range=config["init_range"],
                  score_scale=config["score_scale"], reverse_positions=config["reverse_positions"])


__all__ = [
    "MODELS",
    "Recommender",
    "build_backbone",
    "item_spec",
    "sasrec_from_config",
    "sasrec_with_items",
    "MF",
    "SASRec",
    "Popularity",
]
