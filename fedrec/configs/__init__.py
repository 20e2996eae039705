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


def model_keys(model: str) -> set[str]:
    """The keys a model's config has (its file's top level)."""
    return set(_model_file(model)) - {"dataset", "kind"}


def _file_sections(model: str, dataset: str, kind: str | None) -> list[tuple[str, dict[str, Any]]]:
    """The model file's tables that apply, in order: its top level, `[kind.KIND]` (session or cf data, for
    datasets nobody tuned for), then `[dataset.NAME]`."""
    from fedrec.data.registry import config_name, kind_of  # configs sit below data: imported when resolving

    raw = _model_file(model)
    per_dataset, per_kind = raw.pop("dataset", {}), raw.pop("kind", {})
    kind = kind if kind is not None or not per_kind else kind_of(dataset)
    dataset = config_name(dataset)
    sections = [(f"{model}.toml", raw)]
    if kind in per_kind:
        sections.append((f"{model}.toml [kind.{kind}]", per_kind[kind]))
    if dataset in per_dataset:
        sections.append((f"{model}.toml [dataset.{dataset}]", per_dataset[dataset]))
    return sections


def applied_sections(model: str, dataset: str, config_file: Path | None = None, overrides: dict | None = None,
                     kind: str | None = None) -> str:
    """Which config sources `resolve` layers for this run, in order (what a user should see before it trains)."""
    sections = [label for label, _ in _file_sections(model, dataset, kind)]
    if config_file is not None:
        sections.append(str(config_file))
    if overrides:
        sections.append("command line (" + ", ".join(sorted(overrides)) + ")")
    return " < ".join(sections)


def resolve(model: str, dataset: str, config_file: Path | None = None,
            overrides: dict[str, Any] | None = None, kind: str | None = None) -> Config:
    """The effective configuration of `model` on `dataset` (`kind`: "session" or "cf" when known; else told from
    the dataset's name or files)."""
    (_, top), *tables = _file_sections(model, dataset, kind)
    config: Config = dict(top)
    for label, table in tables:
        _merge(model, config, table, label)
    if config_file is not None:
        _merge(model, config, read_toml(config_file, "config file"), str(config_file))
    _merge(model, config, overrides or {}, "command line (--set and flags)")
    return config
