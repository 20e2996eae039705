"""The run directory of a simulation: config.toml, rounds.parquet, clients.parquet, summary.json, report.md, plots."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from fedrec.experiment import plots
from fedrec.experiment.scenario import Scenario, to_toml
from fedrec.federation.coordinator import Coordinator
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
    total = sum(t["evaluated"] for t in tiers.values()) or 1
    overall = {k: sum(t.get(k, 0.0) * t["evaluated"] for t in tiers.values()) / total for k in SHOWN}
    overall |= {"bytes_down": sum(t["bytes_down"] for t in tiers.values()),
                "bytes_up": sum(t["bytes_up"] for t in tiers.values()),
                "dropped_replies": len(coordinator.history.dropped),
                "simulated_seconds": float(rounds.loc[rounds["tier"] == "all", "simulated_seconds"].sum())}
    return {"tiers": tiers, "overall": overall, "rounds": coordinator.rounds_done}


def report(summary: dict[str, Any], scenario: Scenario) -> str:
    header = "| tier | width | bytes on device | budget | " + " | ".join(SHOWN) + " | MB down | MB up |"
    lines = [f"# fedrec simulation: {scenario.run.dataset}, {scenario.run.model}/{scenario.run.method}, "
             f"{summary['rounds']} rounds", "", header, "|---" * (len(SHOWN) + 6) + "|"]
    ordered = {name: summary["tiers"][name] for name in scenario.devices.names if name in summary["tiers"]}
    for name, t in {**ordered, "overall": summary["overall"]}.items():
        lines.append(f"| {name} | {t.get('width', '')} | {t.get('bytes_on_device', '')} | "
                     f"{t.get('budget_bytes', '')} | "
                     + " | ".join(f"{t.get(k, float('nan')):.4f}" for k in SHOWN)
                     + f" | {t['bytes_down'] / 1e6:.2f} | {t['bytes_up'] / 1e6:.2f} |")
    return "\n".join(lines) + "\n"


def start(out: Path, scenario: Scenario, resume: bool) -> None:
    """Prepare `out`: the resolved scenario first (a resumed run must find it), no stale summary."""
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        return
    for stale in ("summary.json", "checkpoint.npz", "run.log"):
        (out / stale).unlink(missing_ok=True)
    for folder in ("devices", "items"):
        shutil.rmtree(out / folder, ignore_errors=True)
    (out / "devices").mkdir()  # devices keep their state here; a resume needs it
    atomic_write(out / "config.toml", lambda tmp: tmp.write_text(to_toml(scenario)))


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
    write_parquet(pd.DataFrame(coordinator.history.rows), out / "rounds.parquet")
    write_parquet(coordinator.ledger.frame(), out / "clients.parquet")
    write_parquet(pd.DataFrame(coordinator.history.dropped, columns=["round", "client", "reason"]),
                  out / "dropped.parquet")
    atomic_write(out / "report.md", lambda tmp: tmp.write_text(report(summary, scenario)))
    plots.draw(out, pd.DataFrame(coordinator.history.rows), summary)
    write_json(summary, out / "summary.json")
    return summary
