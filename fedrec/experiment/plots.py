"""Plots of a run directory: metrics per round for each tier, and bytes per tier (PNG, no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from fedrec.results import atomic_write  # noqa: E402


def _save(figure: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(figure)


def metrics_per_round(rounds: pd.DataFrame, path: Path, metrics: tuple[str, ...] = ("recall@20", "ndcg@20")) -> None:
    evaluated = rounds[rounds["tier"] != "all"]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5))
    for axis, metric in zip(axes, metrics):
        for tier, rows in evaluated.groupby("tier", sort=False):
            axis.plot(rows["round"], rows[metric], marker="o", label=tier)
        axis.set(xlabel="round", ylabel=metric, title=f"{metric} per tier")
        axis.grid(alpha=0.3)
    axes[0].legend(title="tier")
    _save(figure, path)


def bytes_per_tier(summary: dict[str, Any], path: Path) -> None:
    tiers = list(summary["tiers"])
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    on_device = [summary["tiers"][t]["bytes_on_device"] / 1e3 for t in tiers]
    budget = [summary["tiers"][t]["budget_bytes"] / 1e3 for t in tiers]
    axes[0].bar(tiers, budget, color="lightgrey", label="budget")
    axes[0].bar(tiers, on_device, width=0.5, label="on device")
    axes[0].set(ylabel="kB", title="item table on device vs budget")
    axes[0].legend()
    down = [summary["tiers"][t]["bytes_down"] / 1e6 for t in tiers]
    up = [summary["tiers"][t]["bytes_up"] / 1e6 for t in tiers]
    axes[1].bar(tiers, down, label="down")
    axes[1].bar(tiers, up, bottom=down, label="up")
    axes[1].set(ylabel="MB (all rounds)", title="traffic per tier")
    axes[1].legend()
    _save(figure, path)


def draw(out: Path, rounds: pd.DataFrame, summary: dict[str, Any]) -> None:
    (out / "plots").mkdir(parents=True, exist_ok=True)
    metrics_per_round(rounds, out / "plots" / "metrics_per_round.png")
    bytes_per_tier(summary, out / "plots" / "bytes_per_tier.png")
