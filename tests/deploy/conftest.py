"""tests/deploy imports the repository's tools/ (the generators and tool runners that the Makefile calls)."""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
