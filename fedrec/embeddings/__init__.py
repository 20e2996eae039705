"""Item representations behind one interface; `build` and `load` pick the method by name."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fedrec.embeddings import artifact
from fedrec.embeddings.base import EmbeddingSpec, ItemEmbedding
from fedrec.embeddings.blend import TeacherBlend, blend_spec
from fedrec.embeddings.codes import CodesEmbedding
from fedrec.embeddings.full import FullEmbedding
from fedrec.embeddings.tt import STPTTEmbedding, TTEmbedding
from fedrec.errors import ConfigError

METHODS: dict[str, type[ItemEmbedding]] = {
    m.method: m for m in (FullEmbedding, CodesEmbedding, TTEmbedding, STPTTEmbedding, TeacherBlend)}


def method_class(name: str) -> type[ItemEmbedding]:
    if name not in METHODS:
        raise ConfigError(f"unknown embedding method {name!r}; expected one of {sorted(METHODS)}")
    return METHODS[name]


def build(spec: EmbeddingSpec, **init: Any) -> ItemEmbedding:
    return method_class(spec.method)(spec, **init)


def load(path: str | Path) -> ItemEmbedding:
    """Rebuild a representation from its exported artifact."""
    spec_dict, tensors, _ = artifact.read(Path(path))
    module = build(EmbeddingSpec(**spec_dict))
    module.load_payload(tensors)
    return module


__all__ = [
    "EmbeddingSpec",
    "ItemEmbedding",
    "FullEmbedding",
    "CodesEmbedding",
    "TTEmbedding",
    "STPTTEmbedding",
    "TeacherBlend",
    "blend_spec",
    "METHODS",
    "build",
    "load",
    "method_class",
]
