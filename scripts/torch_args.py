"""The pip arguments that install fedrec's torch: the CPU build, never a CUDA one unless asked.

Prints `torch==VERSION --index-url CPU_INDEX` when PyTorch's CPU index answers, else `torch==VERSION` (then pip's
own configuration decides, e.g. a machine's local wheels). `FEDREC_TORCH_INDEX` names another index: a CUDA one
(`https://download.pytorch.org/whl/cu126`) to opt in to a GPU build, or a mirror.
Used by the Makefile: `pip install $(python scripts/torch_args.py)`.
"""
from __future__ import annotations

import os
import urllib.request
from pathlib import Path

TORCH_VERSION = "2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def reachable(url: str, timeout: float = 5.0) -> bool:
    if url.startswith("file://"):
        return Path(url.removeprefix("file://")).is_dir()
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def torch_args() -> list[str]:
    index = os.environ.get("FEDREC_TORCH_INDEX", CPU_INDEX)
    requirement = f"torch=={TORCH_VERSION}"
    return [requirement, "--index-url", index] if reachable(index) else [requirement]


if __name__ == "__main__":
    print(" ".join(torch_args()))
