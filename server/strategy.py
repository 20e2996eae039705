"""The coordinator's tasks as Flower messages: per-node packing, cohort grouping, replies back to plain data.

Aggregation itself is `fedrec.federation` maths (holder-weighted slices); this module only moves messages. The node
that simulates a user is learned once with a QUERY round (the ServerApp cannot see node partitions otherwise).
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedrec.experiment import wire
from fedrec.federation.protocol import EvalReply, EvalTask, TrainReply, TrainTask


class NoReply(RuntimeError):
    """A task whose node did not answer in time or answered with an error."""


def discover_nodes(grid: Grid, expected: int, timeout: float) -> dict[int, int]:
    """partition-id -> node id for every node (waits until `expected` nodes have registered)."""
    deadline = time.monotonic() + timeout
    node_ids = list(grid.get_node_ids())
    while len(node_ids) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(node_ids)} of {expected} simulated nodes registered within {timeout:.0f}s")
        time.sleep(0.1)
        node_ids = list(grid.get_node_ids())
    messages = [Message(RecordDict({"q": ConfigRecord({"ask": "partition"})}), dst_node_id=n,
                        message_type=MessageType.QUERY) for n in node_ids]
    partitions = {}
    for reply in grid.send_and_receive(messages, timeout=max(deadline - time.monotonic(), 1.0)):
        if not reply.has_error():
            partitions[int(reply.content["node"]["partition"])] = reply.metadata.src_node_id
    if len(partitions) < expected:
        raise RuntimeError(f"only {len(partitions)} of {expected} nodes answered the partition query")
    return partitions


class FlowerTransport:
    """Delivers tasks to the nodes that simulate their users; `clients_per_node` users share a node."""

    def __init__(self, grid: Grid, scenario_json: str, nodes: dict[int, int], clients_per_node: int, timeout: float,
                 log: Callable[[str], None] = print):
        self.grid, self.scenario_json, self.nodes = grid, scenario_json, nodes
        self.per_node, self.timeout, self.log = clients_per_node, timeout, log

    def _by_node(self, tasks: Sequence) -> dict[int, list]:
        groups: dict[int, list] = defaultdict(list)
        for task in tasks:
            groups[self.nodes[task.user // self.per_node]].append(task)
        return groups

    def _exchange(self, groups: dict[int, list], pack: Callable, message_type: str, round_: int) -> dict[int, Message]:
        messages = [Message(pack(group, self.scenario_json, round_), dst_node_id=node, message_type=message_type)
                    for node, group in groups.items()]
        return {m.metadata.src_node_id: m for m in self.grid.send_and_receive(messages, timeout=self.timeout)}

    def train(self, round_: int, tasks: Sequence[TrainTask]) -> list[TrainReply | Exception]:
        groups = self._by_node(tasks)
        answers = self._exchange(groups, wire.pack_train, MessageType.TRAIN, round_)
        by_user: dict[int, TrainReply | Exception] = {}
        for node, group in groups.items():
            reply = answers.get(node)
            if reply is None or reply.has_error():
                reason = "no reply" if reply is None else f"node error: {reply.error.reason}"
                by_user.update({t.user: NoReply(reason) for t in group})
                continue
            try:
                replies, failed = wire.unpack_train_replies(reply.content)
            except (KeyError, TypeError, ValueError) as err:  # a malformed reply is dropped, not fatal
                by_user.update({t.user: NoReply(f"malformed reply: {err!r}") for t in group})
                continue
            by_user.update({r.user: r for r in replies})
            by_user.update({u: NoReply("simulated device failure") for u in failed})
        return [by_user.get(t.user, NoReply("user missing from its node's reply")) for t in tasks]

    def evaluate(self, round_: int, tasks: Sequence[EvalTask]) -> list[EvalReply | Exception]:
        groups = self._by_node(tasks)
        answers = self._exchange(groups, wire.pack_evaluate, MessageType.EVALUATE, round_)
        by_user: dict[int, EvalReply | Exception] = {}
        for node, group in groups.items():
            reply = answers.get(node)
            if reply is None or reply.has_error():
                by_user.update({t.user: NoReply("no evaluation reply") for t in group})
                continue
            by_user.update({r.user: r for r in wire.unpack_eval_replies(reply.content)})
        return [by_user.get(t.user, NoReply("missing")) for t in tasks]
