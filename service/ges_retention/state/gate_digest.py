"""The change gate's digests (pure; see the contract's "Change gate").

- definition digest: sha256 of a policy's effective definition as canonical JSON (sorted keys, no whitespace). It is
  what `run_on_change` compares.
- gate digest: sha256 of the canonical JSON `{"baseline": <the baseline's gate digest or null>, "definition":
  <effective definition>, "overlap": [<definition digests of the other policies in the same (endpoint, project_id)>,
  sorted]}`. An ack approves exactly this: this definition, in this overlap context, against this baseline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

__all__ = ["canonical_json", "definition_digest", "gate_digest"]


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, non-ASCII kept as UTF-8; NaN and infinities refused (not JSON)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def definition_digest(definition: Any) -> str:
    return _sha256(canonical_json(definition))


def gate_digest(definition: Any, overlap_digests: Iterable[str], baseline_digest: str | None) -> str:
    return _sha256(
        canonical_json({"definition": definition, "overlap": sorted(overlap_digests), "baseline": baseline_digest})
    )
