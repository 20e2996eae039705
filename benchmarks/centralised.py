"""Centralised reference runs on the real datasets, next to the published figures (BENCHMARKS.md).

Runs each `fedrec train` command below (skipping runs whose summary.json exists unless --force), then prints one
markdown table: validation-selected test metrics, the best epoch, seconds per epoch, and the ratio to the paper.

    python benchmarks/centralised.py --out runs/bench            # run what is missing, then report
    python benchmarks/centralised.py --out runs/bench --report   # report only
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fedrec.ranking import HEADLINE as SHOWN


@dataclass(frozen=True)
class Reference:
    source: str
    metrics: dict[str, float]  # fractions, as fedrec reports them


@dataclass(frozen=True)
class Run:
    dataset: str
    model: str
    args: tuple[str, ...] = ()
    reference: Reference | None = None
    label: str = ""

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.model}" + (f"-{self.label}" if self.label else "")

    def command(self, out: Path) -> list[str]:
        return ["fedrec", "train", "--dataset", self.dataset, "--model", self.model, "--out", str(out / self.name),
                *self.args]


SESSION_ARGS = ("--set", "track_test=true")
GCE_GNN = Reference("GCE-GNN (SIGIR 2020)", {"hr@20": 0.3342, "mrr@20": 0.1542})
RUNS = (
    Run("gowalla", "mf", ("--set", "refit=true"),
        reference=Reference("MF-BPR, NGCF/LightGCN papers", {"recall@20": 0.1291, "ndcg@20": 0.1109})),
    Run("tmall", "sasrec", SESSION_ARGS, GCE_GNN),
    # retrained on all training sessions for the selected epochs: 6.8% of Tmall's test targets occur only in the
    # latest 10% of training sessions, the validation part (the papers train on every training session)
    Run("tmall", "sasrec", (*SESSION_ARGS, "--set", "refit=true"), GCE_GNN, label="refit"),
    Run("diginetica", "sasrec", SESSION_ARGS,
        Reference("SR-GNN (AAAI 2019)", {"hr@20": 0.5073, "mrr@20": 0.1759})),
    Run("gowalla", "pop"), Run("tmall", "pop"), Run("diginetica", "pop"), Run("ml-100k", "pop"),
    Run("ml-100k", "mf"), Run("ml-100k", "sasrec", ("--epochs", "8")),
)


def execute(run: Run, out: Path, force: bool) -> None:
    if (out / run.name / "summary.json").exists() and not force:
        return
    command = run.command(out)
    command[0] = str(Path(sys.executable).with_name("fedrec"))
    print("$ " + " ".join(run.command(out)), file=sys.stderr, flush=True)
    subprocess.run(command, check=True)


def _summaries(out: Path) -> dict[str, dict]:
    return {run.name: json.loads((out / run.name / "summary.json").read_text())
            for run in RUNS if (out / run.name / "summary.json").exists()}


def _row(run: Run, summary: dict | None) -> str:
    if summary is None:
        return f"| {run.name} | " + " | ".join("—" for _ in SHOWN) + " | — | — | not run | |"
    test = summary["metrics"]["test"]
    published = ratio = ""
    if run.reference:
        ref = run.reference.metrics
        published = run.reference.source + ": " + ", ".join(f"{k} {v:.4f}" for k, v in ref.items())
        ratio = ", ".join(f"{test[k] / v:.2f}" for k, v in ref.items())
    return (f"| {run.name} | " + " | ".join(f"{test[k]:.4f}" for k in SHOWN) +
            f" | {summary['best_epoch']} | {summary['seconds_per_epoch']:.1f} | {published} | {ratio} |")


def report(out: Path) -> str:
    summaries = _summaries(out)
    lines = ["| run | " + " | ".join(SHOWN) + " | best epoch | s/epoch | published (same split) | ratio |",
             "|---" * (len(SHOWN) + 5) + "|"]
    lines += [_row(run, summaries.get(run.name)) for run in RUNS]
    best_on_test = {name: s["metrics"]["test_best_epoch"] for name, s in summaries.items()
                    if "test_best_epoch" in s["metrics"]}
    if best_on_test:
        lines += ["", "Best value over epochs on test (the session papers' protocol; not used for selection):", ""]
        lines += [f"- {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if k in SHOWN)
                  for name, m in best_on_test.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--report", action="store_true", help="only print the table of existing runs")
    parser.add_argument("--force", action="store_true", help="re-run runs that already have a summary")
    parser.add_argument("--only", nargs="*", help="run names to run (default: all), e.g. tmall-sasrec")
    args = parser.parse_args()
    if not args.report:
        for run in RUNS:
            if not args.only or run.name in args.only:
                execute(run, args.out, args.force)
    print(report(args.out))


if __name__ == "__main__":
    main()
