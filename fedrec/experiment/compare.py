"""`fedrec compare RUN...`: simulation runs side by side, per tier; runs that differ only in their seed are one
group, shown as mean ± sd over its seeds (and plotted the same way)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from fedrec.errors import ConfigError
from fedrec.ranking import HEADLINE


def load_summary(run: Path) -> dict[str, Any]:
    path = run / "summary.json"
    if not path.exists():
        raise ConfigError(f"{run}: no summary.json (not a finished simulation run)")
    summary = json.loads(path.read_text())
    if "run" not in summary or "tiers" not in summary:
        raise ConfigError(f"{path}: not a fedrec simulation summary (written by an older version, or by `train`)")
    return summary


def _setting(summary: dict[str, Any]) -> str:
    """The run's configuration without its seed: what runs of one group share."""
    config = json.loads(json.dumps(summary["run"]["config"]))
    config["run"].pop("seed", None)
    return json.dumps(config, sort_keys=True)


def groups(runs: list[Path]) -> list[tuple[list[Path], list[dict[str, Any]]]]:
    """Runs grouped by configuration (seed aside), in the order first seen."""
    grouped: dict[str, tuple[list[Path], list[dict[str, Any]]]] = {}
    for run in runs:
        summary = load_summary(run)
        paths, summaries = grouped.setdefault(_setting(summary), ([], []))
        paths.append(run)
        summaries.append(summary)
    return list(grouped.values())


def _tiers(found: list[tuple[list[Path], list[dict[str, Any]]]]) -> list[str]:
    """Every tier name, smallest budget first."""
    budgets = {t: v["budget_bytes"] for _, summaries in found for s in summaries for t, v in s["tiers"].items()}
    return sorted(budgets, key=lambda t: (budgets[t], t))


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(runs: list[Path], metric: str = HEADLINE[0]) -> str:
    """A markdown table: one row per group, one column per tier (and overall), `metric` on the test split."""
    found = groups(runs)
    tiers = _tiers(found)
    lines = [f"| runs | seeds | {' | '.join(tiers)} | overall |", "|---" * (len(tiers) + 3) + "|"]
    for paths, summaries in found:
        seeds = sorted(s["run"]["config"]["run"]["seed"] for s in summaries)
        cells = [_cell([s["tiers"][t][metric] for s in summaries if t in s["tiers"]]) for t in tiers]
        overall = _cell([s["overall"][metric] for s in summaries])
        lines.append(f"| {', '.join(p.name for p in paths)} | {seeds} | {' | '.join(cells)} | {overall} |")
    return f"{metric}, test split, last evaluation (mean ± sd over seeds where a group has several)\n\n" + \
        "\n".join(lines) + "\n"


def plot(runs: list[Path], path: Path, metric: str = HEADLINE[0]) -> Path:
    """Bars per tier for each group (error bars: sd over its seeds)."""
    from fedrec.experiment.plots import _save, plt

    found = groups(runs)
    tiers = _tiers(found)
    figure, axis = plt.subplots(figsize=(1.5 + 1.2 * len(tiers) * len(found), 3.5))
    width = 0.8 / len(found)
    for g, (paths, summaries) in enumerate(found):
        values = [[s["tiers"][t][metric] for s in summaries if t in s["tiers"]] for t in tiers]
        axis.bar([i + g * width for i in range(len(tiers))], [statistics.mean(v) for v in values], width,
                 yerr=[statistics.stdev(v) if len(v) > 1 else 0 for v in values], capsize=3,
                 label=", ".join(p.name for p in paths))
    axis.set_xticks([i + width * (len(found) - 1) / 2 for i in range(len(tiers))], tiers)
    axis.set(ylabel=metric, title=f"{metric} per tier")
    axis.legend(fontsize="small")
    _save(figure, path)
    return path
