"""The benchmarks live in `bench/` at the repository's root, beside `tests/`: put the root on the import path once for
every smoke test here (pytest loads this file before it imports the test modules)."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
