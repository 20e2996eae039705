"""What runs on the phone: one user's data, the device program of a (model, method) pair, update mods, runtime.

Importing this package needs numpy only; programs that need torch (every pair but MF with a full table) import it
when they are built. A device sees its own `DeviceData` and its task, never another user's data.
"""
from fedrec.device.data import DeviceData
from fedrec.device.runtime import DeviceRun, handle_evaluate, handle_help, handle_train
from fedrec.device.state import DeviceStates

__all__ = ["DeviceData", "DeviceRun", "DeviceStates", "handle_evaluate", "handle_help", "handle_train"]
