"""The on-device artifact: a small JSON header followed by the raw bytes of each stored tensor.

Layout: magic `FEDRECA1`, 8-byte little-endian header length, UTF-8 JSON header (spec + tensor table), payload.
The payload is exactly the stored tensors, so its size is the device memory the method claims.
Writes are atomic, so a crash never leaves half an artifact.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedrec.errors import FedrecError
from fedrec.results import atomic_write

MAGIC = b"FEDRECA1"


def write(path: Path, spec: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    arrays = {name: t.detach().cpu().contiguous().numpy() for name, t in tensors.items()}
    table = [{"name": n, "dtype": a.dtype.str, "shape": list(a.shape), "nbytes": a.nbytes} for n, a in arrays.items()]
    header = json.dumps({"spec": spec, "tensors": table}, sort_keys=True).encode()

    def dump(tmp: Path) -> None:
        with tmp.open("wb") as out:
            out.write(MAGIC + len(header).to_bytes(8, "little") + header)
            for a in arrays.values():
                out.write(a.tobytes())

    return atomic_write(path, dump)


def read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], int]:
    """(spec, tensors, payload bytes) of an artifact."""
    blob = Path(path).read_bytes()
    if blob[:8] != MAGIC:
        raise FedrecError(f"{path}: not a fedrec embedding artifact (expected magic {MAGIC!r})")
    size = int.from_bytes(blob[8:16], "little")
    header = json.loads(blob[16:16 + size])
    offset = 16 + size
    tensors = {}
    for entry in header["tensors"]:
        raw = np.frombuffer(blob, dtype=np.dtype(entry["dtype"]), count=int(np.prod(entry["shape"], dtype=np.int64)),
                            offset=offset)
        tensors[entry["name"]] = torch.from_numpy(raw.reshape(entry["shape"]).copy())
        offset += entry["nbytes"]
    if offset != len(blob):
        raise FedrecError(f"{path}: payload is {len(blob) - 16 - size} bytes, header declares {offset - 16 - size}")
    return header["spec"], tensors, offset - 16 - size


def payload_bytes(path: Path) -> int:
    """Size of the payload (file size minus magic, length field and header)."""
    blob = Path(path).read_bytes()
    return len(blob) - 16 - int.from_bytes(blob[8:16], "little")
