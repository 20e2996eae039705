"""The run settings the federation needs (seeds, rounds, sampling, steps), a plain leaf every layer may import.

Scenario files fill them (`fedrec.experiment.scenario`, the `[run]` table); the federation and devices only read them.
"""
from __future__ import annotations

from dataclasses import dataclass

from fedrec.schema import TEXT, count, positive, real


@dataclass(frozen=True)
class RunSettings:
    dataset: str = "synthetic"
    model: str = "mf"              # backbone: mf (private user vectors) | sasrec (per-user sequences)
    method: str = "full"           # item representation: full | codes | tt (a registered (model, method) pair)
    max_dim: int = 32              # widest item embedding (the largest device's width is capped here)
    rounds: int = 20
    clients_per_round: int = 50
    local_epochs: int = 5
    lr: float = 0.5                # client SGD step size
    server_lr: float = 1.0         # server step on the mean delta (1.0 = plain FedAvg)
    l2: float = 1e-4
    init_std: float = 0.1
    seconds_per_example: float = 0.002  # simulated compute per example and local epoch on a speed-1.0 device
    eval_every: int = 5            # rounds between federated evaluations (the last round is always evaluated)
    seed: int = 0
    clients_per_node: int = 1      # cohort mode: users simulated inside one Flower node
    sessions_per_user: int = 0     # session datasets: consecutive training sessions per pseudo-user (0 = one each)
    round_timeout: float = 300.0   # seconds to wait for replies before a round goes on without them
    num_cpus_per_client: float = 1.0
    ray_address: str = ""          # join an existing Ray cluster ("" = start a local one)
    update_clip_norm: float = 0.0  # > 0: every device clips its update to this L2 norm before sending (a device mod)
    reference: str = ""            # "centralised" (trained here) or a `fedrec train` run directory on the same data:
                                   # its test figures join the report


RUN_RULES = {
    "dataset": TEXT, "model": TEXT, "method": TEXT,  # names: checked against the registries, which list them
    "max_dim": count(), "rounds": count(), "clients_per_round": count(), "local_epochs": count(),
    "lr": positive(), "server_lr": positive(), "l2": real(0), "init_std": positive(),
    "seconds_per_example": real(0), "eval_every": count(), "seed": count(0), "clients_per_node": count(),
    "sessions_per_user": count(0), "round_timeout": positive(), "num_cpus_per_client": positive(),
    "ray_address": TEXT, "update_clip_norm": real(0), "reference": TEXT,
}
