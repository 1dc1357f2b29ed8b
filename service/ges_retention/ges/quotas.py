"""The project's quotas (`GET /v2/{project_id}/graphs/quotas`): what is left of the backup quota.

The answer is `{"quotas": {"resources": [{"type": "graph" | "backup" | "metadata", "available": N, ...}]}}` (the
official SDK's `ListQuotas2Response`); `available: -1` means unlimited. Only `available` is given, not the quota
itself nor what is used. A body of another shape is a `QuotaError`; an answer without a `backup` entry is None (the
caller warns: the quota is unknown, nothing else changes).
"""

from __future__ import annotations

import json
from typing import Any

from ges_retention.ges.errors import GesError

__all__ = ["OP_LIST_QUOTAS", "UNLIMITED_QUOTA", "QuotaError", "backup_quota_available"]

OP_LIST_QUOTAS = "list_quotas"
UNLIMITED_QUOTA = -1


class QuotaError(GesError):
    """A quota answer that cannot be read."""


def backup_quota_available(body: bytes) -> int | None:
    """`available` of the `backup` resource (-1 = unlimited), or None when the answer has no `backup` entry."""

    def invalid(why: str) -> QuotaError:
        return QuotaError(f"the quota answer is not valid: {why}", operation=OP_LIST_QUOTAS)

    try:
        data: Any = json.loads(body)
    except ValueError:
        raise invalid("the body is not JSON") from None
    quotas = data.get("quotas") if isinstance(data, dict) else None
    resources = quotas.get("resources") if isinstance(quotas, dict) else None
    if not isinstance(resources, list):
        raise invalid("no 'quotas.resources' list")
    entries = [r for r in resources if isinstance(r, dict) and r.get("type") == "backup"]
    if not entries:
        return None
    if len(entries) > 1:
        raise invalid("two 'backup' entries")
    available = entries[0].get("available")
    # bool is an int in Python; a JSON true is not a count.
    if not isinstance(available, int) or isinstance(available, bool) or available < UNLIMITED_QUOTA:
        raise invalid(f"the backup entry's 'available' is {str(available)[:40]!r}, not a count or -1")
    return available
