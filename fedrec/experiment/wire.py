"""Packing the federation's plain messages into Flower records and back (the only Flower-aware codec).

A message serves one Flower node, which simulates one user or, in cohort mode, several. Shared blocks and static
arrays travel once per tier among the node's users (`shared.<tier>.<name>`, `static.<tier>.<name>`), per-user arrays
as `<user>.<name>`, replies as `<user>.delta.<name>` / `<user>.rows.<name>`, help requests as `<user>.ids`; per-user
scalars and settings travel as parallel lists.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedrec.federation.messages import EvalReply, EvalTask, HelpRequest, TrainReply, TrainTask


def _arrays(named: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in named.items()})


def _grouped(record: ArrayRecord, levels: Callable[[str], int]) -> dict[str, dict[str, np.ndarray]]:
    """The record's arrays by the first `levels(key)` dot-separated parts of their keys, in one pass (looking up
    each user's prefix among all keys would cost users x keys: quadratic in the users of one message)."""
    groups: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for key in record:
        *head, name = key.split(".", levels(key))
        groups[".".join(head)][name] = record[key].numpy()
    return groups


def _task_levels(key: str) -> int:
    """`shared.TIER.NAME` and `static.TIER.NAME` are per tier, `USER.NAME` per user."""
    return 2 if key.startswith(("shared.", "static.")) else 1


def _pack_tasks(tasks: Sequence[TrainTask | EvalTask], run_json: str, round_: int, **extra) -> RecordDict:
    arrays = {f"shared.{t.tier}.{name}": a for t in tasks for name, a in t.shared.items()}  # one copy per tier
    arrays |= {f"static.{t.tier}.{name}": a for t in tasks for name, a in t.static.items()}
    arrays |= {f"{t.user}.{name}": a for t in tasks for name, a in t.private.items()}
    config = ConfigRecord({"scenario": run_json, "round": round_, "users": [t.user for t in tasks],
                           "tiers": [t.tier for t in tasks], "settings": [json.dumps(t.settings) for t in tasks],
                           **extra})
    return RecordDict({"arrays": _arrays(arrays), "config": config})


def _unpack_tasks(content: RecordDict) -> tuple[str, int, list[tuple[int, int, dict, dict, dict, dict]]]:
    """(scenario, round, [(user, tier, shared, private, settings, static)])."""
    config, groups = content["config"], _grouped(content["arrays"], _task_levels)
    rows = [(int(u), int(t), groups.get(f"shared.{t}", {}), groups.get(str(u), {}), json.loads(s),
             groups.get(f"static.{t}", {}))
            for u, t, s in zip(config["users"], config["tiers"], config["settings"])]
    return str(config["scenario"]), int(config["round"]), rows


def pack_train(tasks: list[TrainTask], run_json: str, round_: int) -> RecordDict:
    return _pack_tasks(tasks, run_json, round_, failure_prob=[float(t.failure_prob) for t in tasks])


def unpack_train(content: RecordDict) -> tuple[str, int, list[TrainTask]]:
    run_json, round_, rows = _unpack_tasks(content)
    failure = content["config"]["failure_prob"]
    return run_json, round_, [TrainTask(u, t, s, p, c, float(f), st) for (u, t, s, p, c, st), f in zip(rows, failure)]


def pack_train_replies(replies: list[TrainReply], failed: list[int]) -> RecordDict:
    arrays = {}
    for r in replies:
        arrays |= {f"{r.user}.delta.{k}": v for k, v in r.deltas.items()}
        arrays |= {f"{r.user}.rows.{k}": v for k, v in r.rows.items()}
    metrics = MetricRecord({"users": [r.user for r in replies], "tiers": [r.tier for r in replies],
                            "n_examples": [r.n_examples for r in replies], "loss": [float(r.loss) for r in replies],
                            "compute_seconds": [float(r.compute_seconds) for r in replies], "failed": failed})
    return RecordDict({"updates": _arrays(arrays), "metrics": metrics})


def unpack_train_replies(content: RecordDict) -> tuple[list[TrainReply], list[int]]:
    """Replies as sent; names, shapes and values are checked later by the coordinator."""
    m, groups = content["metrics"], _grouped(content["updates"], lambda key: 2)
    replies = [TrainReply(int(u), int(t), groups.get(f"{u}.delta", {}), groups.get(f"{u}.rows", {}),
                          int(n), float(loss), float(s))
               for u, t, n, loss, s in zip(m["users"], m["tiers"], m["n_examples"], m["loss"], m["compute_seconds"])]
    return replies, [int(u) for u in m["failed"]]


def pack_evaluate(tasks: list[EvalTask], run_json: str, round_: int) -> RecordDict:
    return _pack_tasks(tasks, run_json, round_, split=tasks[0].split)


def unpack_evaluate(content: RecordDict) -> tuple[str, int, list[EvalTask]]:
    run_json, round_, rows = _unpack_tasks(content)
    split = str(content["config"]["split"])
    return run_json, round_, [EvalTask(u, t, s, p, c, split, st) for u, t, s, p, c, st in rows]


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


def pack_help(users: Sequence[int], run_json: str, round_: int) -> RecordDict:
    return RecordDict({"config": ConfigRecord({"scenario": run_json, "round": round_, "users": list(users)})})


def unpack_help(content: RecordDict) -> tuple[str, list[int]]:
    config = content["config"]
    return str(config["scenario"]), [int(u) for u in config["users"]]


def pack_help_replies(requests: list[HelpRequest]) -> RecordDict:
    return RecordDict({"ids": _arrays({f"{r.user}.ids": r.ids for r in requests}),
                       "metrics": MetricRecord({"users": [r.user for r in requests]})})


def unpack_help_replies(content: RecordDict) -> list[HelpRequest]:
    arrays = content["ids"]
    return [HelpRequest(int(u), arrays[f"{int(u)}.ids"].numpy()) for u in content["metrics"]["users"]]
