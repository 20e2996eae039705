"""The run directory of a simulation: config.toml, rounds.parquet, clients.parquet, summary.json, report.md, plots."""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedrec.data.dataset import Split
from fedrec.errors import ConfigError
from fedrec.experiment import plots
from fedrec.experiment.scenario import Scenario, to_toml
from fedrec.federation.coordinator import Coordinator
from fedrec.federation.settings import RunSettings
from fedrec.ranking import HEADLINE as SHOWN
from fedrec.results import atomic_write, write_json, write_parquet


def summarise(coordinator: Coordinator, on_device: dict[str, int]) -> dict[str, Any]:
    """Final per-tier metrics (last evaluation), bytes on device (`on_device`: of each tier's exported artifact) and
    traffic, plus the examples-weighted overall figures."""
    rounds = pd.DataFrame(coordinator.history.rows)
    evaluated = rounds[rounds["tier"] != "all"]
    last = evaluated[evaluated["round"] == evaluated["round"].max()].set_index("tier")
    traffic = coordinator.ledger.totals_by_tier()
    tiers: dict[str, dict[str, Any]] = {}
    for tier in coordinator.method.tiers:
        metrics = last.loc[tier.name] if tier.name in last.index else {}
        tiers[tier.name] = {k: float(metrics[k]) for k in SHOWN if k in metrics} | {
            "bytes_on_device": on_device[tier.name], "budget_bytes": int(tier.profile.budget_bytes),
            "width": tier.width, "representation": {"method": tier.spec.method, **tier.spec.options},
            "clients": int((coordinator.method.client_tier == tier.index).sum()),
            "evaluated": int(metrics["examples"]) if "examples" in metrics else 0,
            "bytes_down": traffic.get(tier.name, {}).get("bytes_down", 0),
            "bytes_up": traffic.get(tier.name, {}).get("bytes_up", 0)}
    for tier in coordinator.method.tiers:
        tiers[tier.name] |= user_interval(coordinator.last_test, tier.index, coordinator.run.seed)
    total = sum(t["evaluated"] for t in tiers.values()) or 1
    overall = {k: sum(t.get(k, 0.0) * t["evaluated"] for t in tiers.values()) / total for k in SHOWN}
    overall |= {"bytes_down": sum(t["bytes_down"] for t in tiers.values()),
                "bytes_up": sum(t["bytes_up"] for t in tiers.values()),
                "dropped_replies": len(coordinator.history.dropped),
                "simulated_seconds": float(rounds.loc[rounds["tier"] == "all", "simulated_seconds"].sum())}
    overall |= user_interval(coordinator.last_test, None, coordinator.run.seed)
    return {"tiers": tiers, "overall": overall, "rounds": coordinator.rounds_done,
            "evaluated_round": int(evaluated["round"].max()) if len(evaluated) else 0}


def user_interval(per_user: dict[int, tuple[int, dict[str, float]]], tier: int | None, seed: int,
                  resamples: int = 1000) -> dict[str, Any]:
    """Users evaluated and a 95% bootstrap interval of the headline metric over them (users resampled with
    replacement; each user's metric is its mean over its examples, weighted by examples as the tier's figure is)."""
    rows = [sums for t, sums in per_user.values() if tier is None or t == tier]
    if not rows:
        return {"users": 0}
    sums, examples = np.array([s[SHOWN[0]] for s in rows]), np.array([s["examples"] for s in rows])
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(resamples):  # one resample at a time: memory stays one users-long array
        pick = rng.integers(0, len(rows), size=len(rows))
        means.append(sums[pick].sum() / examples[pick].sum())
    low, high = np.percentile(means, [2.5, 97.5])
    return {"users": len(rows), f"{SHOWN[0]}_interval": [float(low), float(high)]}


CENTRALISED = "centralised"  # run.reference: train the reference in the run directory


def reference_dir(out: Path, run: RunSettings) -> str:
    """Where the run's centralised reference is: its own `reference/` folder, or the `fedrec train` run it names."""
    return str(out / "reference") if run.reference == CENTRALISED else run.reference


def train_reference(out: Path, scenario: Scenario, split: Split | None, log: Callable[[str], None]) -> None:
    """The scenario's model trained centrally on the run's own split (`split`, else loaded) at `max_dim`, with its
    config file's settings for the dataset (a resumed run keeps the one it has)."""
    from fedrec.train.trainer import fit, save_run

    target = out / "reference"
    if (target / "summary.json").exists():
        return
    split = split or scenario.load_split()
    config = scenario.model_config() | {"dim": scenario.run.max_dim}
    log(f"training the centralised reference ({scenario.run.model}, width {scenario.run.max_dim}) on the same split")
    save_run(fit(split, scenario.run.model, config, seed=scenario.run.seed, log=lambda message: None), target)


