"""Flower ClientApp: a node simulates one user's device (or, in cohort mode, several), each with private state.

Node `partition-id` p with `clients-per-node` K holds users p*K .. p*K+K-1. Each device sees only its own
`DeviceData` (cut from the run's split: a simulation convenience; a real device reads its own file). Private state
persists in `Context.state` between rounds and in the run's device folder (what a restarted simulation resumes
from); a simulated failure of one user is reported, the node's other users carry on.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from fedrec.data.dataset import Split
from fedrec.device import DeviceData, DeviceRun, DeviceStates, handle_evaluate, handle_help, handle_train
from fedrec.experiment import scenario as scenario_file
from fedrec.experiment import wire
from fedrec.federation.messages import DeviceFailure

app = ClientApp()
STATE_KEY, ROUNDS_KEY = "users", "user-rounds"


@lru_cache(maxsize=4)
def _setup(run_json: str) -> tuple[Split, DeviceRun, Path | None]:
    """Dataset, device settings and device folder of a run, loaded once per worker process."""
    data = json.loads(run_json)
    device_dir = data.pop("device_dir", "")
    scenario = scenario_file.from_dict(data, "scenario")
    return scenario.load_split(), DeviceRun(scenario.run, scenario.model_config()), \
        Path(device_dir) if device_dir else None


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
    """Which partition this node simulates (the server maps users to nodes with it), or its users' help requests."""
    if "partition" in msg.content:
        partition = int(context.node_config["partition-id"])
        return Message(RecordDict({"node": ConfigRecord({"partition": partition})}), reply_to=msg)
    run_json, users = wire.unpack_help(msg.content)
    split, device, _ = _setup(run_json)
    requests = [handle_help(device, DeviceData.from_split(split, user)) for user in users]
    return Message(wire.pack_help_replies(requests), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    run_json, round_, tasks = wire.unpack_train(msg.content)
    split, device, device_dir = _setup(run_json)
    states = _load_states(context, device_dir)
    replies, failed = [], []
    for task in tasks:
        try:
            replies.append(handle_train(device, task, DeviceData.from_split(split, task.user), states, round_))
        except DeviceFailure:  # a simulated failure, or data this device cannot train on
            failed.append(task.user)
    _save_states(context, states)
    return Message(wire.pack_train_replies(replies, failed), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    run_json, round_, tasks = wire.unpack_evaluate(msg.content)
    split, device, device_dir = _setup(run_json)
    states = _load_states(context, device_dir)
    replies = [handle_evaluate(device, task, DeviceData.from_split(split, task.user), states, round_)
               for task in tasks]
    return Message(wire.pack_eval_replies(replies), reply_to=msg)
