"""Compositional codes (EODRec, docs/PAPERS.md §7.3): item v = sum of one codeword from each of M codebooks.

The device stores the codes (N x M ids, packed at ceil(log2 K) bits each) and the codebooks (M x K x d floats).
Codebooks are ordered coarse -> fine and trained with random prefix lengths, so the first m codebooks are a usable
model on their own: a small device holds a prefix of the codebooks (and of their columns).
Scores factor over codebooks, <q, e_v> = sum_m (q A_m^T)[c_v^m], so `score_all` computes M x K dot products and
gathers them with one fused gather-and-sum (embedding_bag), never building the N x d table.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedrec.embeddings.base import FLOAT_BYTES, EmbeddingSpec, ItemEmbedding, init_tensor
from fedrec.errors import BudgetError, ConfigError


def code_bits(codewords: int) -> int:
    return max(1, math.ceil(math.log2(codewords)))


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Codes (any shape, values < 2**bits) as a big-endian bit stream of `bits` bits each, in bytes."""
    flat = codes.astype(np.int64).ravel()
    stream = (flat[:, None] >> np.arange(bits - 1, -1, -1)) & 1
    return np.packbits(stream.astype(np.uint8).ravel())


def unpack_codes(packed: np.ndarray, count: int, bits: int) -> np.ndarray:
    stream = np.unpackbits(packed, count=count * bits).reshape(count, bits).astype(np.int64)
    return stream @ (1 << np.arange(bits - 1, -1, -1))


def codes_bytes(n_items: int, codebooks: int, codewords: int, dim: int) -> int:
    """Exact stored bytes: packed codes plus float32 codebooks."""
    return math.ceil(n_items * codebooks * code_bits(codewords) / 8) + codebooks * codewords * dim * FLOAT_BYTES


