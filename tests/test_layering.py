"""The package's layers, checked by walking every import (function-level ones included), and the device package
running with torch unimportable, as it must on a phone."""
import ast
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

from fedrec.data.registry import load_dataset
from fedrec.device import DeviceData, DeviceRun, DeviceStates, handle_train
from fedrec.experiment import scenario as scenario_file
from fedrec.federation.coordinator import Coordinator

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fedrec"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def edges() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def crossing(source: str, target: str) -> list[str]:
    return sorted(f"{m} -> {i}" for m, imported in edges().items() if under(m, source)
                  for i in imported if under(i, target))


def test_federation_does_not_import_the_experiment_layer():
    assert crossing("fedrec.federation", "fedrec.experiment") == []
    assert crossing("fedrec.device", "fedrec.experiment") == []


def test_fedrec_never_imports_the_apps():
    assert crossing("fedrec", "clients") == [] and crossing("fedrec", "server") == []


def test_models_and_train_do_not_import_each_other_both_ways():
    assert crossing("fedrec.models", "fedrec.train") == [] or crossing("fedrec.train", "fedrec.models") == []


def test_the_walk_sees_known_edges():
    """The walker itself finds imports (so the tests above can fail)."""
    assert crossing("fedrec.train", "fedrec.models") and crossing("fedrec.experiment", "fedrec.federation")


BLOCK_TORCH = """
import pickle, sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed on this device")
sys.meta_path.insert(0, NoTorch())
import fedrec.device
from fedrec.device import DeviceData, DeviceStates, handle_train
device, task, data_path = pickle.load(sys.stdin.buffer)
reply = handle_train(device, task, DeviceData.load(data_path), DeviceStates(), 1)
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
sys.stdout.buffer.write(pickle.dumps(reply))
"""


def test_the_mf_device_program_trains_with_torch_unimportable(tmp_path):
    split = load_dataset("synthetic")
    scenario = scenario_file.load(ROOT / "simulations" / "small.toml")
    coordinator = Coordinator(split, scenario.run, scenario.devices, scenario.model_config(), log=lambda m: None)
    task = coordinator.strategy.configure_train(1, [3])[0]
    data = DeviceData.from_split(split, 3)
    data.save(tmp_path / "user.npz")
    device = DeviceRun(scenario.run, scenario.model_config())
    sent = pickle.dumps((device, task, tmp_path / "user.npz"))
    done = subprocess.run([sys.executable, "-c", BLOCK_TORCH], input=sent, capture_output=True, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode()
    on_device = pickle.loads(done.stdout)
    here = handle_train(device, task, data, DeviceStates(), 1)
    assert on_device.deltas.keys() == here.deltas.keys() and on_device.n_examples == here.n_examples > 0
    for name in here.deltas:
        assert np.array_equal(on_device.deltas[name], here.deltas[name])
