"""Typed rules for every configuration key: a type, and a range or a set of valid values.

One rule per key of each config surface (scenario `[run]` and `[devices.*]`, the model configs). A violation is one
line naming where the value came from (a file and table, or `--set`), the key, the value and what is valid. Sizes in
bytes accept an integer or a string with a unit (`15kB` = 15,000 B, `2MiB` = 2,097,152 B).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fedrec.errors import ConfigError

UNITS = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True)
class Rule:
    """What one key accepts. Numbers: `low`/`high` bounds (inclusive unless `*_open`); `choices`: a closed set."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    size: bool = False  # an int of bytes that may be written with a unit

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        name = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[self.kind]
        if self.size:
            name = "a size in bytes (an integer, or with a unit: 15kB, 2MiB)"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {_number(self.low)}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {_number(self.high)}")
        return name + (" " + " and ".join(bounds) if bounds else "")

    def parse(self, value: Any) -> Any:
        """The value in this rule's type, or None when it is not one."""
        if self.size and isinstance(value, str):
            value = parse_size(value)
        if self.kind is bool:
            return value if isinstance(value, bool) else None
        if isinstance(value, bool):
            return None
        if self.kind is float:
            return float(value) if isinstance(value, int | float) else None
        if self.kind is int:
            if isinstance(value, float) and value.is_integer() and (self.size or abs(value) < 2**53):
                return int(value)  # TOML writes 2e4 as a float
            return value if isinstance(value, int) else None
        return value if isinstance(value, self.kind) else None

    def admits(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def parse_size(text: str) -> int | None:
    """`15kB` -> 15000, `2MiB` -> 2097152, `4096` -> 4096; None when `text` is not a size."""
    match = _SIZE.match(text)
    if not match or match.group(2) not in UNITS | {"": 1}:
        return None
    bytes_ = float(match.group(1)) * UNITS.get(match.group(2), 1)
    return int(bytes_) if bytes_.is_integer() else None


def count(low: int = 1, high: int | None = None) -> Rule:
    return Rule(int, low, high)


def real(low: float | None = None, high: float | None = None, low_open: bool = False,
         high_open: bool = False) -> Rule:
    return Rule(float, low, high, low_open, high_open)


def positive() -> Rule:
    return real(0, low_open=True)


def fraction(open_low: bool = False, open_high: bool = False) -> Rule:
    return real(0, 1, open_low, open_high)


def one_of(*choices: Any) -> Rule:
    return Rule(type(choices[0]), choices=choices)


TEXT, FLAG, SIZE = Rule(str), Rule(bool), Rule(int, 1, size=True)

Place = Callable[[str, str], str]  # (table, key) -> where the key's value came from, for error messages


def in_file(source: str) -> Place:
    return lambda table, key: f"{source} [{table}]" if table else source


def table_of(data: Any, name: str, place: Place) -> dict[str, Any]:
    """`data` when it is a TOML table; a clear error when a value stands where the table `name` should."""
    if not isinstance(data, dict):
        parent, _, last = name.rpartition(".")
        raise ConfigError(f"{place(parent, last)}: [{name}] must be a table of keys, got {_shown(data)}")
    return data


def check(rules: Mapping[str, Rule], updates: Mapping[str, Any], where: Callable[[str], str],
          valid: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`updates` parsed and checked key by key; `where(key)` names the place a key's value came from.

    Unknown keys are errors listing the valid ones (`valid`, by default the rules' keys)."""
    known = rules if valid is None else valid
    unknown = sorted(set(updates) - set(known))
    if unknown:
        raise ConfigError(f"{where(unknown[0])}: unknown key(s) {unknown}; valid keys: {sorted(known)}")
    clean = {}
    for key, value in updates.items():
        rule = rules[key]
        parsed = rule.parse(value)
        if parsed is None or not rule.admits(parsed):
            raise ConfigError(f"{where(key)}: {key} = {_shown(value)} is not {rule.describe()}")
        clean[key] = parsed
    return clean


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
