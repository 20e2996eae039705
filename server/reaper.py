"""Stops the processes of a local Ray cluster when the `fedrec simulate` process that started it dies, even by
SIGKILL (which no handler in that process can catch).

Ray ties its GCS and raylet to the driver, but the agents the raylet starts (dashboard and runtime-env agents) are
re-parented to init when the driver dies and linger. A watcher process, in a session of its own (so that a Ctrl-C
or a kill of the driver's process group does not reach it), polls the driver's descendants once a second from
/proc and, when the driver's end of its stdin pipe closes, stops every descendant it saw that is still alive
(SIGTERM, then SIGKILL after a grace period). Linux only (/proc); elsewhere it is not started.

    python -m server.reaper DRIVER_PID   # stdin: a pipe the driver holds open for as long as it lives
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PROC = Path("/proc")
GRACE_SECONDS = 3.0


def _parents() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) of every process (start time tells a reused pid apart)."""
    found = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the process ended while being read
            found[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return found


def descendants(root: int) -> set[tuple[int, int]]:
    """(pid, start time) of every process below `root`."""
    table = _parents()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, stack = set(), list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.add((pid, table[pid][1]))
        stack.extend(children.get(pid, []))
    return found


def alive(processes: set[tuple[int, int]]) -> set[tuple[int, int]]:
    table = _parents()
    return {(pid, start) for pid, start in processes if table.get(pid, (0, -1))[1] == start}


def stop(processes: set[tuple[int, int]], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM each process still alive, SIGKILL those left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0.0)):
        for pid, _ in alive(processes):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while alive(processes) and time.monotonic() < deadline:
            time.sleep(0.1)


def watch(driver: int) -> None:
    """Remember the driver's descendants until stdin closes, then stop the ones still alive."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), closed.set()), daemon=True).start()
    seen: set[tuple[int, int]] = set()
    while not closed.wait(1.0):
        seen |= {(pid, start) for pid, start in descendants(driver) if pid != os.getpid()}
    stop(seen)


def start_reaper() -> subprocess.Popen | None:
    """A watcher for this process's descendants (None where /proc is missing); it ends when this process does."""
    if not (PROC / str(os.getpid()) / "stat").is_file():
        return None
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen([sys.executable, "-m", "server.reaper", str(os.getpid())], stdin=subprocess.PIPE,
                            cwd=root, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    watch(int(sys.argv[1]))
