"""Defaults as data: one TOML file per model, with optional per-dataset sections.

Resolution order, later wins: the model file's top-level keys, its `[dataset.NAME]` table, a user config file,
then explicit overrides (`--set key=value`, `--epochs`, `--seed`). Unknown keys are errors that list the valid ones.
"""
from __future__ import annotations

import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from fedrec.configs.rules import model_rules
from fedrec.errors import ConfigError
from fedrec.schema import check

Config = dict[str, Any]


def model_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in resources.files(__name__).iterdir()
                  if p.name.endswith(".toml"))


def require_model(model: str) -> str:
    if model not in model_names():
        raise ConfigError(f"unknown model {model!r}; expected one of {model_names()}")
    return model


def _model_file(model: str) -> dict[str, Any]:
    require_model(model)
    return tomllib.loads(resources.files(__name__).joinpath(f"{model}.toml").read_text())


def parse_value(text: str) -> Any:
    """A `--set` value as TOML (numbers, booleans, quoted strings); bare words stay strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A user's TOML file, with one-line errors for a missing or invalid file."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML ({err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a folder; give a TOML file") from None


def key_values(pairs: Sequence[str], flag: str) -> dict[str, str]:
    """{"key": "value"} from ["key=value", ...]; `flag` names the option in the error."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _merge(model: str, config: Config, updates: dict[str, Any], source: str) -> None:
    config.update(check(model_rules(model), updates, lambda key: source, valid=config))


def applied_sections(model: str, dataset: str, config_file: Path | None = None, overrides: dict | None = None) -> str:
    """Which config sources `resolve` layers for this run, in order (what a user should see before it trains)."""
    sections = [f"{model}.toml"]
    if dataset in _model_file(model).get("dataset", {}):
        sections.append(f"{model}.toml [dataset.{dataset}]")
    if config_file is not None:
        sections.append(str(config_file))
    if overrides:
        sections.append("command line (" + ", ".join(sorted(overrides)) + ")")
    return " < ".join(sections)


def resolve(model: str, dataset: str, config_file: Path | None = None,
            overrides: dict[str, Any] | None = None) -> Config:
    """The effective configuration of `model` on `dataset`."""
    raw = _model_file(model)
    per_dataset = raw.pop("dataset", {})
    config: Config = dict(raw)
    _merge(model, config, per_dataset.get(dataset, {}), f"{model}.toml [dataset.{dataset}]")
    if config_file is not None:
        _merge(model, config, read_toml(config_file, "config file"), str(config_file))
    _merge(model, config, overrides or {}, "command line (--set and flags)")
    return config
