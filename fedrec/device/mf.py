"""The MF device program for a full item table, in numpy alone (it runs where torch is not installed).

The device holds all rows of the first `width` columns of the item table and a private user vector of that width
(MF's body: it starts from the seed-drawn vector each task carries, and never leaves the device). It trains BPR on
its own interactions over nested prefixes (every narrower tier width it contains, `fedrec.train.local`) and returns
the deltas of the rows it touched; it ranks every item on its own table.
"""
from __future__ import annotations

import numpy as np

from fedrec.device.data import DeviceData
from fedrec.device.programs import DeviceUpdate
from fedrec.device.state import DeviceStates
from fedrec.federation.messages import USER_INIT, EvalTask, TrainTask
from fedrec.ranking import metric_sums
from fedrec.train.local import train_mf_client

ITEMS = "items.weight"


def user_vector(states: DeviceStates, task: TrainTask | EvalTask, round_: int) -> np.ndarray:
    """The private vector as of `round_`; its start when there is none (or, after a change of tier, of another
    width)."""
    stored, start = states.get(task.user, round_), task.private[USER_INIT]
    return start if stored is None or len(stored) != len(start) else stored


class MFTableProgram:
    def __init__(self, device) -> None:
        self.run, self.prefix_weight = device.run, float(device.config["prefix_weight"])

    def train(self, task: TrainTask, data: DeviceData, states: DeviceStates, round_: int) -> DeviceUpdate:
        run, items = self.run, task.shared[ITEMS]
        rng = np.random.default_rng([run.seed, round_, task.user])
        update = train_mf_client(items, user_vector(states, task, round_ - 1), data.contrastive_positives(),
                                 task.settings["widths"], run.local_epochs, run.lr, run.l2, rng, self.prefix_weight)
        states.put(task.user, round_, update.user.astype(np.float32))
        return DeviceUpdate({ITEMS: update.item_delta.astype(np.float32)}, {ITEMS: update.rows.astype(np.int64)},
                      update.n_examples, update.loss)

    def evaluate(self, task: EvalTask, data: DeviceData, states: DeviceStates, round_: int) -> dict[str, float]:
        items = task.shared[ITEMS]
        examples = data.examples(task.split)
        vector = user_vector(states, task, round_)
        scores = np.repeat((items @ vector)[None, :], len(examples), axis=0)
        return metric_sums(scores, examples.targets, examples.exclude) | {"examples": float(len(examples))}

    def help_request(self, data: DeviceData) -> None:
        return None
