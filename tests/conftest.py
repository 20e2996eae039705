import os

import torch

# One intra-op thread: tests are tiny, and extra threads only contend on small CI machines.
torch.set_num_threads(1)
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