def reference(run: str) -> dict[str, Any]:
    """The centralised run a report compares with: its model, dataset, width and test figures (checked before a
    simulation starts: a finished `fedrec train` run)."""
    import json

    path = Path(run) / "summary.json"
    if not path.exists():
        raise ConfigError(f"run.reference = {run!r}: no summary.json there; give a `fedrec train` run directory")
    summary = json.loads(path.read_text())
    if "test" not in summary.get("metrics", {}) or not isinstance(summary.get("dataset"), dict):
        raise ConfigError(f"run.reference = {run!r}: {path} is not the summary of a `fedrec train` run")
    return {"run": run, "model": summary.get("model", "?"), "dataset": summary["dataset"].get("name", "?"),
            "dim": summary.get("config", {}).get("dim", "?"), **summary["metrics"]["test"]}


def report(summary: dict[str, Any], scenario: Scenario) -> str:
    interval = f"{SHOWN[0]} 95% interval"
    header = ("| tier | width | bytes on device | budget | users | " + " | ".join(SHOWN) + f" | {interval} | MB down "
              "| MB up |")
    lines = [f"# fedrec simulation: {scenario.run.dataset}, {scenario.run.model}/{scenario.run.method}, "
             f"{summary['rounds']} rounds", "",
             f"Test split, round {summary.get('evaluated_round', summary['rounds'])} (the last evaluation), each user "
             f"ranked on its own device; intervals: bootstrap over the tier's users.", "",
             header, "|---" * (len(SHOWN) + 8) + "|"]
    ordered = {name: summary["tiers"][name] for name in scenario.devices.names if name in summary["tiers"]}
    for name, t in {**ordered, "overall": summary["overall"]}.items():
        low, high = t.get(f"{SHOWN[0]}_interval", (float("nan"), float("nan")))
        lines.append(f"| {name} | {t.get('width', '')} | {t.get('bytes_on_device', '')} | "
                     f"{t.get('budget_bytes', '')} | {t.get('users', '')} | "
                     + " | ".join(f"{t.get(k, float('nan')):.4f}" for k in SHOWN)
                     + f" | {low:.4f}–{high:.4f} | {t['bytes_down'] / 1e6:.2f} | {t['bytes_up'] / 1e6:.2f} |")
    if "reference" in summary:
        ref = summary["reference"]
        lines += ["", f"Centralised reference ({ref['model']} on {ref['dataset']}, width {ref.get('dim', '?')}, "
                  f"`{ref['run']}`, test split): "
                  + ", ".join(f"{k} {ref[k]:.4f}" for k in SHOWN if k in ref)]
    return "\n".join(lines) + "\n"


def start(out: Path, scenario: Scenario, resume: bool, split: Split | None = None,
          log: Callable[[str], None] = print) -> None:
    """Prepare `out`: the resolved scenario first (a resumed run must find it), no stale summary, and the
    centralised reference when the run trains its own (on `split`, else the scenario's dataset loaded again)."""
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        for stale in ("summary.json", "checkpoint.npz", "run.log"):
            (out / stale).unlink(missing_ok=True)
        for folder in ("devices", "items", "reference"):
            shutil.rmtree(out / folder, ignore_errors=True)
        (out / "devices").mkdir()  # devices keep their state here; a resume needs it
        atomic_write(out / "config.toml", lambda tmp: tmp.write_text(to_toml(scenario)))
    if scenario.run.reference == CENTRALISED:
        train_reference(out, scenario, split, log)


def provenance(scenario: Scenario, rows: list[dict]) -> dict[str, Any]:
    """What produced a run: package versions, the resolved scenario and the wall seconds of its rounds."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {"versions": {name: installed(name) for name in ("fedrec", "flwr", "torch", "ray", "numpy")},
            "config": scenario.to_dict(),
            "wall_seconds": float(sum(r.get("wall_seconds", 0.0) for r in rows if r.get("tier") == "all"))}


def write(out: Path, coordinator: Coordinator, scenario: Scenario) -> dict[str, Any]:
    """Results, report and plots, plus each tier's on-device item artifact in `items/<tier>.fedrec`; the summary
    ends with the run's provenance (`run`: versions, resolved config, wall seconds)."""
    summary = summarise(coordinator, coordinator.method.export_tiers(out / "items"))
    summary["run"] = provenance(scenario, coordinator.history.rows)
    if scenario.run.reference:
        summary["reference"] = reference(reference_dir(out, scenario.run))
    write_parquet(pd.DataFrame(coordinator.history.rows), out / "rounds.parquet")
    write_parquet(coordinator.ledger.frame(), out / "clients.parquet")
    write_parquet(pd.DataFrame(coordinator.history.dropped, columns=["round", "client", "reason"]),
                  out / "dropped.parquet")
    atomic_write(out / "report.md", lambda tmp: tmp.write_text(report(summary, scenario)))
    plots.draw(out, pd.DataFrame(coordinator.history.rows), summary)
    write_json(summary, out / "summary.json")
    return summary
