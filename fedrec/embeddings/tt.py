"""Tensor-train item tables: TT-Rec (docs/PAPERS.md §8) and OD-Rec's 2-core semi-tensor-product TT (§7.6).

Both store small cores instead of the N x d table and rebuild only the rows asked for; `score_all` needs every row,
so it rebuilds the table once per call (this per-call rebuild is the cost compositional codes avoid).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fedrec.embeddings.base import FLOAT_BYTES, EmbeddingSpec, ItemEmbedding, init_tensor
from fedrec.errors import BudgetError, ConfigError


def balanced_factors(n: int, parts: int) -> list[int]:
    """`parts` near-equal integers whose product is at least n (row counts may be padded)."""
    factors, rest = [], n
    for k in range(parts, 0, -1):
        f = math.ceil(rest ** (1 / k) - 1e-9)
        factors.append(f)
        rest = math.ceil(rest / f)
    return sorted(factors, reverse=True)


def exact_factors(d: int, parts: int) -> list[int]:
    """`parts` integers whose product is exactly d, as equal as divisibility allows (largest first)."""
    factors, rest = [], d
    for k in range(parts, 1, -1):
        target = rest ** (1 / k)
        f = min((c for c in range(1, rest + 1) if rest % c == 0), key=lambda c: (abs(c - target), -c))
        factors.append(f)
        rest //= f
    return sorted(factors + [rest], reverse=True)


def mixed_radix(ids: torch.Tensor, radices: list[int]) -> list[torch.Tensor]:
    """Digits of `ids` over `radices`, most significant first."""
    digits = []
    for radix in reversed(radices):
        digits.append(ids % radix)
        ids = torch.div(ids, radix, rounding_mode="floor")
    return digits[::-1]


def truncated_normal_(tensor: torch.Tensor, scale: float) -> torch.Tensor:
    """Standard normal truncated to |w| < 2, times `scale` (TT-Rec's sampled-Gaussian init, docs/PAPERS.md §8.1)."""
    with torch.no_grad():
        nn.init.trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0)
        return tensor.mul_(scale)


class TTEmbedding(ItemEmbedding):
    """TT-Rec: cores G_k [r_{k-1}, p_k, q_k, r_k]; row i = product of the slices at i's mixed-radix digits."""

    method = "tt"

    def __init__(self, spec: EmbeddingSpec, init_range: float | None = None, init_std: float | None = None):
        super().__init__(spec)
        self.rows, self.cols, self.ranks = tt_shape(spec)
        bounds = [1, *self.ranks, 1]
        self.cores = nn.ParameterList(nn.Parameter(torch.empty(bounds[k], p, q, bounds[k + 1]))
                                      for k, (p, q) in enumerate(zip(self.rows, self.cols)))
        for core in self.cores:
            if init_range is not None:
                nn.init.uniform_(core, -init_range, init_range)
            else:
                truncated_normal_(core, (1 / math.sqrt(3 * spec.n_items)) ** (1 / len(self.cores)))

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        digits = mixed_radix(flat, self.rows)
        out = self.cores[0][0, digits[0]]                                   # [B, q1, r1]
        for core, digit in zip(self.cores[1:], digits[1:]):
            out = torch.einsum("bxr,brqs->bxqs", out, core[:, digit].transpose(0, 1))
            out = out.reshape(out.shape[0], -1, out.shape[-1])              # [B, q1..qk, r_k]
        return out.reshape(*ids.shape, self.dim)

    def table(self) -> torch.Tensor:
        """All rows by contracting the cores left to right (prefix products shared by the rows that reuse them)."""
        out = self.cores[0][0]                                              # [p1, q1, r1]
        for core in self.cores[1:]:
            out = torch.einsum("PQr,rpqs->PpQqs", out, core)
            out = out.reshape(out.shape[0] * out.shape[1], out.shape[2] * out.shape[3], out.shape[4])
        return out[:self.n_items, :, 0]

    def score_all(self, query: torch.Tensor) -> torch.Tensor:
        return query @ self.table().T

    def payload(self) -> dict[str, torch.Tensor]:
        return {f"cores.{k}": core.detach() for k, core in enumerate(self.cores)}

    @classmethod
    def for_budget(cls, budget_bytes: int, n_items: int, max_dim: int, **options: Any) -> EmbeddingSpec:
        """The largest uniform TT rank (at most `rank`) whose cores fit, at width max_dim."""
        spec = EmbeddingSpec(cls.method, n_items, max_dim, dict(options))
        rows, cols, ranks = tt_shape(spec)
        for rank in range(max(ranks), 0, -1):
            if tt_parameters(rows, cols, [rank] * len(ranks)) * FLOAT_BYTES <= budget_bytes:
                return EmbeddingSpec(cls.method, n_items, max_dim, options | {"rows": rows, "cols": cols,
                                                                             "ranks": [rank] * len(ranks)})
        minimum = tt_parameters(rows, cols, [1] * len(ranks)) * FLOAT_BYTES
        raise BudgetError(f"budget {budget_bytes} B holds no TT table of {n_items} x {max_dim} (rows {rows}, cols "
                          f"{cols}); the minimum (rank 1) is {minimum} B", minimum)


def tt_parameters(rows: list[int], cols: list[int], ranks: list[int]) -> int:
    bounds = [1, *ranks, 1]
    return sum(bounds[k] * p * q * bounds[k + 1] for k, (p, q) in enumerate(zip(rows, cols)))


