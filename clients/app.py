"""Flower ClientApp: a node simulates one user's device (or, in cohort mode, several), each with private state.

Node `partition-id` p with `clients-per-node` K holds users p*K .. p*K+K-1. Private user vectors persist in
`Context.state` between rounds; a simulated failure of one user is reported, the node's other users carry on.
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from fedrec.data.dataset import Split
from fedrec.data.registry import load_dataset
from fedrec.experiment import scenario as scenario_file
from fedrec.experiment import wire
from fedrec.federation.protocol import SimulatedFailure, handle_evaluate, handle_train

app = ClientApp()
STATE_KEY = "users"


@lru_cache(maxsize=4)
def _setup(scenario_json: str) -> tuple[Split, scenario_file.Scenario]:
    """Dataset and scenario of a run, loaded once per worker process."""
    scenario = scenario_file.from_dict(json.loads(scenario_json), "scenario")
    return load_dataset(scenario.run.dataset), scenario


def _load_state(context: Context) -> dict[int, np.ndarray]:
    record = context.state.get(STATE_KEY)
    return {} if record is None else {int(k): v.numpy() for k, v in record.items()}


def _save_state(context: Context, state: dict[int, np.ndarray]) -> None:
    context.state[STATE_KEY] = ArrayRecord({str(k): Array(v) for k, v in state.items()})


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Which partition this node simulates (the server maps users to nodes with it)."""
    partition = int(context.node_config["partition-id"])
    return Message(RecordDict({"node": ConfigRecord({"partition": partition})}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    scenario_json, round_, tasks = wire.unpack_train(msg.content)
    split, scenario = _setup(scenario_json)
    state = _load_state(context)
    replies, failed = [], []
    for task in tasks:
        try:
            replies.append(handle_train(split, scenario.run, task, round_, state))
        except SimulatedFailure:
            failed.append(task.user)
    _save_state(context, state)
    return Message(wire.pack_train_replies(replies, failed), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    scenario_json, _, tasks = wire.unpack_evaluate(msg.content)
    split, scenario = _setup(scenario_json)
    state = _load_state(context)
    replies = [handle_evaluate(split, scenario.run, task, state) for task in tasks]
    return Message(wire.pack_eval_replies(replies), reply_to=msg)
