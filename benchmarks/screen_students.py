"""Quick screen of distilled-student settings before spending full epochs on them (BENCHMARKS.md, issue 4).

Each variant is the `fedrec train --model sasrec --teacher RUN` student with its `--set` overrides, trained from the
same seed for `--steps` batches; validation HR@20 / MRR@20 on a fixed sample of validation pairs is printed at step 0
(codebooks fitted to the teacher's table inside the teacher's body, no training) and every `--every` steps. A proxy
for choosing what to run in full, never a reported result: the sample is validation, so test stays untouched.

    python benchmarks/screen_students.py --dataset diginetica --teacher runs/bench/diginetica-sasrec \
        --variant cc2 embedding=codes,clustered_codebooks=2 --variant learned embedding=codes,code_assignment=learned
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from repeats import subset

from fedrec.configs import parse_value, resolve
from fedrec.data.registry import load_dataset
from fedrec.metrics import evaluate
from fedrec.train.teacher import build_model
from fedrec.train.trainer import _optimizer, seed_everything

KD = {"kd_weight": 0.2, "cl_weight": 0.1}  # EODRec's weights, as every KD row of compression.py


def overrides(text: str) -> dict[str, object]:
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"variant settings {text!r}: expected KEY=VALUE[,KEY=VALUE...]")
    return {key: parse_value(value) for key, value in pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "KEY=VALUE,..."), required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--sample", type=int, default=20000, help="validation pairs evaluated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    split = load_dataset(args.dataset)
    rows = np.sort(np.random.default_rng(0).permutation(len(split.valid))[:args.sample])
    sample = subset(split.valid, rows)
    print(f"{args.dataset}: {len(sample)} of {len(split.valid)} validation pairs\n\n"
          "| variant | step | HR@20 | MRR@20 | seconds |\n|---|---|---|---|---|")
    for name, settings in args.variant:
        config = resolve("sasrec", split.name, None, {"teacher": str(args.teacher), **KD, **overrides(settings)})
        rng = seed_everything(args.seed)
        start = time.perf_counter()
        model = build_model("sasrec", split, config, log=lambda _: None)
        optimizer = _optimizer(model, config)
        batches = model.batches(split, config["batch_size"], rng)
        for step in range(args.steps + 1):
            if step % args.every == 0:
                model.eval()
                with torch.no_grad():
                    metrics = evaluate(model.score, sample, batch_size=config["eval_batch_size"])
                print(f"| {name} | {step} | {metrics['hr@20']:.4f} | {metrics['mrr@20']:.4f} | "
                      f"{time.perf_counter() - start:.0f} |", flush=True)
                model.train()
            if step < args.steps:
                optimizer.zero_grad(set_to_none=True)
                model.loss(next(batches)).backward()
                optimizer.step()


if __name__ == "__main__":
    main()
