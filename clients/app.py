"""Flower ClientApp: a node simulates one user's device (or, in cohort mode, several), each with private state.

Node `partition-id` p with `clients-per-node` K holds users p*K .. p*K+K-1. Private user vectors persist in
`Context.state` between rounds and in the run's device folder (what a restarted simulation resumes from); a simulated
failure of one user is reported, the node's other users carry on.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from fedrec.data.dataset import Split
from fedrec.experiment import scenario as scenario_file
from fedrec.experiment import wire
from fedrec.federation.device_state import DeviceStates
from fedrec.federation.protocol import SimulatedFailure, handle_evaluate, handle_train

app = ClientApp()
STATE_KEY, ROUNDS_KEY = "users", "user-rounds"


@lru_cache(maxsize=4)
def _setup(run_json: str) -> tuple[Split, scenario_file.Scenario, Path | None]:
    """Dataset, scenario and device folder of a run, loaded once per worker process."""
    data = json.loads(run_json)
    device_dir = data.pop("device_dir", "")
    scenario = scenario_file.from_dict(data, "scenario")
    return scenario.load_split(), scenario, Path(device_dir) if device_dir else None


def _load_states(context: Context, device_dir: Path | None) -> DeviceStates:
    """The node's private state from Context.state (falling back to the device folder after a restart)."""
    arrays, rounds = context.state.get(STATE_KEY), context.state.get(ROUNDS_KEY)
    memory = {} if arrays is None else {
        int(user): [(int(r), arrays[f"{user}.{i}"].numpy()) for i, r in enumerate(stored)]
        for user, stored in rounds.items()}
    return DeviceStates(memory, device_dir)


def _save_states(context: Context, states: DeviceStates) -> None:
    context.state[STATE_KEY] = ArrayRecord({f"{user}.{i}": Array(v) for user, versions in states.memory.items()
                                            for i, (_, v) in enumerate(versions)})
    context.state[ROUNDS_KEY] = ConfigRecord({str(user): [r for r, _ in versions]
                                              for user, versions in states.memory.items()})


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Which partition this node simulates (the server maps users to nodes with it)."""
    partition = int(context.node_config["partition-id"])
    return Message(RecordDict({"node": ConfigRecord({"partition": partition})}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    run_json, round_, tasks = wire.unpack_train(msg.content)
    split, scenario, device_dir = _setup(run_json)
    states = _load_states(context, device_dir)
    replies, failed = [], []
    for task in tasks:
        try:
            replies.append(handle_train(split, scenario, task, round_, states))
        except SimulatedFailure:
            failed.append(task.user)
    _save_states(context, states)
    return Message(wire.pack_train_replies(replies, failed), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    run_json, round_, tasks = wire.unpack_evaluate(msg.content)
    split, scenario, device_dir = _setup(run_json)
    states = _load_states(context, device_dir)
    replies = [handle_evaluate(split, scenario, task, round_, states) for task in tasks]
    return Message(wire.pack_eval_replies(replies), reply_to=msg)