def tt_shape(spec: EmbeddingSpec) -> tuple[list[int], list[int], list[int]]:
    n_cores = int(spec.options.get("cores", 3))
    rows = list(spec.options.get("rows") or balanced_factors(spec.n_items, n_cores))
    cols = list(spec.options.get("cols") or exact_factors(spec.dim, n_cores))
    ranks = list(spec.options.get("ranks") or [int(spec.options.get("rank", 16))] * (n_cores - 1))
    if not (len(rows) == len(cols) == len(ranks) + 1):
        raise ConfigError(f"tt: rows {rows}, cols {cols} and ranks {ranks} must have K, K and K-1 entries")
    if math.prod(rows) < spec.n_items or math.prod(cols) != spec.dim:
        raise ConfigError(f"tt: rows {rows} must multiply to >= {spec.n_items} items and cols {cols} to dim "
                          f"{spec.dim}")
    return rows, cols, ranks


class STPTTEmbedding(ItemEmbedding):
    """OD-Rec's 2-core TT with a semi-tensor product: G1 [I1*J1, R], G2 [R/t, I2*J2/t].

    The (I1*J1) x (I2*J2) matrix has column c = g + t*c' equal to G1[:, g::t] @ G2[:, c']; item (i1, i2) holds
    the J1 x J2 block at rows i1*J1.., columns i2*J2.. (flattened row-major into d = J1*J2).
    """

    method = "stp_tt"

    def __init__(self, spec: EmbeddingSpec, init_range: float | None = None, init_std: float | None = None):
        super().__init__(spec)
        (self.i1, self.i2), (self.j1, self.j2), self.rank, self.t = stp_shape(spec)
        self.g1 = nn.Parameter(torch.empty(self.i1 * self.j1, self.rank))
        self.g2 = nn.Parameter(torch.empty(self.rank // self.t, self.i2 * self.j2 // self.t))
        for core in (self.g1, self.g2):
            init_tensor(core, init_range, init_std, default_range=0.1)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        i1, i2 = torch.div(flat, self.i2, rounding_mode="floor"), flat % self.i2
        left = self.g1.view(self.i1, self.j1, self.rank // self.t, self.t)[i1]     # [B, J1, R/t, t]
        cols = i2[:, None] * self.j2 + torch.arange(self.j2)                         # [B, J2]
        group, col = cols % self.t, torch.div(cols, self.t, rounding_mode="floor")
        index = group[:, None, None, :].expand(-1, self.j1, self.rank // self.t, -1)
        left = left.gather(3, index)                                                 # [B, J1, R/t, J2]
        right = self.g2[:, col].permute(1, 0, 2)                                     # [B, R/t, J2]
        block = torch.einsum("bjsk,bsk->bjk", left, right)
        return block.reshape(*ids.shape, self.dim)

    def table(self) -> torch.Tensor:
        """The whole table by the release's route: t group products, re-interleaved, blocks reshaped to rows."""
        groups = [self.g1[:, g::self.t] @ self.g2 for g in range(self.t)]           # t x [I1*J1, I2*J2/t]
        matrix = torch.stack(groups, dim=2).reshape(self.i1 * self.j1, self.i2 * self.j2)
        blocks = matrix.view(self.i1, self.j1, self.i2, self.j2).permute(0, 2, 1, 3)
        return blocks.reshape(self.i1 * self.i2, self.dim)[:self.n_items]

    def score_all(self, query: torch.Tensor) -> torch.Tensor:
        return query @ self.table().T

    def payload(self) -> dict[str, torch.Tensor]:
        return {"g1": self.g1.detach(), "g2": self.g2.detach()}

    @classmethod
    def for_budget(cls, budget_bytes: int, n_items: int, max_dim: int, **options: Any) -> EmbeddingSpec:
        """The largest rank (a multiple of t, at most `rank`) whose cores fit, at width max_dim."""
        (i1, i2), (j1, j2), rank, t = stp_shape(EmbeddingSpec(cls.method, n_items, max_dim, dict(options)))
        for r in range(rank - rank % t, 0, -t):
            if stp_parameters(i1, i2, j1, j2, r, t) * FLOAT_BYTES <= budget_bytes:
                return EmbeddingSpec(cls.method, n_items, max_dim, options | {"rank": r})
        minimum = stp_parameters(i1, i2, j1, j2, t, t) * FLOAT_BYTES
        raise BudgetError(f"budget {budget_bytes} B holds no STP-TT table of {n_items} x {max_dim}; the minimum "
                          f"(rank {t}) is {minimum} B", minimum)


def stp_parameters(i1: int, i2: int, j1: int, j2: int, rank: int, t: int) -> int:
    return i1 * j1 * rank + i2 * j2 * rank // (t * t)


def stp_shape(spec: EmbeddingSpec) -> tuple[tuple[int, int], tuple[int, int], int, int]:
    rows = tuple(spec.options.get("rows") or balanced_factors(spec.n_items, 2))
    cols = tuple(spec.options.get("cols") or exact_factors(spec.dim, 2))
    rank, t = int(spec.options.get("rank", 60)), int(spec.options.get("stp", 2))
    if len(rows) != 2 or len(cols) != 2 or rows[0] * rows[1] < spec.n_items or cols[0] * cols[1] != spec.dim:
        raise ConfigError(f"stp_tt: rows {list(rows)} must be 2 factors with product >= {spec.n_items}, cols "
                          f"{list(cols)} 2 factors of dim {spec.dim}")
    if rank % t or (rows[1] * cols[1]) % t:
        raise ConfigError(f"stp_tt: rank {rank} and I2*J2 = {rows[1] * cols[1]} must be multiples of t = {t}")
    return (int(rows[0]), int(rows[1])), (int(cols[0]), int(cols[1])), rank, t
