"""Where a compact student loses: HR@20 / MRR@20 of SASRec runs on targets already in the session (repeats) and on
new items, on one dataset's validation (default) or test pairs.

    python benchmarks/repeats.py --dataset tmall runs/bench/tmall-sasrec runs/bench/tmall-sasrec-codes3-kd
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from fedrec.data.dataset import EvalSet
from fedrec.data.registry import load_dataset
from fedrec.metrics import evaluate
from fedrec.train.teacher import load_sasrec


def subset(data: EvalSet, rows: np.ndarray) -> EvalSet:
    return EvalSet(data.users[rows], [data.histories[i] for i in rows], [data.targets[i] for i in rows])


def repeat_rows(data: EvalSet) -> np.ndarray:
    """Mask of the pairs whose target is already in its history."""
    return np.array([np.isin(target, history).any() for history, target in zip(data.histories, data.targets)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tmall")
    parser.add_argument("--part", choices=("valid", "test"), default="valid")
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    split = load_dataset(args.dataset)
    data = getattr(split, args.part)
    repeats = repeat_rows(data)
    parts = {"repeat": subset(data, np.flatnonzero(repeats)), "new": subset(data, np.flatnonzero(~repeats))}
    print(f"{args.dataset} {args.part}: {len(data)} pairs, {repeats.mean():.1%} repeats\n")
    print("| run | repeat HR@20 | repeat MRR@20 | new HR@20 | new MRR@20 | all HR@20 |\n|---|---|---|---|---|---|")
    for run in args.runs:
        model = load_sasrec(run, split).eval()
        with torch.no_grad():
            scores = {name: evaluate(model.score, part, batch_size=512) for name, part in parts.items()}
        overall = repeats.mean() * scores["repeat"]["hr@20"] + (1 - repeats.mean()) * scores["new"]["hr@20"]
        print(f"| {run.name} | {scores['repeat']['hr@20']:.4f} | {scores['repeat']['mrr@20']:.4f} | "
              f"{scores['new']['hr@20']:.4f} | {scores['new']['mrr@20']:.4f} | {overall:.4f} |")


if __name__ == "__main__":
    main()
