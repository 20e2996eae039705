"""The valid values of every model-config key (the files beside this one hold the defaults).

A key means the same in every model file, so one table serves them all; `pop` trains nothing, so its `epochs` is 0.
`tests/test_schema.py` checks that every key of every model file has a rule and every default passes it.
"""
from __future__ import annotations

from fedrec.errors import ConfigError
from fedrec.ranking import DEFAULT_KS, METRIC_NAMES
from fedrec.schema import FLAG, TEXT, Rule, count, fraction, one_of, positive, real

METRICS = tuple(f"{name}@{k}" for name in METRIC_NAMES for k in DEFAULT_KS)

MODEL_RULES: dict[str, Rule] = {
    # every model
    "dim": count(), "epochs": count(), "eval_every": count(), "patience": count(),
    "select_metric": one_of(*METRICS), "eval_batch_size": count(), "track_test": FLAG, "refit": FLAG,
    # trained models
    "batch_size": count(), "lr": real(0), "l2": real(0), "init_std": positive(), "weight_decay": real(0),
    "lr_decay_epochs": count(0), "lr_decay": real(0, 1),  # lr = 0 or lr_decay = 0 freeze a model (a baseline)
    # item representations
    "embedding": one_of("full", "codes", "tt", "stp_tt", "blend"),  # blend is refused saying how to set it
    "codebooks": count(), "codewords": count(2),
    "tt_rank": count(), "stp_rank": count(2), "prefix_weight": real(0),
    # SASRec
    "max_len": count(), "layers": count(), "heads": count(), "inner": count(), "dropout": fraction(open_high=True),
    "init_range": positive(), "reverse_positions": FLAG, "score_scale": real(0),
    # teachers, distillation and code learning
    "teacher": TEXT, "kd_weight": real(0), "cl_weight": real(0), "mse_weight": real(0), "cl_temperature": positive(),
    "hot_fraction": fraction(), "code_epochs": count(0), "code_assignment": one_of("learned", "random"),
    "clustered_codebooks": count(0), "cluster_signal": one_of("teacher", "cooccurrence"), "unique_codes": FLAG,
    "body_from_teacher": FLAG, "teacher_mix": real(0, 1, low_open=True),
}

PER_MODEL: dict[str, dict[str, Rule]] = {"pop": {"epochs": count(0, 0)}}


def model_rules(model: str) -> dict[str, Rule]:
    return MODEL_RULES | PER_MODEL.get(model, {})


def check_model_config(model: str, config: dict) -> None:
    """Rules between keys of a centralised model's resolved config (a federation sizes each tier itself)."""
    if model == "sasrec" and config["dim"] % config["heads"]:
        raise ConfigError(f"model config: heads = {config['heads']} does not divide dim = {config['dim']}; use a "
                          f"divisor of dim (heads = 1 always works)")
