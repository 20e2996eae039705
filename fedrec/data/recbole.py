"""RecBole atomic `.inter` files: tab-separated, a header of `name:type` fields (e.g. `user_id:token`)."""
from __future__ import annotations

from pathlib import Path

from fedrec.data.csvfile import FieldKind, read_header, read_table
from fedrec.data.dataset import InteractionLog
from fedrec.errors import DatasetError

_USER_FIELDS = ("user_id", "session_id")
_TYPES = ("token", "token_seq", "float", "float_seq")


def read_atomic(path: Path) -> InteractionLog:
    """Interactions of a `.inter` file: user (`user_id` or `session_id`), `item_id` and optional `timestamp`."""
    path = Path(path)
    header = read_header(path, "\t")
    names = [_field_name(path, field) for field in header]
    user = next((n for n in _USER_FIELDS if n in names), None)
    if user is None or "item_id" not in names:
        raise DatasetError(f"{path} line 1: expected fields user_id (or session_id) and item_id, "
                           f"got {', '.join(header)}")
    fields: dict[str, tuple[int, FieldKind]] = {"user": (names.index(user), "token"),
                                                "item": (names.index("item_id"), "token")}
    if "timestamp" in names:
        fields["timestamp"] = (names.index("timestamp"), "float")
    got = read_table(path, "\t", fields, n_fields=len(names), header=True,
                     expected=f"{len(names)} tab-separated fields ({', '.join(names)})")
    return InteractionLog(got["user"], got["item"], got.get("timestamp"))


def _field_name(path: Path, field: str) -> str:
    name, _, kind = field.partition(":")
    if kind not in _TYPES:
        raise DatasetError(f"{path} line 1: expected header fields 'name:type' with type one of "
                           f"{', '.join(_TYPES)}, got {field!r}")
    return name
