"""Packing the protocol's plain tasks and replies into Flower records and back (the only Flower-aware codec).

A message serves one Flower node, which simulates one user or, in cohort mode, several. Arrays are keyed
`<user>.<name>`; per-user scalars travel as parallel lists in the MetricRecord/ConfigRecord.
"""
from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedrec.federation.protocol import EvalReply, EvalTask, TrainReply, TrainTask


def _arrays(named: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in named.items()})


def pack_train(tasks: list[TrainTask], run_json: str, round_: int) -> RecordDict:
    """One node's train tasks. The table is sent once at the widest width among the node's users."""
    widest = max(tasks, key=lambda t: t.items.shape[1])
    config = ConfigRecord({"scenario": run_json, "round": round_, "users": [t.user for t in tasks],
                           "tiers": [t.tier for t in tasks], "widths": [t.items.shape[1] for t in tasks],
                           "failure_prob": [float(t.failure_prob) for t in tasks],
                           "nested": [int(w) for w in widest.widths]})
    return RecordDict({"items": _arrays({"items": widest.items}), "config": config})


def unpack_train(content: RecordDict) -> tuple[str, int, list[TrainTask]]:
    config = content["config"]
    items = content["items"]["items"].numpy()
    tasks = [TrainTask(int(u), int(t), np.ascontiguousarray(items[:, :w]), [n for n in config["nested"] if n <= w],
                       float(p))
             for u, t, w, p in zip(config["users"], config["tiers"], config["widths"], config["failure_prob"])]
    return str(config["scenario"]), int(config["round"]), tasks


def pack_train_replies(replies: list[TrainReply], failed: list[int]) -> RecordDict:
    arrays = {}
    for r in replies:
        arrays[f"{r.user}.rows"], arrays[f"{r.user}.delta"] = r.rows, r.delta
    metrics = MetricRecord({"users": [r.user for r in replies], "tiers": [r.tier for r in replies],
                            "n_examples": [r.n_examples for r in replies], "loss": [float(r.loss) for r in replies],
                            "compute_seconds": [float(r.compute_seconds) for r in replies], "failed": failed})
    return RecordDict({"updates": _arrays(arrays), "metrics": metrics})


def unpack_train_replies(content: RecordDict) -> tuple[list[TrainReply], list[int]]:
    """Replies as sent; shapes and values are checked later by the coordinator, names here (KeyError if absent)."""
    m, arrays = content["metrics"], content["updates"]
    replies = [TrainReply(int(u), int(t), arrays[f"{u}.rows"].numpy(), arrays[f"{u}.delta"].numpy(), int(n), float(l),
                          float(s))
               for u, t, n, l, s in zip(m["users"], m["tiers"], m["n_examples"], m["loss"], m["compute_seconds"])]
    return replies, [int(u) for u in m["failed"]]


def pack_evaluate(tasks: list[EvalTask], run_json: str, round_: int) -> RecordDict:
    widest = max(tasks, key=lambda t: t.items.shape[1])
    config = ConfigRecord({"scenario": run_json, "round": round_, "users": [t.user for t in tasks],
                           "tiers": [t.tier for t in tasks], "widths": [t.items.shape[1] for t in tasks],
                           "split": tasks[0].split})
    return RecordDict({"items": _arrays({"items": widest.items}), "config": config})


def unpack_evaluate(content: RecordDict) -> tuple[str, int, list[EvalTask]]:
    config = content["config"]
    items = content["items"]["items"].numpy()
    tasks = [EvalTask(int(u), int(t), np.ascontiguousarray(items[:, :w]), str(config["split"]))
             for u, t, w in zip(config["users"], config["tiers"], config["widths"])]
    return str(config["scenario"]), int(config["round"]), tasks


def pack_eval_replies(replies: list[EvalReply]) -> RecordDict:
    names = sorted({k for r in replies for k in r.sums})
    record = {"users": [r.user for r in replies], "tiers": [r.tier for r in replies]}
    record |= {f"m.{k}": [float(r.sums.get(k, 0.0)) for r in replies] for k in names}
    return RecordDict({"metrics": MetricRecord(record)})


def unpack_eval_replies(content: RecordDict) -> list[EvalReply]:
    m = content["metrics"]
    names = [k for k in m if k.startswith("m.")]
    has_examples = lambda i: bool(names) and m["m.examples"][i] > 0  # noqa: E731
    return [EvalReply(int(u), int(t), {k[2:]: float(m[k][i]) for k in names} if has_examples(i) else {})
            for i, (u, t) in enumerate(zip(m["users"], m["tiers"]))]
