"""Learning compositional codes from a teacher's item table (PAPERS.md §7.3).

A Gumbel-softmax autoencoder maps each teacher embedding to M one-hot choices over K codewords (straight-through:
hard one-hot forward, soft gradient backward) and decodes the sum of the chosen codewords. The reconstruction loss is
averaged over every codebook prefix 1..M, so the first codebooks learn the coarse structure and each further codebook
refines it: any prefix is a usable table (what lets one model serve every device budget).
Once trained, codes = argmax and are fixed; the decoder's codebooks initialise the student's.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class CodeAutoencoder(nn.Module):
    def __init__(self, dim: int, codebooks: int, codewords: int, init_range: float = 0.1):
        super().__init__()
        self.codebooks, self.codewords = codebooks, codewords
        hidden = max(1, codebooks * codewords // 2)
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, codebooks * codewords),
                                     nn.Softplus())
        self.decoder = nn.Parameter(torch.empty(codebooks, codewords, dim).uniform_(-init_range, init_range))

    def logits(self, table: torch.Tensor) -> torch.Tensor:
        return self.encoder(table).view(-1, self.codebooks, self.codewords)

    def codes(self, table: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.logits(table).argmax(-1)

    def prefix_reconstructions(self, one_hot: torch.Tensor) -> torch.Tensor:
        """[M, N, d]: entry m-1 decodes the first m codebooks."""
        per_codebook = torch.einsum("nmk,mkd->mnd", one_hot, self.decoder)
        return per_codebook.cumsum(0)

    def loss(self, table: torch.Tensor, temperature: float) -> torch.Tensor:
        one_hot = F.gumbel_softmax(self.logits(table), tau=temperature, hard=True)
        return (self.prefix_reconstructions(one_hot) - table).pow(2).sum(-1).mean()


@dataclass
class LearnedCodes:
    codes: torch.Tensor      # [N, M] int64
    codebooks: torch.Tensor  # [M, K, d]
    prefix_mse: list[float]  # mean squared reconstruction error of the teacher table with 1..M codebooks


def prefix_errors(codes: torch.Tensor, codebooks: torch.Tensor, table: torch.Tensor) -> list[float]:
    one_hot = F.one_hot(codes, codebooks.shape[1]).to(table.dtype)
    recon = torch.einsum("nmk,mkd->mnd", one_hot, codebooks).cumsum(0)
    return [float(e) for e in (recon - table).pow(2).sum(-1).mean(-1)]


def learn_codes(table: torch.Tensor, codebooks: int, codewords: int, epochs: int = 200, batch_size: int = 1024,
                lr: float = 1e-3, temperature: float = 0.3, seed: int = 0,
                log: Callable[[str], None] | None = None) -> LearnedCodes:
    """Codes and codebooks for `table` [N, d] (the teacher's item embeddings, not updated)."""
    torch.manual_seed(seed)
    table = table.detach().float()
    model = CodeAutoencoder(table.shape[1], codebooks, codewords)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        for rows in np.array_split(rng.permutation(len(table)), max(1, len(table) // batch_size)):
            optimizer.zero_grad()
            model.loss(table[torch.from_numpy(rows)], temperature).backward()
            optimizer.step()
        if log and (epoch % 50 == 0 or epoch == epochs):
            errors = prefix_errors(model.codes(table), model.decoder.detach(), table)
            log(f"codes epoch {epoch}: reconstruction MSE by prefix {[round(e, 4) for e in errors]}")
    codes = model.codes(table)
    decoder = model.decoder.detach().clone()
    return LearnedCodes(codes, decoder, prefix_errors(codes, decoder, table))
