"""Atomic writers for run outputs: a file is replaced whole, never left half-written."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(data: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def prepare_output(out: Path, overwrite: bool, flag: str = "--out") -> None:
    """Check `out` before any work: a folder that can be written, not a file, not a finished run (unless
    `overwrite`), not a run that can still be resumed (unless `overwrite`). Leaves nothing behind."""
    from fedrec.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag} {out}: a file is in the way; give a folder")
    finished, resumable = (out / "summary.json").exists(), (out / "checkpoint.npz").exists()
    if (finished or resumable) and not overwrite:
        what = "a finished run (summary.json)" if finished else "an unfinished run (checkpoint.npz): --resume it"
        raise ConfigError(f"{flag} {out} holds {what}; pass --overwrite to replace it, or choose another folder")
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=out, prefix=".write-test.").close()
    except OSError as err:
        raise ConfigError(f"{flag} {out}: cannot write there ({err.strerror or err}); choose another folder") from None
    finally:
        for folder in created:  # innermost first: the run creates them again when it writes
            if folder.exists():
                folder.rmdir()
