"""A transport over Flower: the coordinator's tasks as Flower messages, cohort grouping, replies back to plain data.

The round strategy and aggregation are `fedrec.federation`'s; this module only moves messages. The node that
simulates a user is learned once with a QUERY round (the ServerApp cannot see node partitions otherwise); help
requests are QUERY messages too.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedrec.errors import ConfigError
from fedrec.experiment import wire
from fedrec.federation.messages import EvalReply, EvalTask, HelpRequest, TrainReply, TrainTask

POLL_SECONDS = 0.05
SETTLE_SECONDS = 20.0  # nodes register within seconds of each other; a count unchanged this long is final


class NoReply(RuntimeError):
    """A task whose node did not answer in time or answered with an error."""


class Stopped(RuntimeError):
    """The run was asked to stop (Ctrl-C in the driver): raised while waiting, before anything is aggregated or
    checkpointed. An Exception, not a KeyboardInterrupt, so that Flower's ServerApp thread ends quietly."""


def exchange(grid: Grid, messages: list[Message], timeout: float, stop: threading.Event) -> list[Message]:
    """Push `messages` and pull their replies until all have come, `timeout` passes, or `stop` is set (then
    Stopped). Flower's `send_and_receive` cannot be interrupted, so a Ctrl-C would wait out the timeout."""
    waiting = set(grid.push_messages(messages))
    deadline, replies = time.monotonic() + timeout, []
    while waiting and time.monotonic() < deadline:
        if stop.is_set():
            raise Stopped("stopped while waiting for replies")
        pulled = list(grid.pull_messages(waiting))
        replies += pulled
        waiting -= {m.metadata.reply_to_message_id for m in pulled}
        if waiting:
            time.sleep(POLL_SECONDS)
    return replies


def discover_nodes(grid: Grid, expected: int, timeout: float, stop: threading.Event,
                   settle: float = SETTLE_SECONDS) -> dict[int, int]:
    """partition-id -> node id for every node (waits until `expected` nodes have registered). Once nodes come, a
    count that stops short of `expected` for `settle` seconds is a federation started with too few SuperNodes:
    said at once with the fix, not after the whole timeout."""
    deadline = time.monotonic() + timeout
    node_ids, changed = list(grid.get_node_ids()), time.monotonic()
    while len(node_ids) < expected:
        if stop.is_set():
            raise Stopped("stopped while the nodes started")
        now = time.monotonic()
        if now > deadline or (node_ids and now - changed > settle):
            raise ConfigError(f"{len(node_ids)} Flower nodes registered, the scenario needs {expected} (one per "
                              f"clients_per_node users); with `flwr run`, pass --federation-config "
                              f"\"num-supernodes={expected}\"")
        time.sleep(0.1)
        current = list(grid.get_node_ids())
        if len(current) != len(node_ids):
            changed = now
        node_ids = current
    messages = [Message(RecordDict({"partition": ConfigRecord({"ask": "partition"})}), dst_node_id=n,
                        message_type=MessageType.QUERY) for n in node_ids]
    partitions = {}
    for reply in exchange(grid, messages, max(deadline - time.monotonic(), 1.0), stop):
        if not reply.has_error():
            partitions[int(reply.content["node"]["partition"])] = reply.metadata.src_node_id
    if len(partitions) < expected:
        raise RuntimeError(f"only {len(partitions)} of {expected} nodes answered the partition query")
    return partitions


class FlowerTransport:
    """Delivers tasks to the nodes that simulate their users; `clients_per_node` users share a node."""

    def __init__(self, grid: Grid, run_json: str, nodes: dict[int, int], clients_per_node: int, timeout: float,
                 stop: threading.Event | None = None):
        self.grid, self.run_json, self.nodes = grid, run_json, nodes
        self.per_node, self.timeout = clients_per_node, timeout
        self.stop = stop or threading.Event()

    def _by_node(self, tasks: Sequence, users: Sequence[int]) -> dict[int, list[tuple[int, Any]]]:
        groups: dict[int, list[tuple[int, Any]]] = defaultdict(list)
        for task, user in zip(tasks, users):
            groups[self.nodes[user // self.per_node]].append((user, task))
        return groups

    def _deliver(self, round_: int, tasks: Sequence, pack: Callable, message_type: str,
                 parse: Callable[[RecordDict], dict[int, Any]], users: Sequence[int] | None = None) -> list:
        """Send each node its users' tasks; every task gets its reply or the reason it has none."""
        users = [t.user for t in tasks] if users is None else list(users)
        groups = self._by_node(tasks, users)
        messages = [Message(pack([t for _, t in group], self.run_json, round_), dst_node_id=node,
                            message_type=message_type) for node, group in groups.items()]
        answers = {m.metadata.src_node_id: m for m in exchange(self.grid, messages, self.timeout, self.stop)}
        by_user: dict[int, Any] = {}
        for node, group in groups.items():
            reply = answers.get(node)
            try:
                if reply is None or reply.has_error():
                    raise NoReply("no reply in time" if reply is None else f"node error: {reply.error.reason}")
                parsed = parse(reply.content)  # a node answers for its own users only
                by_user.update({user: parsed[user] for user, _ in group if user in parsed})
            except (NoReply, KeyError, TypeError, ValueError) as err:  # a bad node reply is dropped, not fatal
                by_user.update({user: err if isinstance(err, NoReply) else NoReply(f"malformed reply: {err!r}")
                                for user, _ in group})
        return [by_user.get(u, NoReply("user missing from its node's reply")) for u in users]

    def train(self, round_: int, tasks: Sequence[TrainTask]) -> list[TrainReply | Exception]:
        def parse(content: RecordDict) -> dict[int, Any]:
            replies, failed = wire.unpack_train_replies(content)
            return {r.user: r for r in replies} | {u: NoReply("the device failed this round") for u in failed}

        return self._deliver(round_, tasks, wire.pack_train, MessageType.TRAIN, parse)

    def evaluate(self, round_: int, tasks: Sequence[EvalTask]) -> list[EvalReply | Exception]:
        return self._deliver(round_, tasks, wire.pack_evaluate, MessageType.EVALUATE,
                             lambda content: {r.user: r for r in wire.unpack_eval_replies(content)})

    def help(self, round_: int, users: Sequence[int]) -> list[HelpRequest | Exception]:
        return self._deliver(round_, list(users), wire.pack_help, MessageType.QUERY,
                             lambda content: {h.user: h for h in wire.unpack_help_replies(content)}, users=users)
