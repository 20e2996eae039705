"""Learning compositional codes from a teacher's item table (docs/PAPERS.md §7.3).

A Gumbel-softmax autoencoder maps each teacher embedding to M one-hot choices over K codewords (straight-through:
hard one-hot forward, soft gradient backward) and decodes the sum of the chosen codewords. The reconstruction loss is
averaged over every codebook prefix 1..M, so the first codebooks learn the coarse structure and each further codebook
refines it: any prefix is a usable table (what lets one model serve every device budget).
Once trained, codes = argmax and are fixed; the decoder's codebooks initialise the student's.
The alternative, `random_codes`, gives every item a distinct random code and fits the codebooks to the table; on
Tmall it beats learned codes because the teacher table is mostly its random init (BENCHMARKS.md).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedrec.errors import ConfigError


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


def _fit_encoder(model: CodeAutoencoder, table: torch.Tensor, codes: torch.Tensor, epochs: int, batch_size: int,
                 lr: float, rng: np.random.Generator) -> None:
    """Cross-entropy of the encoder's logits against given codes (the decoder is left alone)."""
    optimizer = torch.optim.Adam(model.encoder.parameters(), lr=lr)
    for _ in range(epochs):
        for rows in np.array_split(rng.permutation(len(table)), max(1, len(table) // batch_size)):
            rows = torch.from_numpy(rows)
            optimizer.zero_grad()
            logits = model.logits(table[rows])
            F.cross_entropy(logits.reshape(-1, model.codewords), codes[rows].reshape(-1)).backward()
            optimizer.step()


@dataclass
class LearnedCodes:
    codes: torch.Tensor      # [N, M] int64
    codebooks: torch.Tensor  # [M, K, d]
    prefix_mse: list[float]  # mean squared reconstruction error of the teacher table with 1..M codebooks
    source: str = "autoencoder"


def prefix_errors(codes: torch.Tensor, codebooks: torch.Tensor, table: torch.Tensor) -> list[float]:
    one_hot = F.one_hot(codes, codebooks.shape[1]).to(table.dtype)
    recon = torch.einsum("nmk,mkd->mnd", one_hot, codebooks).cumsum(0)
    return [float(e) for e in (recon - table).pow(2).sum(-1).mean(-1)]


def _reconstruct(codes: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    return codebooks[torch.arange(codes.shape[1]), codes].sum(-2)


def _nearest_free_code(item_row: torch.Tensor, code: torch.Tensor, codebooks: torch.Tensor,
                       taken: set[tuple[int, ...]]) -> tuple[int, ...] | None:
    """The unused code nearest to `item_row` that differs from `code` in its last one or two codebooks only."""
    prefix = tuple(code[:-1].tolist())
    residual = item_row - _reconstruct(code[:-1].unsqueeze(0), codebooks[:-1])[0] if len(prefix) else item_row
    for last in torch.cdist(residual[None], codebooks[-1])[0].argsort().tolist():
        if prefix + (last,) not in taken:
            return prefix + (last,)
    if len(prefix) == 0:
        return None
    head = tuple(code[:-2].tolist())
    residual = item_row - _reconstruct(code[:-2].unsqueeze(0), codebooks[:-2])[0] if len(head) else item_row
    pairs = (codebooks[-2][:, None, :] + codebooks[-1][None, :, :]).reshape(-1, codebooks.shape[-1])
    width = codebooks.shape[1]
    for flat in torch.cdist(residual[None], pairs)[0].argsort().tolist():
        if (candidate := head + (flat // width, flat % width)) not in taken:
            return candidate
    return None


def unique_codes(codes: torch.Tensor, codebooks: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Codes in which no two items coincide.

    Items with the same code share one embedding, so the model cannot rank one above the other: a repeat purchase
    of an item then also lifts its twins (45% of Tmall's test targets are repeats, and residual k-means gives 15% of
    its items a shared code). Of each group of twins the item its code reconstructs best keeps the code; every other
    moves its last codeword (or, if all of those are taken, its last two) to the nearest choice that is still free.
    Shorter prefixes are unchanged except where a last-two move touches codebook M-1.
    """
    n_codebooks, codewords = codebooks.shape[0], codebooks.shape[1]
    if len(codes) > codewords ** n_codebooks:
        raise ConfigError(f"unique codes: {len(codes)} items need more than {codewords}^{n_codebooks} codes; raise "
                          f"`codebooks` or `codewords`, or set unique_codes = false")
    codes = codes.clone()
    errors = (_reconstruct(codes, codebooks) - table).pow(2).sum(1)
    taken: set[tuple[int, ...]] = set()
    twins = []
    for item in errors.argsort().tolist():
        key = tuple(codes[item].tolist())
        if key in taken:
            twins.append(item)
        else:
            taken.add(key)
    for item in twins:
        free = _nearest_free_code(table[item], codes[item], codebooks, taken)
        if free is None:
            raise ConfigError(f"unique codes: no free code near item {item} within its last two codebooks; raise "
                              f"`codewords`, or set unique_codes = false")
        taken.add(free)
        codes[item] = torch.tensor(free)
    return codes


def fit_codebooks(codes: torch.Tensor, table: torch.Tensor, codewords: int, iterations: int = 10) -> torch.Tensor:
    """Codebooks [M, K, d] minimising the squared error of the summed codewords to `table` for fixed codes (block
    coordinate descent: each codeword becomes the mean residual of its items; unused codewords stay zero)."""
    n_codebooks = codes.shape[1]
    codebooks = torch.zeros(n_codebooks, codewords, table.shape[1])
    counts = [torch.bincount(codes[:, m], minlength=codewords).clamp(min=1).unsqueeze(1) for m in range(n_codebooks)]
    for _ in range(iterations):
        for m in range(n_codebooks):
            residual = table - _reconstruct(codes, codebooks) + codebooks[m, codes[:, m]]
            codebooks[m] = torch.zeros(codewords, table.shape[1]).index_add_(0, codes[:, m], residual) / counts[m]
    return codebooks


def cooccurrence_signal(sequences: list[np.ndarray], n_items: int, dim: int = 64, window: int = 5,
                        seed: int = 0) -> torch.Tensor:
    """[N, dim] unit rows: the spectral embedding of the item graph that links items at most `window` positions
    apart in a training sequence (degree-normalised, truncated SVD).

    Items close here are bought or clicked together, the structure a new-item prediction needs; the teacher's table
    holds little of it (most of its variance is the random init), so clustering on this graph puts items that
    co-occur under one coarse codeword (BENCHMARKS.md: a new validation target shares its cluster with a recent
    item of its session 32% of the time, against 10% for k-means on the teacher table).
    """
    if not 0 < dim < n_items:
        raise ConfigError(f"co-occurrence signal: dim = {dim}; expected 1..{n_items - 1}")
    rows, cols = [], []
    for sequence in sequences:
        for offset in range(1, min(window, len(sequence) - 1) + 1):
            rows += [sequence[:-offset], sequence[offset:]]
            cols += [sequence[offset:], sequence[:-offset]]
    if not rows:
        raise ConfigError("co-occurrence signal: no training sequence has two items; use cluster_signal = 'teacher'")
    pairs = torch.from_numpy(np.stack([np.concatenate(rows), np.concatenate(cols)])).long()
    pairs = pairs[:, pairs[0] != pairs[1]]
    graph = torch.sparse_coo_tensor(pairs, torch.ones(pairs.shape[1]), (n_items, n_items),
                                    check_invariants=True).coalesce()
    degree = torch.sparse.sum(graph, 1).to_dense() + 1
    index = graph.indices()
    weights = graph.values() / (degree[index[0]] * degree[index[1]]).sqrt()
    normalised = torch.sparse_coo_tensor(index, weights, (n_items, n_items), check_invariants=True).coalesce()
    with torch.random.fork_rng():  # svd_lowrank draws from the global generator; leave training's stream alone
        torch.manual_seed(seed)
        vectors, values, _ = torch.svd_lowrank(normalised, q=dim, niter=4)
    return F.normalize(vectors * values, dim=1)


def random_codes(table: torch.Tensor, codebooks: int, codewords: int, seed: int = 0,
                 clustered: int = 0, signal: torch.Tensor | None = None) -> LearnedCodes:
    """Distinct codes, random after the first `clustered` codebooks (those come from residual k-means on `signal`,
    by default `table`), with codebooks fitted to `table` for them.

    Unlike clustered codes, two items then rarely share their random codewords, so each stays nearly orthogonal to
    the others (what telling a repeated item from its neighbours needs); similarity comes from the clustered part.
    """
    if len(table) > codewords ** codebooks:
        raise ConfigError(f"random codes: {len(table)} items need more than {codewords}^{codebooks} distinct codes; "
                          f"raise `codebooks` or `codewords`")
    if not 0 <= clustered < codebooks:
        raise ConfigError(f"clustered_codebooks = {clustered}; expected 0..{codebooks - 1} (some codebooks must stay "
                          f"random)")
    table = table.detach().float()
    rng = np.random.default_rng(seed)
    heads: list[tuple[int, ...] | None] = [()] * len(table)
    if clustered:
        points = table if signal is None else signal.detach().float()
        heads = _clustered_heads(points, clustered, codewords, codewords ** (codebooks - clustered), seed)
    taken: set[tuple[int, ...]] = set()
    rows: list[tuple[int, ...]] = [()] * len(table)
    for item in sorted(range(len(table)), key=lambda i: heads[i] is None):  # clustered items first: theirs always fit
        head = heads[item] or ()
        code = head + tuple(rng.integers(0, codewords, codebooks - len(head)).tolist())
        while code in taken:
            code = head + tuple(rng.integers(0, codewords, codebooks - len(head)).tolist())
        taken.add(code)
        rows[item] = code
    codes = torch.tensor(rows, dtype=torch.int64)
    fitted = fit_codebooks(codes, table, codewords)
    source = "random codes"
    if clustered:
        overflow = sum(head is None for head in heads)
        source += f" after {clustered} clustered codebooks ({overflow} items of over-full clusters random)"
    return LearnedCodes(codes, fitted, prefix_errors(codes, fitted, table), source)


def _clustered_heads(points: torch.Tensor, clustered: int, codewords: int, capacity: int,
                     seed: int) -> list[tuple[int, ...] | None]:
    """The first `clustered` codewords of each item from residual k-means on `points`, or None for an item that does
    not fit: a cluster holds at most `capacity` items (the random codes left under its head), the nearest to its
    centre. Items with no signal (never co-occurring) share one point and would otherwise crowd one cluster."""
    codes, centres = residual_kmeans(points, clustered, codewords, 10, torch.Generator().manual_seed(seed))
    distance = (points - centres[torch.arange(clustered), codes].sum(1)).norm(dim=1)
    candidates = [tuple(row) for row in codes.tolist()]
    heads: list[tuple[int, ...] | None] = [None] * len(points)
    members: Counter[tuple[int, ...]] = Counter()
    for item in distance.argsort().tolist():
        if members[candidates[item]] < capacity:
            members[candidates[item]] += 1
            heads[item] = candidates[item]
    return heads


def residual_kmeans(table: torch.Tensor, codebooks: int, codewords: int, iterations: int,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes [N, M] and centroids [M, K, d] of k-means on the table, then on what is left of it, M times."""
    residual, codes, centroids = table.clone(), [], []
    for _ in range(codebooks):
        centres = residual[torch.randperm(len(residual), generator=generator)[:codewords]].clone()
        for _ in range(iterations):
            assign = torch.cdist(residual, centres).argmin(1)
            sums = torch.zeros_like(centres).index_add_(0, assign, residual)
            counts = torch.bincount(assign, minlength=len(centres)).unsqueeze(1)
            centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
        assign = torch.cdist(residual, centres).argmin(1)
        codes.append(assign)
        centroids.append(centres)
        residual = residual - centres[assign]
    return torch.stack(codes, 1), torch.stack(centroids)


def learn_codes(table: torch.Tensor, codebooks: int, codewords: int, epochs: int = 200, batch_size: int = 1024,
                lr: float = 1e-3, temperature: float = 0.3, seed: int = 0, kmeans_iterations: int = 10,
                unique: bool = False, log: Callable[[str], None] | None = None) -> LearnedCodes:
    """Codes and codebooks for `table` [N, d] (the teacher's item embeddings, not updated).

    The autoencoder starts from residual k-means (decoder = centroids, encoder first fitted to predict the k-means
    codes): from a random start the Gumbel noise swamps the encoder's small logits and the codes collapse onto a
    few dozen combinations on real teacher tables (18 distinct codes for Tmall's 40,727 items, seen here). If the
    trained autoencoder still reconstructs the teacher worse than its k-means start (as on Tmall, where most rare
    items' embeddings are near their random init), the k-means codes are kept; `source` says which. With `unique`,
    twins are then separated (`unique_codes`).
    """
    torch.manual_seed(seed)
    table = table.detach().float()
    model = CodeAutoencoder(table.shape[1], codebooks, codewords)
    rng = np.random.default_rng(seed)
    if kmeans_iterations:
        start_codes, centroids = residual_kmeans(table, codebooks, codewords, kmeans_iterations,
                                                 torch.Generator().manual_seed(seed))
        with torch.no_grad():
            model.decoder.copy_(centroids)
        _fit_encoder(model, table, start_codes, epochs=max(1, epochs // 4), batch_size=batch_size, lr=lr, rng=rng)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(1, epochs + 1):
        for rows in np.array_split(rng.permutation(len(table)), max(1, len(table) // batch_size)):
            optimizer.zero_grad()
            model.loss(table[torch.from_numpy(rows)], temperature).backward()
            optimizer.step()
        if log and (epoch % 50 == 0 or epoch == epochs):
            errors = prefix_errors(model.codes(table), model.decoder.detach(), table)
            log(f"codes epoch {epoch}: reconstruction MSE by prefix {[round(e, 4) for e in errors]}")
    codes, decoder = model.codes(table), model.decoder.detach().clone()
    learned = LearnedCodes(codes, decoder, prefix_errors(codes, decoder, table), "autoencoder")
    if kmeans_iterations:
        start = LearnedCodes(start_codes, centroids, prefix_errors(start_codes, centroids, table), "residual k-means")
        if start.prefix_mse[-1] < learned.prefix_mse[-1]:
            learned = start
    if unique:
        codes = unique_codes(learned.codes, learned.codebooks, table)
        learned = LearnedCodes(codes, learned.codebooks, prefix_errors(codes, learned.codebooks, table),
                               learned.source + ", twins separated")
    if log:
        by_prefix = [round(e, 4) for e in learned.prefix_mse]
        log(f"codes from the {learned.source} (teacher-table MSE by prefix {by_prefix})")
    return learned