class CodesEmbedding(ItemEmbedding):
    method = "codes"

    def __init__(self, spec: EmbeddingSpec, init_range: float | None = None, init_std: float | None = None):
        super().__init__(spec)
        self.n_codebooks, self.n_codewords = _shape(spec)
        self.codebooks = nn.Parameter(torch.empty(self.n_codebooks, self.n_codewords, spec.dim))
        init_tensor(self.codebooks, init_range, init_std, default_range=0.1)
        self.register_buffer("codes", torch.zeros(spec.n_items, self.n_codebooks, dtype=torch.int64))
        self.active = self.n_codebooks  # codebooks in use: training samples prefixes, devices hold a prefix

    def set_codes(self, codes: torch.Tensor) -> None:
        """Fix the items' codes [N, >= M] (learned once from a teacher table, then frozen)."""
        codes = torch.as_tensor(codes, dtype=torch.int64)
        if codes.shape[0] != self.n_items or codes.shape[1] < self.n_codebooks:
            raise ConfigError(f"codes of shape {tuple(codes.shape)}; expected ({self.n_items}, >= {self.n_codebooks})")
        if codes.min() < 0 or codes.max() >= self.n_codewords:
            raise ConfigError(f"codes must lie in [0, {self.n_codewords}); got [{codes.min()}, {codes.max()}]")
        self.codes.copy_(codes[:, :self.n_codebooks])

    def sub_configurations(self) -> list[int]:
        """Every shorter codebook prefix (the codebooks are ordered coarse -> fine)."""
        return list(range(1, self.n_codebooks))

    @contextmanager
    def configured(self, sub: int) -> Iterator[None]:
        self.use_prefix(sub)
        try:
            yield
        finally:
            self.use_prefix(self.n_codebooks)

    def static_arrays(self, device: EmbeddingSpec) -> dict[str, np.ndarray]:
        """The codes of the device's codebook prefix (uint8 when K <= 256)."""
        m = _shape(device)[0]
        return {"codes": np.ascontiguousarray(self.codes[:, :m].numpy().astype(_code_dtype(self.n_codewords)))}

    def static_bytes(self, device: EmbeddingSpec) -> int:
        """The codes at their packed size (ceil(log2 K) bits each)."""
        return math.ceil(self.n_items * _shape(device)[0] * code_bits(self.n_codewords) / 8)

    def load_static(self, arrays: dict[str, np.ndarray]) -> None:
        self.set_codes(torch.from_numpy(arrays["codes"].astype(np.int64)))

    def randomise_static(self, generator: torch.Generator) -> None:
        """Every item a uniformly random code (a hashing baseline)."""
        self.set_codes(torch.randint(self.n_codewords, self.codes.shape, generator=generator))

    def use_prefix(self, codebooks: int) -> None:
        if not 1 <= codebooks <= self.n_codebooks:
            raise ValueError(f"codebook prefix {codebooks} outside 1..{self.n_codebooks}")
        self.active = codebooks

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        return self._sum_of_codewords(self.codes[ids.reshape(-1)]).reshape(*ids.shape, self.dim)

    def table(self) -> torch.Tensor:
        return self._sum_of_codewords(self.codes)

    def _sum_of_codewords(self, codes: torch.Tensor) -> torch.Tensor:
        """Rows sum_m A_m[codes[:, m]] over the active prefix. Row gathers (index_select, whose gradient is an
        index_add) run 3-4x faster on a CPU than one advanced-indexing gather of all M codewords."""
        rows = self.codebooks[0].index_select(0, codes[:, 0])
        for m in range(1, self.active):
            rows = rows + self.codebooks[m].index_select(0, codes[:, m])
        return rows

    def score_all(self, query: torch.Tensor) -> torch.Tensor:
        m = self.active
        per_codeword = self.codebooks[:m].reshape(m * self.n_codewords, self.dim) @ query.T  # [m*K, B]
        rows = self.codes[:, :m] + torch.arange(m) * self.n_codewords                     # [N, m] into m*K rows
        return F.embedding_bag(rows, per_codeword, mode="sum").T                           # fused gather-and-sum

    def payload(self) -> dict[str, torch.Tensor]:
        packed = pack_codes(self.codes.numpy(), code_bits(self.n_codewords))
        return {"codes": torch.from_numpy(packed), "codebooks": self.codebooks.detach()}

    def load_payload(self, tensors: dict[str, torch.Tensor]) -> None:
        count = self.n_items * self.n_codebooks
        codes = unpack_codes(tensors["codes"].numpy(), count, code_bits(self.n_codewords))
        self.set_codes(torch.from_numpy(codes.reshape(self.n_items, self.n_codebooks)))
        with torch.no_grad():
            self.codebooks.copy_(tensors["codebooks"])

    @classmethod
    def for_budget(cls, budget_bytes: int, n_items: int, max_dim: int, **options: Any) -> EmbeddingSpec:
        """The (codebook prefix m, width d) holding the most codebook parameters m*d; ties go to more codebooks."""
        codebooks, codewords = int(options.get("codebooks", 3)), int(options.get("codewords", 256))
        best: tuple[int, int] | None = None
        for m in range(1, codebooks + 1):
            spare = budget_bytes - math.ceil(n_items * m * code_bits(codewords) / 8)
            d = min(max_dim, spare // (m * codewords * FLOAT_BYTES)) if spare > 0 else 0
            if d >= 1 and (best is None or m * d >= best[0] * best[1]):
                best = (m, d)
        if best is None:
            minimum = codes_bytes(n_items, 1, codewords, 1)
            raise BudgetError(f"budget {budget_bytes} B holds no codes embedding of {n_items} items with K = "
                              f"{codewords}; the minimum (1 codebook, width 1) is {minimum} B", minimum)
        return EmbeddingSpec(cls.method, n_items, best[1], {"codebooks": best[0], "codewords": codewords})


def _code_dtype(codewords: int) -> type:
    return np.uint8 if codewords <= 256 else np.int32


def _shape(spec: EmbeddingSpec) -> tuple[int, int]:
    codebooks, codewords = int(spec.options.get("codebooks", 3)), int(spec.options.get("codewords", 256))
    if codebooks < 1 or codewords < 2:
        raise ConfigError(f"codes embedding needs codebooks >= 1 and codewords >= 2; got {codebooks}, {codewords}")
    return codebooks, codewords
