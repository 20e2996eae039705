"""Compressed item tables inside SASRec on a session dataset, next to their teacher (BENCHMARKS.md, issue 4).

The teacher is the full-table run of `centralised.py` (`RUNS/DATASET-sasrec`). Each student is one `fedrec train`
command (skipped when its summary.json exists); the table gives validation-selected test metrics, the item table's
exact bytes, its compression against the full float32 table in bytes and in parameters (a code counts as one
parameter, docs/PAPERS.md §7.4), and P@20 (HR@20) relative to the teacher.

    python benchmarks/compression.py --dataset tmall --out runs/bench            # run what is missing, report
    python benchmarks/compression.py --dataset tmall --out runs/bench --report   # report only
    python benchmarks/compression.py --dataset diginetica --epochs 1             # students capped at one epoch
    python benchmarks/compression.py --dataset diginetica --epochs 2 --only codes6-learned-kd   # the 95% row
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from centralised import Run, execute

from fedrec.embeddings import TTEmbedding
from fedrec.embeddings.codes import codes_bytes

KD = ("--set", "kd_weight=0.2", "--set", "cl_weight=0.1")  # EODRec's weights (docs/PAPERS.md §7.5)


def equal_bytes_tt_rank(teacher: Path) -> int:
    """The largest TT rank (3 cores) whose item table fits in the bytes of codes3 (M = 3, K = 256) at the teacher's
    width: the TT-Rec row compared with codes at equal bytes."""
    table = json.loads((teacher / "summary.json").read_text())["item_embedding"]
    budget = codes_bytes(table["n_items"], 3, 256, table["dim"])
    return TTEmbedding.for_budget(budget, table["n_items"], table["dim"], rank=256).options["ranks"][0]


def students(dataset: str, teacher: Path, epochs: int | None = None) -> list[Run]:
    """Every student scores as its teacher does (its score_scale), whatever the dataset's default is now; `epochs`
    caps every student alike (default: the dataset's SASRec schedule)."""
    scale = json.loads((teacher / "summary.json").read_text())["config"]["score_scale"]
    cap = ("--epochs", str(epochs)) if epochs else ()

    def student(label: str, *args: str) -> Run:
        return Run(dataset, "sasrec", ("--set", "patience=2", "--set", "track_test=true",
                                       "--set", f"score_scale={scale}", *cap, *args), label=label)

    codes = ("--embedding", "codes", "--teacher", str(teacher))
    tt_equal = ("--embedding", "tt", "--set", f"tt_rank={equal_bytes_tt_rank(teacher)}")
    distilled = ("--teacher", str(teacher), "--set", "mse_weight=0.0", *KD)
    return [
        student("full-kd", *distilled),
        student("codes3-kd", *codes, *KD),
        student("codes3-kd-random", *codes, "--set", "clustered_codebooks=0", *KD),
        student("codes3-kd-blend", *codes, "--set", "teacher_mix=0.2", *KD),  # the release's table: not compressed
        student("codes3", *codes),
        student("codes4-kd", *codes, "--set", "codebooks=4", *KD),
        student("codes5x128-kd", *codes, "--set", "codebooks=5", "--set", "codewords=128", *KD),  # <= codes3's bytes
        student("codes6-kd", *codes, "--set", "codebooks=6", "--set", "clustered_codebooks=4",  # ~21x: fills the
                "--set", "cluster_signal=teacher", *KD),                                 # 20x budget
        student("codes6-learned-kd", *codes, "--set", "codebooks=6", "--set", "code_assignment=learned",
                "--set", "lr_decay_epochs=1", *KD),  # plateaus after one epoch: lr x 0.1 from the second on
        student("stp60", "--embedding", "stp_tt", "--set", "stp_rank=60"),
        student("stp60-kd", "--embedding", "stp_tt", *distilled),
        student("tt-equal", *tt_equal),
        student("tt-equal-kd", *tt_equal, *distilled),
    ]


def parameters(item_embedding: dict) -> float:
    """Stored parameters; a code counts as one (docs/PAPERS.md §7.4), a blend adds the teacher table to its inner."""
    n, d, size = item_embedding["n_items"], item_embedding["dim"], item_embedding["bytes"]
    if item_embedding["method"] == "codes":
        m, k = item_embedding["options"]["codebooks"], item_embedding["options"]["codewords"]
        return n * m + m * k * d
    if item_embedding["method"] == "blend":
        return n * d + parameters(item_embedding["options"]["inner"] | {"bytes": size - n * d * 4})
    return size / 4


def compression(item_embedding: dict) -> tuple[float, float]:
    """(bytes, parameters) of the full float32 table over those of this one."""
    n, d = item_embedding["n_items"], item_embedding["dim"]
    return n * d * 4 / item_embedding["bytes"], n * d / parameters(item_embedding)


def row(name: str, summary: dict, teacher_hr: float) -> str:
    test, table = summary["metrics"]["test"], summary["item_embedding"]
    by_bytes, by_params = compression(table)
    prefixes = summary["metrics"].get("test_by_codebook_prefix", {})
    by_prefix = ", ".join(f"{m}: {p['hr@20']:.4f}" for m, p in prefixes.items())
    return (f"| {name} | {test['hr@20']:.4f} | {test['mrr@20']:.4f} | {test['ndcg@20']:.4f} | {table['bytes']:,} | "
            f"{by_bytes:.1f}x | {by_params:.1f}x | {test['hr@20'] / teacher_hr:.2f} | "
            f"{summary['best_epoch']} of {summary['config']['epochs']} | "
            f"{by_prefix} |")


def report(dataset: str, out: Path, teacher_dir: Path) -> str:
    runs = [("teacher", teacher_dir)] + [(s.label, out / s.name) for s in students(dataset, teacher_dir)]
    done = {label: json.loads((d / "summary.json").read_text()) for label, d in runs if (d / "summary.json").exists()}
    teacher_hr = done["teacher"]["metrics"]["test"]["hr@20"]
    lines = ["| model | P@20 (HR@20) | MRR@20 | NDCG@20 | item-table bytes | compression (bytes) | "
             "compression (params) | P@20 / teacher | best epoch of | P@20 by codebook prefix |", "|---" * 10 + "|"]
    lines += [row(label, done[label], teacher_hr) if label in done else f"| {label} | not run |" + " |" * 8
              for label, _ in runs]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tmall")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--only", nargs="*", help="student labels to run, e.g. codes3-kd stp60")
    parser.add_argument("--epochs", type=int, help="epochs of every student (default: the dataset's schedule)")
    args = parser.parse_args()
    teacher = args.out / f"{args.dataset}-sasrec"
    if not (teacher / "summary.json").exists():
        sys.exit(f"no teacher at {teacher}: run `python benchmarks/centralised.py --out {args.out} --only "
                 f"{args.dataset}-sasrec` first")
    if not args.report:
        for run in students(args.dataset, teacher, args.epochs):
            if not args.only or run.label in args.only:
                execute(run, args.out, force=False)
    print(report(args.dataset, args.out, teacher))


if __name__ == "__main__":
    main()
