"""Backbones by name; each builds its item table through the embedding interface."""
from __future__ import annotations

from fedrec.configs import Config
from fedrec.data.dataset import Split
from fedrec.embeddings import EmbeddingSpec, build
from fedrec.errors import ConfigError
from fedrec.models.base import Recommender
from fedrec.models.mf import MF
from fedrec.models.popularity import Popularity
from fedrec.models.sasrec import SASRec

MODELS = ("mf", "pop", "sasrec")


def build_model(name: str, split: Split, config: Config) -> Recommender:
    """A fresh backbone for `split`, sized by `config` (torch's RNG must be seeded by the caller)."""
    spec = EmbeddingSpec("full", split.n_items, int(config["dim"]))
    if name == "mf":
        return MF(build(spec, init_std=config["init_std"]), split.n_users, l2=config["l2"], init_std=config["init_std"])
    if name == "sasrec":
        return SASRec(build(spec, init_range=config["init_range"]), max_len=config["max_len"],
                      layers=config["layers"], heads=config["heads"], inner=config["inner"],
                      dropout=config["dropout"], init_range=config["init_range"],
                      score_scale=config["score_scale"])
    if name == "pop":
        return Popularity(build(spec), split.item_popularity())
    raise ConfigError(f"unknown model {name!r}; expected one of {list(MODELS)}")


__all__ = ["MODELS", "Recommender", "build_model", "MF", "SASRec", "Popularity"]
