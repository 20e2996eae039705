"""Centralised training with validation-based early stopping, and the run directory it writes.

The model state with the best validation `select_metric` is kept and is the one evaluated on test, so test
figures are never used for selection. With `refit = true` the selected epoch count is then used to retrain from
scratch on training + validation data (the protocol of the CF papers), and that model is evaluated on test.
Writes `summary.json`, `epochs.parquet` and `item_embedding.fedrec`.
"""
from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from fedrec.configs import Config
from fedrec.data.dataset import EvalSet, Split
from fedrec.data.preflight import require_trainable
from fedrec.embeddings import CodesEmbedding
from fedrec.metrics import evaluate
from fedrec.models import Recommender
from fedrec.results import atomic_write, write_json, write_parquet
from fedrec.train.teacher import build_model


@dataclass
class TrainResult:
    model: Recommender
    summary: dict[str, Any]
    epochs: list[dict[str, Any]] = field(default_factory=list)


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def _evaluate(model: Recommender, data: EvalSet, config: Config) -> dict[str, float]:
    model.eval()
    return evaluate(model.score, data, batch_size=config["eval_batch_size"])


def _train_epoch(model: Recommender, optimizer: torch.optim.Optimizer, split: Split, config: Config,
                 rng: np.random.Generator, label: str) -> float:
    model.train()
    losses = []
    batches = model.batches(split, config["batch_size"], rng)
    for batch in tqdm(batches, total=model.n_batches(split, config["batch_size"]), desc=label, leave=False,
                      disable=None, mininterval=1.0):
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses)) if losses else float("nan")


def _optimizer(model: Recommender, config: Config) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=config["lr"], weight_decay=config.get("weight_decay", 0.0))


