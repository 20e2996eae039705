"""Where the real datasets are, and the marker that skips a test (saying why) when they are absent."""
from pathlib import Path

import pytest

from fedrec.data.registry import data_root

ROOT = data_root()
DATA = ROOT or Path(__file__).resolve().parents[2] / "shared" / "data"
real_data = pytest.mark.skipif(ROOT is None, reason=f"real datasets not found at {DATA} (set FEDREC_DATA)")
