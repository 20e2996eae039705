"""Set-up: the Makefile's torch install selects the CPU build and no CUDA package (a pip dry run, no network)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELS = Path("/opt/wheels")


def makefile_torch_args(env: dict) -> list[str]:
    """The arguments the Makefile gives pip for torch (the same script, run as make runs it)."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "torch_args.py")], capture_output=True, text=True,
                         check=True, env=env)
    return out.stdout.split()


def dry_run(args: list[str], tmp_path: Path) -> list[tuple[str, str]]:
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--retries",
                    "0", "--report", str(report), *args], check=True, capture_output=True)
    installs = json.loads(report.read_text())["install"]
    return [(i["metadata"]["name"].lower(), i["metadata"]["version"]) for i in installs]


def cpu_index(tmp_path: Path) -> str | None:
    """PyTorch's CPU index, or, offline, a PEP 503 index of this machine's CPU wheel standing in for it."""
    import runpy

    script = runpy.run_path(str(ROOT / "scripts" / "torch_args.py"))
    official, reachable = script["CPU_INDEX"], script["reachable"]
    wheel = next(WHEELS.glob("torch-2.13.0+cpu-*.whl"), None) if WHEELS.is_dir() else None
    if wheel is not None:
        (tmp_path / "simple" / "torch").mkdir(parents=True)
        (tmp_path / "simple" / "torch" / "index.html").write_text(f'<a href="{wheel.as_uri()}">{wheel.name}</a>\n')
        return (tmp_path / "simple").as_uri()
    return official if reachable(official) else None


def test_the_makefile_installs_the_cpu_torch_build_from_the_cpu_index(tmp_path):
    index = cpu_index(tmp_path)
    if index is None:  # neither a network nor a local wheel: nothing can show which build pip would pick
        pytest.skip("PyTorch's CPU index is unreachable and no local CPU wheel is in /opt/wheels")
    env = {"PATH": "/usr/bin:/bin", "FEDREC_TORCH_INDEX": index}
    args = makefile_torch_args(env)
    assert args == ["torch==2.13.0", "--index-url", index]
    selected = dict(dry_run(args, tmp_path))
    assert selected["torch"] == "2.13.0+cpu"
    assert not [name for name in selected if name.startswith(("nvidia", "triton", "cuda"))], selected


def test_without_a_reachable_index_the_requirement_alone_is_given():
    env = {"PATH": "/usr/bin:/bin", "FEDREC_TORCH_INDEX": "file:///nonexistent/simple"}
    assert makefile_torch_args(env) == ["torch==2.13.0"]