def _schedule(optimizer: torch.optim.Optimizer, config: Config) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Step decay of the learning rate every `lr_decay_epochs` epochs (SR-GNN's protocol); None when off."""
    every = config.get("lr_decay_epochs", 0)
    return torch.optim.lr_scheduler.StepLR(optimizer, every, config["lr_decay"]) if every > 0 else None


def refit(split: Split, model_name: str, config: Config, epochs: int, seed: int = 0) -> Recommender:
    """Train afresh on training + validation data for the selected number of epochs (no evaluation on the way)."""
    full = split.with_validation_in_training()
    rng = seed_everything(seed)
    model = build_model(model_name, full, config)
    optimizer = _optimizer(model, config)
    schedule = _schedule(optimizer, config)
    for epoch in range(1, epochs + 1):
        _train_epoch(model, optimizer, full, config, rng, f"refit {epoch}/{epochs}")
        if schedule:
            schedule.step()
    return model


@dataclass
class Best:
    """The best validation point so far: its epoch, score, model state and validation metrics."""

    epoch: int
    score: float
    state: dict[str, torch.Tensor]
    valid: dict[str, float] = field(default_factory=dict)


def _evaluation_row(model: Recommender, split: Split, config: Config) -> dict[str, float]:
    row = {f"valid_{k}": v for k, v in _evaluate(model, split.valid, config).items()}
    if config["track_test"]:
        row |= {f"test_{k}": v for k, v in _evaluate(model, split.test, config).items()}
    return row


def _early_stopped(model: Recommender, split: Split, config: Config, rng: np.random.Generator,
                   log: Callable[[str], None]) -> tuple[list[dict[str, Any]], Best]:
    """Epochs until `patience` validation runs bring no improvement; the per-epoch rows and the best point."""
    best = Best(0, -np.inf, copy.deepcopy(model.state_dict()))
    rows: list[dict[str, Any]] = []
    if not model.trainable or config["epochs"] < 1:
        return rows, best
    optimizer, stale = _optimizer(model, config), 0
    schedule = _schedule(optimizer, config)
    for epoch in range(1, config["epochs"] + 1):
        start = time.perf_counter()
        loss = _train_epoch(model, optimizer, split, config, rng, f"epoch {epoch}")
        if schedule:
            schedule.step()
        row: dict[str, Any] = {"epoch": epoch, "loss": loss, "train_seconds": time.perf_counter() - start}
        rows.append(row)
        if epoch % config["eval_every"] and epoch != config["epochs"]:
            continue
        row |= _evaluation_row(model, split, config)
        score = row[f"valid_{config['select_metric']}"]
        if score > best.score:
            valid = {k.removeprefix("valid_"): v for k, v in row.items() if k.startswith("valid_")}
            best, stale = Best(epoch, score, copy.deepcopy(model.state_dict()), valid), 0
        else:
            stale += 1
        log(f"epoch {epoch}: loss {loss:.4f}, valid {config['select_metric']} {score:.4f} "
            f"(best {best.score:.4f} @ {best.epoch}), {row['train_seconds']:.1f}s")
        if stale >= config["patience"]:
            log(f"early stop: no validation improvement in {stale} evaluations")
            break
    return rows, best


def fit(split: Split, model_name: str, config: Config, seed: int = 0,
        log: Callable[[str], None] = print) -> TrainResult:
    """Train `model_name` on `split`, early-stopped on validation; returns the best model and its summary."""
    require_trainable(split)
    rng = seed_everything(seed)
    model = build_model(model_name, split, config, log)
    rows, best = _early_stopped(model, split, config, rng, log)
    model.load_state_dict(best.state)
    test = _evaluate(model, split.test, config)
    summary = {
        "metrics": {"valid": best.valid or _evaluate(model, split.valid, config), "test": test},
        "best_epoch": best.epoch,
        "epochs_run": len(rows),
        "seconds_per_epoch": statistics.median(r["train_seconds"] for r in rows) if rows else 0.0,
        "model": model_name,
        "seed": seed,
        "config": config,
        "dataset": split.stats() | {"split": split.description},
        "item_embedding": {**model.items.spec.to_dict(), "bytes": model.items.memory_bytes()},
    }
    if config["track_test"] and rows:
        summary["metrics"]["test_best_epoch"] = _best_per_metric(rows)
    if config["refit"] and best.epoch > 0:
        log(f"refit on training + validation data for {best.epoch} epochs")
        model = refit(split, model_name, config, best.epoch, seed)
        summary["metrics"]["test_before_refit"] = test
        summary["metrics"]["test"] = _evaluate(model, split.test, config)
        summary["refit_epochs"] = best.epoch
    if isinstance(model.items, CodesEmbedding) and model.items.n_codebooks > 1:
        summary["metrics"]["test_by_codebook_prefix"] = _by_prefix(model, split.test, config)
    return TrainResult(model=model, summary=summary, epochs=rows)


def _by_prefix(model: Recommender, data: EvalSet, config: Config) -> dict[str, dict[str, float]]:
    """Test metrics of a codes model with each codebook prefix 1..M (what a device holding that prefix gets)."""
    items = model.items
    results = {}
    try:
        for m in range(1, items.n_codebooks + 1):
            items.use_prefix(m)
            results[str(m)] = _evaluate(model, data, config)
    finally:
        items.use_prefix(items.n_codebooks)
    return results


def _best_per_metric(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each test metric's best value over epochs (the session papers' protocol; reported, never used to select)."""
    names = {k for r in rows for k in r if k.startswith("test_")}
    return {n.removeprefix("test_"): max(r[n] for r in rows if n in r) for n in sorted(names)}


def save_run(result: TrainResult, out_dir: Path) -> None:
    """Write the run directory; each file appears whole or not at all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(pd.DataFrame(result.epochs, columns=None if result.epochs else ["epoch"]),
                  out_dir / "epochs.parquet")
    result.model.items.export(out_dir / "item_embedding.fedrec")
    atomic_write(out_dir / "model.pt", lambda tmp: torch.save(result.model.state_dict(), tmp))
    write_json(result.summary, out_dir / "summary.json")
