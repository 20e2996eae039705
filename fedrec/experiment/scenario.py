"""Scenario files: one TOML per simulation (dataset, model, rounds, device mix), validated with clear errors.

Layout: a `[run]` table of the keys below, one `[devices.NAME]` table per device profile (with its `fraction`) and an
optional `[model]` table of keys of the model's config file (`fedrec/configs/MODEL.toml`, e.g. `dropout`, `codebooks`,
`teacher`) that override its defaults for this dataset. Overrides (`--set run.rounds=5`,
`--set devices.low.budget_bytes=20000`, `--set model.dropout=0.3`) are applied before validation.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fedrec.configs import Config, parse_value, read_toml, resolve
from fedrec.configs.rules import model_rules
from fedrec.data.dataset import Split
from fedrec.data.registry import load_dataset
from fedrec.data.splits import group_sessions
from fedrec.errors import ConfigError
from fedrec.federation.devices import DeviceMix
from fedrec.federation.settings import RUN_RULES, RunSettings
from fedrec.schema import Place, check, in_file, table_of


@dataclass(frozen=True)
class Scenario:
    run: RunSettings
    devices: DeviceMix
    source: str = field(default="<scenario>", compare=False)
    model: dict[str, Any] = field(default_factory=dict)  # overrides of the model's config file

    def load_split(self) -> Split:
        """The scenario's dataset, with sessions grouped into pseudo-users when `sessions_per_user` is set."""
        split = load_dataset(self.run.dataset)
        return group_sessions(split, self.run.sessions_per_user) if self.run.sessions_per_user else split

    def model_config(self) -> Config:
        """The model's configuration: its config file for this dataset, then this scenario's `[model]` table."""
        return resolve(self.run.model, self.run.dataset, overrides=self.model)

    def to_dict(self) -> dict[str, Any]:
        devices = {p.name: {k: v for k, v in asdict(p).items() if k != "name"} | {"fraction": f}
                   for p, f in zip(self.devices.profiles, self.devices.fractions)}
        return {"run": asdict(self.run), "devices": devices} | ({"model": dict(self.model)} if self.model else {})


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def to_toml(scenario: Scenario) -> str:
    """The resolved scenario as TOML (what a run directory's config.toml holds; loads back to the same scenario)."""
    data = scenario.to_dict()
    lines = ["[run]", *(f"{k} = {_toml_value(v)}" for k, v in data["run"].items())]
    for name, profile in data["devices"].items():
        lines += ["", f"[devices.{name}]", *(f"{k} = {_toml_value(v)}" for k, v in profile.items())]
    if data.get("model"):
        lines += ["", "[model]", *(f"{k} = {_toml_value(v)}" for k, v in data["model"].items())]
    return "\n".join(lines) + "\n"


def _apply_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    *path, key = dotted.split(".")
    if not path or not key:
        raise ConfigError(f"--set {dotted}: expected SECTION.KEY (e.g. run.rounds=5 or devices.low.budget_bytes=1e4)")
    table = data
    for depth, part in enumerate(path):
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ConfigError(f"--set {dotted}: {'.'.join(path[:depth + 1])} is a value, not a table")
    table[key] = value


def _placed(source: str, overridden: set[str]) -> Place:
    """Where a key's value came from: `--set TABLE.KEY` when an override gave it, else the file and table."""
    def place(table: str, key: str) -> str:
        dotted = f"{table}.{key}" if table else key
        return f"--set {dotted}" if dotted in overridden else in_file(source)(table, key)

    return place


def from_dict(data: dict[str, Any], source: str, overridden: set[str] | None = None) -> Scenario:
    place = _placed(source, overridden or set())
    unknown = sorted(set(data) - {"run", "devices", "model"})
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; valid sections: ['devices', 'model', 'run']")
    if not data.get("devices"):
        raise ConfigError(f"{source}: at least one [devices.NAME] table with fraction and budget_bytes is required")
    defaults = asdict(RunSettings())
    run = RunSettings(**defaults | check(RUN_RULES, table_of(data.get("run", {}), "run", place),
                                         lambda key: place("run", key), valid=defaults))
    config = resolve(run.model, run.dataset)
    model = check(model_rules(run.model), table_of(data.get("model", {}), "model", place),
                  lambda key: place("model", key), valid=config)
    return Scenario(run, DeviceMix.from_dict(data["devices"], place), source, model)


def load(path: Path, overrides: dict[str, str] | None = None) -> Scenario:
    return load_dict(read_toml(path, "scenario file"), overrides, str(path))


def load_dict(data: dict[str, Any], overrides: dict[str, str] | None = None, source: str = "<scenario>") -> Scenario:
    """A scenario from its TOML tables with `--set`-style overrides (SECTION.KEY -> value text) applied first."""
    data = copy.deepcopy(data)
    for dotted, text in (overrides or {}).items():
        _apply_override(data, dotted, parse_value(text))
    return from_dict(data, source, set(overrides or {}))
