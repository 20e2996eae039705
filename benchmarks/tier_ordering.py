"""Is a scenario's tier Recall@20 ordered by budget on every seed? Runs it in-process once per seed (the Ray engine
computes the same numbers, tests/test_simulation.py) and prints one Markdown row per seed: validation and test
Recall@20 per tier at the last evaluation, the test intervals, and whether both are ordered.

    python benchmarks/tier_ordering.py --out runs/tiers                         # simulations/default.toml, seeds 0-4
    python benchmarks/tier_ordering.py simulations/small.toml --seeds 0 1 --jobs 1 --out runs/tiers-small
"""
from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from fedrec.experiment import scenario as scenario_file
from fedrec.experiment.runner import simulate

METRIC = "recall@20"


def run_seed(scenario_path: str, seed: int, out: str) -> dict:
    """One seed's run directory (reused when it is already finished)."""
    target = Path(out) / f"seed{seed}"
    if not (target / "summary.json").exists():
        scenario = scenario_file.load(Path(scenario_path), {"run.seed": str(seed)})
        simulate(scenario, target, engine="inprocess", log=lambda message: None, overwrite=True)
    return json.loads((target / "summary.json").read_text())


def validation(run: Path, round_: int) -> dict[str, float]:
    rounds = pd.read_parquet(run / "rounds.parquet")
    last = rounds[(rounds["round"] == round_) & (rounds["tier"] != "all")]
    return dict(zip(last["tier"], last[f"valid_{METRIC}"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="simulations/default.toml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2, help="seeds run at once (one core each)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with ProcessPoolExecutor(args.jobs) as pool:
        summaries = list(pool.map(run_seed, [args.scenario] * len(args.seeds), args.seeds,
                                  [args.out] * len(args.seeds)))
    tiers = list(scenario_file.load(Path(args.scenario)).devices.names)
    print(f"| seed | {' | '.join(f'{t} valid / test' for t in tiers)} | test 95% intervals | reference | ordered "
          f"(valid, test) |\n|---|{'---|' * len(tiers)}---|---|---|")
    for seed, summary in zip(args.seeds, summaries):
        valid = validation(Path(args.out) / f"seed{seed}", summary["evaluated_round"])
        test = {t: summary["tiers"][t][METRIC] for t in tiers}
        intervals = ", ".join("–".join(f"{x:.3f}" for x in summary["tiers"][t][f"{METRIC}_interval"]) for t in tiers)
        ordered = [all(a < b for a, b in zip(list(v.values()), list(v.values())[1:]))
                   for v in ({t: valid[t] for t in tiers}, test)]
        reference = f"{summary['reference'][METRIC]:.4f}" if "reference" in summary else "—"
        print(f"| {seed} | " + " | ".join(f"{valid[t]:.4f} / {test[t]:.4f}" for t in tiers)
              + f" | {intervals} | {reference} | {'yes' if ordered[0] else 'no'}, {'yes' if ordered[1] else 'no'} |")


if __name__ == "__main__":
    main()
