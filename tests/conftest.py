import os

import torch
from hypothesis import settings

# One intra-op thread: tests are tiny, and extra threads only contend on small CI machines.
torch.set_num_threads(1)
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# Property tests check values, not speed: a per-example deadline only fails them on a loaded machine.
settings.register_profile("fedrec", deadline=None)
settings.load_profile("fedrec")
